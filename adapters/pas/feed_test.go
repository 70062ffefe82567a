package pas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/booking"
)

// feedSlot is one row of a test feed.
type feedSlot struct {
	clinic, id    string
	start, end    time.Time
	status, svc   string
	rawStart, raw string // when set, replace start (rawStart) or the whole CSV row (raw)
}

// csvFeed renders rows as a CSV feed.
func csvFeed(rows ...feedSlot) []byte {
	var b strings.Builder
	b.WriteString("clinic,pas_slot_id,start,end,status,service_type\n")
	for _, r := range rows {
		if r.raw != "" {
			b.WriteString(r.raw + "\n")
			continue
		}
		start := r.start.Format(time.RFC3339)
		if r.rawStart != "" {
			start = r.rawStart
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s\n", r.clinic, r.id, start, r.end.Format(time.RFC3339), r.status, r.svc)
	}
	return []byte(b.String())
}

// ndjsonFeed renders rows as an NDJSON feed (raw rows as they are).
func ndjsonFeed(rows ...feedSlot) []byte {
	var b bytes.Buffer
	for _, r := range rows {
		if r.raw != "" {
			b.WriteString(r.raw + "\n")
			continue
		}
		m := map[string]string{"clinic": r.clinic, "pas_slot_id": r.id, "start": r.start.Format(time.RFC3339),
			"end": r.end.Format(time.RFC3339), "status": r.status}
		if r.rawStart != "" {
			m["start"] = r.rawStart
		}
		if r.svc != "" {
			m["service_type"] = r.svc
		}
		j, _ := json.Marshal(m)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// upload POSTs a feed to $pas-slot-feed with token and returns the status
// and the JSON answer.
func (f *fixture) upload(token, query, contentType string, body []byte) (int, map[string]any) {
	f.T.Helper()
	resp, raw := f.Send(token, http.MethodPost, "/$pas-slot-feed?"+query, body, "Content-Type", contentType)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		f.T.Fatalf("answer %d %q: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, out
}

// counts reads the report's counts from a Parameters answer.
func counts(p map[string]any) map[string]int {
	out := map[string]int{}
	params, _ := p["parameter"].([]any)
	for _, x := range params {
		m := x.(map[string]any)
		if n, ok := m["valueInteger"].(float64); ok {
			out[m["name"].(string)] = int(n)
		}
	}
	return out
}

// feedIssues reads the report's issues as "line outcome pas_slot_id".
func feedIssues(p map[string]any) []string {
	var out []string
	params, _ := p["parameter"].([]any)
	for _, x := range params {
		m := x.(map[string]any)
		if m["name"] != "issue" {
			continue
		}
		var line float64
		var id, outcome string
		for _, y := range m["part"].([]any) {
			part := y.(map[string]any)
			switch part["name"] {
			case "line":
				line = part["valueInteger"].(float64)
			case "pas_slot_id":
				id = part["valueString"].(string)
			case "outcome":
				outcome = part["valueCode"].(string)
			}
		}
		out = append(out, fmt.Sprintf("%d %s %s", int(line), outcome, id))
	}
	return out
}

// outcomeLines returns the "line N" locations of an OperationOutcome's
// issues.
func outcomeLines(oo map[string]any) []string {
	var out []string
	issues, _ := oo["issue"].([]any)
	for _, x := range issues {
		for _, e := range x.(map[string]any)["expression"].([]any) {
			out = append(out, e.(string))
		}
	}
	return out
}

// feedSlotOf returns the Slot the feed made for pasSlotID, from the store
// (nil when none).
func (f *fixture) feedSlotOf(pasSlotID string) map[string]any {
	f.T.Helper()
	code, bundle := f.Do(f.Token(devserver.ClientProvider, apptest.SystemScopes), "GET", "/Slot?identifier="+url.QueryEscape(pas.SlotSystem(instance)+"|"+pasSlotID), nil)
	if code != 200 {
		f.T.Fatalf("searching the slot: %d %v", code, bundle)
	}
	entries, _ := bundle["entry"].([]any)
	if len(entries) == 0 {
		return nil
	}
	if len(entries) > 1 {
		f.T.Fatalf("%d slots for %s", len(entries), pasSlotID)
	}
	return entries[0].(map[string]any)["resource"].(map[string]any)
}

// TestSlotFeed runs feeds through the real HTTP stack in turn, each
// building on the state the ones before left: creation, idempotent
// re-uploads, updates, a slot booked in Signpost, full mode, and the
// feeds refused whole with every bad row located by its line.
func TestSlotFeed(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	provider := f.Token(devserver.ClientProvider, apptest.SystemScopes)
	day := f.First.Add(5 * time.Hour) // tomorrow 14:00 UTC, clear of the fixture's slots
	at := func(i int) time.Time { return day.Add(time.Duration(i) * 20 * time.Minute) }
	row := func(id string, i int, status string) feedSlot {
		return feedSlot{clinic: clinic, id: id, start: at(i), end: at(i).Add(20 * time.Minute), status: status}
	}
	base := []feedSlot{row("P1", 0, "free"), row("P2", 1, "free"), row("P3", 2, "busy")}
	base[1].svc = "http://snomed.info/sct|394579002"
	moved := slices.Clone(base)
	moved[0] = row("P1", 3, "free") // P1 later
	moved[1].status = "busy"        // P2 taken in the PAS
	snapshot := func() map[string]int64 { return apptest.Versions(t, f.App, "Slot", "Schedule", "Appointment") }

	type step struct {
		name   string
		setup  func()
		ctype  string
		query  string
		body   []byte
		status int
		counts map[string]int // the report's counts, for 200
		issues []string       // the report's issues ("line outcome id"), or the OperationOutcome's lines
		check  func(t *testing.T)
	}
	c := func(rows, created, updated, unchanged, skipped, rejected, withdrawn int) map[string]int {
		return map[string]int{"rows": rows, "created": created, "updated": updated, "unchanged": unchanged,
			"skipped": skipped, "rejected": rejected, "withdrawn": withdrawn}
	}
	steps := []step{
		{name: "create", ctype: pas.FeedCSV, body: csvFeed(base...), status: 200, counts: c(3, 3, 0, 0, 0, 0, 0),
			check: func(t *testing.T) {
				s1, s3 := f.feedSlotOf("P1"), f.feedSlotOf("P3")
				if s1 == nil || s3 == nil {
					t.Fatal("slots not created")
				}
				if s1["status"] != "free" || s1["start"] != at(0).Format(time.RFC3339) || s1["schedule"].(map[string]any)["reference"] != "Schedule/"+schedule {
					t.Errorf("P1: %v", s1)
				}
				tags, _ := json.Marshal(s3["meta"].(map[string]any)["tag"])
				if s3["status"] != "busy" || !strings.Contains(string(tags), booking.TagExternallyBusy) {
					t.Errorf("P3 is not externally busy: %v", s3)
				}
				svc, _ := json.Marshal(f.feedSlotOf("P2")["serviceType"])
				if !strings.Contains(string(svc), `"code":"394579002"`) {
					t.Errorf("P2 serviceType %s", svc)
				}
			}},
		{name: "the same feed again changes nothing", ctype: pas.FeedCSV, body: csvFeed(base...), status: 200, counts: c(3, 0, 0, 3, 0, 0, 0)},
		{name: "the same feed as NDJSON changes nothing", ctype: pas.FeedNDJSON, body: ndjsonFeed(base...), status: 200, counts: c(3, 0, 0, 3, 0, 0, 0)},
		{name: "time and status updated", ctype: pas.FeedNDJSON, body: ndjsonFeed(moved...), status: 200, counts: c(3, 0, 2, 1, 0, 0, 0),
			check: func(t *testing.T) {
				if s := f.feedSlotOf("P1"); s["start"] != at(3).Format(time.RFC3339) || s["end"] != at(3).Add(20*time.Minute).Format(time.RFC3339) {
					t.Errorf("P1 not moved: %v", s)
				}
				if s := f.feedSlotOf("P2"); s["status"] != "busy" {
					t.Errorf("P2 not busy: %v", s)
				}
			}},
		{name: "CSV equivalent of the update changes nothing", ctype: pas.FeedCSV + "; charset=utf-8", body: csvFeed(moved...), status: 200, counts: c(3, 0, 0, 3, 0, 0, 0)},
		{name: "a slot booked in Signpost is untouched",
			setup: func() {
				s := f.feedSlotOf("P1")
				apptest.Seed(t, f.App, map[string]any{"resourceType": "Appointment", "id": "appt-feed", "status": "booked",
					"start": s["start"], "end": s["end"], "slot": []any{map[string]any{"reference": "Slot/" + s["id"].(string)}},
					"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patientID}, "status": "accepted"}}})
			},
			ctype: pas.FeedCSV, body: csvFeed(base...), status: 200, counts: c(3, 0, 1, 1, 1, 0, 0), issues: []string{"2 skipped P1"},
			check: func(t *testing.T) {
				if s := f.feedSlotOf("P1"); s["status"] != "busy" || s["start"] != at(3).Format(time.RFC3339) {
					t.Errorf("the booked slot changed: %v", s)
				}
			}},
		{name: "full mode withdraws absent slots but not booked ones", ctype: pas.FeedCSV, query: "&mode=full",
			body: csvFeed(base[2], row("P4", 5, "free")), status: 200, counts: c(2, 1, 0, 1, 1, 0, 1), issues: []string{"0 skipped P1"},
			check: func(t *testing.T) {
				if s := f.feedSlotOf("P2"); s != nil {
					t.Errorf("P2 not withdrawn: %v", s)
				}
				if f.feedSlotOf("P1") == nil || f.Read("Slot", "slot-0")["status"] != "free" {
					t.Error("full mode touched a booked slot or a slot not the PAS's")
				}
			}},
		// Feeds refused whole: nothing changes, and every bad row is named.
		{name: "clinic unknown", ctype: pas.FeedCSV, body: csvFeed(row("N1", 6, "free"), feedSlot{clinic: "NOPE", id: "N2", start: at(7), end: at(8), status: "free"}),
			status: 422, issues: []string{"line 3"}},
		{name: "bad dates", ctype: pas.FeedCSV, body: csvFeed(
			feedSlot{clinic: clinic, id: "N1", rawStart: "2026-12-07T09:00:00", end: at(8), status: "free"},
			feedSlot{clinic: clinic, id: "N2", rawStart: "tomorrow", end: at(8), status: "free"},
			feedSlot{clinic: clinic, id: "N3", rawStart: "2026-02-30T09:00:00Z", end: at(8), status: "free"}),
			status: 422, issues: []string{"line 2", "line 3", "line 4"}},
		{name: "end before start", ctype: pas.FeedCSV, body: csvFeed(row("N1", 6, "free"), feedSlot{clinic: clinic, id: "N2", start: at(8), end: at(7), status: "free"},
			feedSlot{clinic: clinic, id: "N3", start: at(8), end: at(8), status: "free"}), status: 422, issues: []string{"line 3", "line 4"}},
		{name: "bad status", ctype: pas.FeedNDJSON, body: ndjsonFeed(row("N1", 6, "open"), row("N2", 7, "busy-tentative"), row("N3", 8, "free")),
			status: 422, issues: []string{"line 1", "line 2"}},
		{name: "duplicate pas_slot_id", ctype: pas.FeedCSV, body: csvFeed(row("N1", 6, "free"), row("N2", 7, "free"), row("N1", 8, "free")),
			status: 422, issues: []string{"line 4"}},
		{name: "missing values and wrong field count", ctype: pas.FeedCSV, body: csvFeed(feedSlot{raw: "CARD1,,,,"}, feedSlot{raw: "CARD1,N9"}),
			status: 422, issues: []string{"line 2", "line 3"}},
		{name: "header without a required column", ctype: pas.FeedCSV, body: []byte("clinic,pas_slot_id,start,end,colour\nCARD1,N1,x,y,red\n"),
			status: 422, issues: []string{"line 1"}},
		{name: "NDJSON: not JSON, unknown member, not a string", ctype: pas.FeedNDJSON,
			body: ndjsonFeed(feedSlot{raw: "{clinic"}, row("N1", 6, "free"), feedSlot{raw: `{"clinic":"CARD1","pas_slot_id":"N2","start":"` + at(7).Format(time.RFC3339) + `","end":"` + at(8).Format(time.RFC3339) + `","status":"free","colour":"red"}`},
				feedSlot{raw: `{"clinic":"CARD1","pas_slot_id":7,"start":"` + at(7).Format(time.RFC3339) + `","end":"` + at(8).Format(time.RFC3339) + `","status":"free"}`}),
			status: 422, issues: []string{"line 1", "line 3", "line 4"}},
		{name: "too large", ctype: pas.FeedCSV, body: func() []byte {
			rows := make([]feedSlot, pas.MaxFeedRows+1)
			for i := range rows {
				rows[i] = row(fmt.Sprintf("L%d", i), i%20, "free")
			}
			return csvFeed(rows...)
		}(), status: 413},
		{name: "empty", ctype: pas.FeedCSV, body: nil, status: 400},
		{name: "FHIR JSON is not a feed", ctype: "application/fhir+json", body: []byte(`{"resourceType":"Parameters"}`), status: 415},
		{name: "an unknown input", ctype: pas.FeedCSV, query: "&colour=red", body: csvFeed(row("N1", 6, "free")), status: 400},
		{name: "clinic input without full mode", ctype: pas.FeedCSV, query: "&clinic=" + clinic, body: csvFeed(row("N1", 6, "free")), status: 400},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.setup != nil {
				s.setup()
			}
			before := snapshot()
			code, out := f.upload(provider, "adapter="+instance+s.query, s.ctype, s.body)
			if code != s.status {
				t.Fatalf("status %d, want %d: %v", code, s.status, out)
			}
			if code != 200 {
				if out["resourceType"] != "OperationOutcome" {
					t.Errorf("answer %v", out)
				}
				if s.issues != nil {
					if diff := cmp.Diff(s.issues, outcomeLines(out)); diff != "" {
						t.Errorf("issue locations (-want +got):\n%s\n%v", diff, out)
					}
				}
				if diff := cmp.Diff(before, snapshot()); diff != "" {
					t.Errorf("a refused feed changed the store (-before +after):\n%s", diff)
				}
				return
			}
			if diff := cmp.Diff(s.counts, counts(out)); diff != "" {
				t.Errorf("counts (-want +got):\n%s\n%v", diff, out)
			}
			if diff := cmp.Diff(s.issues, feedIssues(out)); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
			if s.counts["created"]+s.counts["updated"]+s.counts["withdrawn"] == 0 {
				if diff := cmp.Diff(before, snapshot()); diff != "" {
					t.Errorf("a feed that changes nothing changed the store (-before +after):\n%s", diff)
				}
			}
			if s.check != nil {
				s.check(t)
			}
		})
	}
}

// TestSlotFeedAccess: the trust's provider may upload its PAS's feed;
// another trust's provider, a referrer, a patient and a backend service
// without a role may not, and nothing they send changes anything.
func TestSlotFeedAccess(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	feed := csvFeed(feedSlot{clinic: clinic, id: "A1", start: f.SlotStart(20), end: f.SlotStart(21), status: "free"})
	cases := []struct {
		name   string
		token  string
		status int
	}{
		{"no token", "", 401},
		{"another trust's provider", f.Mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: "other-trust", Org: "RXX99", Role: "provider"}), 403},
		{"a referrer", f.Token(devserver.ClientGPSystem, apptest.SystemScopes), 403},
		{"a patient", f.Mint(devserver.TokenOptions{Scope: "patient/*.cruds", Patient: patientID}), 403},
		{"a backend service without a role", f.Mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: "backend"}), 403},
		{"the trust's provider", f.Token(devserver.ClientProvider, apptest.SystemScopes), 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := apptest.Versions(t, f.App, "Slot")
			code, out := f.upload(c.token, "adapter="+instance, pas.FeedCSV, feed)
			if code != c.status {
				t.Fatalf("status %d, want %d: %v", code, c.status, out)
			}
			changed := len(apptest.Versions(t, f.App, "Slot")) != len(before)
			if changed != (code == 200) {
				t.Errorf("status %d, and a slot created: %v", code, changed)
			}
		})
	}
	if code, out := f.upload(f.Token(devserver.ClientProvider, apptest.SystemScopes), "adapter=pas-other", pas.FeedCSV, feed); code != 400 {
		t.Errorf("another instance's name: %d %v", code, out)
	}
}

// TestSlotFeedRuleRefusal: a row the booking rules refuse when applied (a
// free slot beyond its schedule's planning horizon) is reported as
// rejected, with the rule's reason and its line, and the other rows of
// its batch are applied.
func TestSlotFeedRuleRefusal(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	horizonEnd := f.First.AddDate(0, 0, 14)
	apptest.Seed(t, f.App, map[string]any{"resourceType": "Schedule", "id": schedule,
		"actor":           []any{map[string]any{"reference": "HealthcareService/" + service}},
		"planningHorizon": map[string]any{"start": f.First.AddDate(0, 0, -1).Format(time.RFC3339), "end": horizonEnd.Format(time.RFC3339)}})
	far := horizonEnd.AddDate(0, 0, 7)
	feed := csvFeed(
		feedSlot{clinic: clinic, id: "R1", start: f.SlotStart(20), end: f.SlotStart(21), status: "free"},
		feedSlot{clinic: clinic, id: "R2", start: far, end: far.Add(slotLength), status: "free"},
		feedSlot{clinic: clinic, id: "R3", start: f.SlotStart(22), end: f.SlotStart(23), status: "busy"},
	)
	code, out := f.upload(f.Token(devserver.ClientProvider, apptest.SystemScopes), "adapter="+instance, pas.FeedCSV, feed)
	if code != 200 {
		t.Fatalf("status %d: %v", code, out)
	}
	if diff := cmp.Diff(map[string]int{"rows": 3, "created": 2, "updated": 0, "unchanged": 0, "skipped": 0, "rejected": 1, "withdrawn": 0}, counts(out)); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"3 rejected R2"}, feedIssues(out)); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
	if b, _ := json.Marshal(out); !strings.Contains(string(b), "planning horizon") {
		t.Errorf("the reason is not the rule's: %s", b)
	}
	if f.feedSlotOf("R1") == nil || f.feedSlotOf("R3") == nil || f.feedSlotOf("R2") != nil {
		t.Error("the rows beside the refused one were not applied, or the refused one was")
	}
}

// TestSlotFeedSkipsHeldSlot: a slot held for a booking in Signpost
// (busy-tentative, a pending Appointment) is skipped, in incremental and
// in full mode, and stays as it was.
func TestSlotFeedSkipsHeldSlot(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	provider := f.Token(devserver.ClientProvider, apptest.SystemScopes)
	start := f.SlotStart(20)
	feed := func(s time.Time) []byte {
		return csvFeed(feedSlot{clinic: clinic, id: "H1", start: s, end: s.Add(slotLength), status: "free"})
	}
	if code, out := f.upload(provider, "adapter="+instance, pas.FeedCSV, feed(start)); code != 200 || counts(out)["created"] != 1 {
		t.Fatalf("%d %v", code, out)
	}
	s := f.feedSlotOf("H1")
	apptest.Seed(t, f.App, map[string]any{"resourceType": "Appointment", "id": "appt-held", "status": "pending",
		"start": s["start"], "end": s["end"], "slot": []any{map[string]any{"reference": "Slot/" + s["id"].(string)}},
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patientID}, "status": "needs-action"}}})
	if st := f.feedSlotOf("H1")["status"]; st != "busy-tentative" {
		t.Fatalf("the held slot is %v", st)
	}
	before := apptest.Versions(t, f.App, "Slot")
	for _, q := range []string{"", "&mode=full&clinic=" + clinic} {
		body := feed(start.Add(time.Hour))
		if q != "" {
			body = csvFeed(feedSlot{clinic: clinic, id: "H2", start: start.Add(2 * time.Hour), end: start.Add(2*time.Hour + slotLength), status: "free"})
		}
		code, out := f.upload(provider, "adapter="+instance+q, pas.FeedCSV, body)
		if code != 200 || counts(out)["skipped"] != 1 {
			t.Errorf("%q: %d %v", q, code, out)
		}
		if b, _ := json.Marshal(out); !strings.Contains(string(b), "busy-tentative") {
			t.Errorf("%q: the reason does not say the slot is held: %s", q, b)
		}
	}
	after := apptest.Versions(t, f.App, "Slot")
	if ref := "Slot/" + s["id"].(string); after[ref] != before[ref] {
		t.Errorf("the held slot changed: version %d → %d", before[ref], after[ref])
	}
}
