package directory_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// secure is a server with authorisation on and the clients of the
// derived-value tests: the provider that owns hs-derm (trust, ODS
// devserver.DemoProvider), and two that book there: the call centre and a
// national booking hub (a system integration without an organisation).
type secure struct {
	t                         *testing.T
	a                         *app.App
	base                      string
	provider, callCentre, hub string // tokens
}

// bookingHub is the booking hub's client id.
const bookingHub = "booking-hub"

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (s *secure) do(token, method, path string, body any, headers ...string) *reply {
	s.t.Helper()
	var rd io.Reader
	ct := "application/fhir+json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json-patch+json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := &reply{status: resp.StatusCode, header: resp.Header}
	r.raw, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(r.raw, &r.body)
	return r
}

// must fails the test unless the answer has status want.
func (s *secure) must(want int, token, method, path string, body any, headers ...string) map[string]any {
	s.t.Helper()
	r := s.do(token, method, path, body, headers...)
	if r.status != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.raw, want)
	}
	return r.body
}

// newSecure seeds, as a setup principal, the trust with hs-derm (a
// schedule with a free slot at 10:00 on each of the next 40 days) and
// hs-far (one free slot in 35 days), and a patient.
func newSecure(t *testing.T) *secure {
	t.Helper()
	a, ts := apptest.New(t, app.Config{Auth: true})
	s := &secure{t: t, a: a, base: ts.URL + "/fhir"}
	mint := func(scope, client string) string {
		tok, err := devserver.MintToken(a.Config.Data, devserver.TokenOptions{Scope: scope, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	s.provider = mint("system/*.cruds", devserver.ClientProvider)
	s.callCentre = mint("user/*.cruds", devserver.ClientCallCentre)
	s.hub = mint("system/*.cruds", bookingHub)
	ods := "https://fhir.nhs.uk/Id/ods-organization-code"
	seed := []map[string]any{
		{"resourceType": "Organization", "id": "trust", "name": "Demo Trust", "identifier": []any{map[string]any{"system": ods, "value": devserver.DemoProvider}}},
		{"resourceType": "HealthcareService", "id": "hs-derm", "name": "Dermatology", "providedBy": map[string]any{"reference": "Organization/trust"},
			"identifier": []any{map[string]any{"system": "urn:test:service", "value": "derm"}},
			"extension":  []any{map[string]any{"url": directory.AcceptingReferrals, "valueBoolean": true}}},
		{"resourceType": "HealthcareService", "id": "hs-far", "name": "Far away", "providedBy": map[string]any{"reference": "Organization/trust"}},
		{"resourceType": "Schedule", "id": "sc", "actor": []any{map[string]any{"reference": "HealthcareService/hs-derm"}}},
		{"resourceType": "Schedule", "id": "sc-far", "actor": []any{map[string]any{"reference": "HealthcareService/hs-far"}}},
		{"resourceType": "Patient", "id": "pat-1", "birthDate": "1980-05-17"},
	}
	today := time.Now().In(a.Location)
	at := func(d int) time.Time {
		return time.Date(today.Year(), today.Month(), today.Day(), 10, 0, 0, 0, a.Location).AddDate(0, 0, d)
	}
	slot := func(id, sched string, start time.Time) map[string]any {
		return map[string]any{"resourceType": "Slot", "id": id, "status": "free", "schedule": map[string]any{"reference": "Schedule/" + sched},
			"start": start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)}
	}
	for d := 2; d <= 41; d++ {
		seed = append(seed, slot(fmt.Sprintf("s%02d", d), "sc", at(d)))
	}
	seed = append(seed, slot("far", "sc-far", at(35)))
	apptest.Seed(t, a, seed...)
	return s
}

// truth computes hs-derm's wait from its free slots in the store.
func (s *secure) truth() directory.Wait {
	s.t.Helper()
	q, err := s.a.Search.Parse("Slot", url.Values{"schedule": {"Schedule/sc"}, "status": {"free"}, "_count": {"1000"}}, search.ParseOptions{Strict: true})
	if err != nil {
		s.t.Fatal(err)
	}
	page, err := s.a.Store.Search(context.Background(), q)
	if err != nil {
		s.t.Fatal(err)
	}
	now := time.Now()
	var starts []time.Time
	for _, r := range page.Resources {
		var v struct{ Start string }
		_ = json.Unmarshal(r.JSON, &v)
		if st, err := time.Parse(time.RFC3339, v.Start); err == nil && !st.Before(now) {
			starts = append(starts, st)
		}
	}
	return directory.ComputeWait(now.In(s.a.Location), starts, 5)
}

// nextFree returns the id of hs-derm's earliest free slot.
func (s *secure) nextFree() string {
	s.t.Helper()
	b := s.must(200, s.provider, "GET", "/Slot?schedule=Schedule/sc&status=free&_sort=start&_count=1", nil)
	return b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
}

// waits returns the waiting-time extensions of a served service.
func waits(hs map[string]any) []map[string]any {
	var out []map[string]any
	exts, _ := hs["extension"].([]any)
	for _, e := range exts {
		if m, ok := e.(map[string]any); ok && m["url"] == directory.WaitingTime {
			out = append(out, m)
		}
	}
	return out
}

// resources returns the resources of a searchset by id, with their mode.
func resources(b map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		r := e.(map[string]any)["resource"].(map[string]any)
		out[r["resourceType"].(string)+"/"+r["id"].(string)] = r
	}
	return out
}

// state is what the provider last wrote of hs-derm: its version and when.
type state struct {
	version     int
	lastUpdated string
	updates     int // the provider's updates (audited)
}

// check verifies hs-derm after a row: its version, ETag, lastUpdated and
// history are st's (only the provider's writes make versions); every read
// and search path shows the one, current waiting time, vread and history
// none; the audit trail has no write of it by another client.
func (s *secure) check(what string, st state) {
	s.t.Helper()
	want := s.truth()
	fail := func(format string, args ...any) { s.t.Helper(); s.t.Errorf(what+": "+format, args...) }
	served := func(where string, hs map[string]any) {
		s.t.Helper()
		ws := waits(hs)
		if len(ws) != 1 {
			fail("%s: %d waiting-time extensions, want exactly one: %v", where, len(ws), hs["extension"])
			return
		}
		b, _ := json.Marshal(hs)
		got, ok := directory.ReadWait(b, time.Now())
		if !ok || !got.NextSlot.Equal(want.NextSlot) || got.Days != want.Days || got.Sample != want.Sample || got.AverageDays != want.AverageDays {
			fail("%s: wait %+v (%v), want %+v", where, got, ok, want)
		}
	}
	r := s.do(s.provider, "GET", "/HealthcareService/hs-derm", nil)
	if r.status != 200 {
		s.t.Fatalf("%s: read: %d %s", what, r.status, r.raw)
	}
	meta, _ := r.body["meta"].(map[string]any)
	if etag := r.header.Get("ETag"); etag != fmt.Sprintf(`W/"%d"`, st.version) || meta["versionId"] != fmt.Sprint(st.version) ||
		meta["lastUpdated"] != st.lastUpdated {
		fail("read: ETag %s, meta %v; want version %d, lastUpdated %s", etag, meta, st.version, st.lastUpdated)
	}
	served("read", r.body)
	// vread and history: the stored versions, without the derived value.
	vr := s.must(200, s.provider, "GET", fmt.Sprintf("/HealthcareService/hs-derm/_history/%d", st.version), nil)
	if len(waits(vr)) != 0 {
		fail("vread of the current version shows a waiting time: %v", vr["extension"])
	}
	h := s.must(200, s.provider, "GET", "/HealthcareService/hs-derm/_history", nil)
	entries, _ := h["entry"].([]any)
	if len(entries) != st.version {
		fail("history has %d versions, want %d (the owner's writes)", len(entries), st.version)
	}
	for _, e := range entries {
		if res, ok := e.(map[string]any)["resource"].(map[string]any); ok && len(waits(res)) != 0 {
			fail("history version %v shows a waiting time", res["meta"])
		}
	}
	// Searches by and sorted by the derived parameters, includes and
	// Bundle entries show the current value.
	days := fmt.Sprint(want.Days)
	for _, tc := range []struct {
		query string
		want  []string // ids in order
	}{
		{"/HealthcareService?_id=hs-derm,hs-far&waiting-time=" + days, []string{"hs-derm"}},
		{"/HealthcareService?_id=hs-derm,hs-far&waiting-time=0", nil},
		{"/HealthcareService?_id=hs-derm,hs-far&next-free-slot=" + want.NextSlot.In(s.a.Location).Format("2006-01-02"), []string{"hs-derm"}},
		{"/HealthcareService?_id=hs-derm,hs-far&_sort=waiting-time", []string{"hs-derm", "hs-far"}},
		{"/HealthcareService?_id=hs-derm,hs-far&_sort=-next-free-slot", []string{"hs-far", "hs-derm"}},
	} {
		b := s.must(200, s.provider, "GET", tc.query, nil)
		var got []string
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			res := e.(map[string]any)["resource"].(map[string]any)
			got = append(got, res["id"].(string))
			if res["id"] == "hs-derm" {
				served(tc.query, res)
			}
		}
		if !slices.Equal(got, tc.want) {
			fail("%s = %v, want %v", tc.query, got, tc.want)
		}
	}
	inc := resources(s.must(200, s.provider, "GET", "/Schedule?_id=sc&_include=Schedule:actor", nil))
	served("_include", inc["HealthcareService/hs-derm"])
	rev := resources(s.must(200, s.provider, "GET", "/HealthcareService?_id=hs-derm&_revinclude=Schedule:actor", nil))
	served("_revinclude", rev["HealthcareService/hs-derm"])
	batch := s.must(200, s.provider, "POST", "", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"request": map[string]any{"method": "GET", "url": "HealthcareService/hs-derm"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "HealthcareService?_id=hs-derm"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": fmt.Sprintf("HealthcareService/hs-derm/_history/%d", st.version)}},
	}})
	be := batch["entry"].([]any)
	served("batch read", be[0].(map[string]any)["resource"].(map[string]any))
	served("batch search", resources(be[1].(map[string]any)["resource"].(map[string]any))["HealthcareService/hs-derm"])
	if len(waits(be[2].(map[string]any)["resource"].(map[string]any))) != 0 {
		fail("batch vread shows a waiting time")
	}
	// The audit trail: the service's writes are the provider's and the
	// setup's, never the booking client's. (Writes are recorded in their
	// own transaction.)
	q, err := s.a.Search.Parse("AuditEvent", url.Values{"entity": {"HealthcareService/hs-derm"}, "_count": {"1000"}}, search.ParseOptions{Strict: true})
	if err != nil {
		s.t.Fatal(err)
	}
	page, err := s.a.Store.Search(context.Background(), q)
	if err != nil {
		s.t.Fatal(err)
	}
	updates := 0
	for _, ev := range page.Resources {
		var v struct {
			Outcome string
			Subtype []struct{ Code string }
			Agent   []struct {
				Who struct{ Identifier struct{ Value string } }
			}
		}
		_ = json.Unmarshal(ev.JSON, &v)
		if v.Outcome != "0" || len(v.Subtype) == 0 || (v.Subtype[0].Code != "update" && v.Subtype[0].Code != "create") {
			continue // a read or search, or a refused write (audited too)
		}
		for _, ag := range v.Agent {
			if c := ag.Who.Identifier.Value; c == devserver.ClientCallCentre || c == bookingHub {
				fail("the audit trail records a %s of the service by %s", v.Subtype[0].Code, c)
			}
		}
		if v.Subtype[0].Code == "update" {
			updates++
		}
	}
	if updates != st.updates {
		fail("the audit trail records %d updates of the service, want %d (the provider's)", updates, st.updates)
	}
}

// forged is a waiting-time extension a client makes up: no wait at all.
var forged = map[string]any{"url": directory.WaitingTime, "extension": []any{
	map[string]any{"url": "days", "valueInteger": 0},
	map[string]any{"url": "next-slot", "valueDateTime": "2020-01-01T09:00:00Z"},
	map[string]any{"url": "computed", "valueInstant": "2020-01-01T08:00:00.000Z"}}}

// request is one interaction of a row: as a single request and as a
// Bundle entry.
type request struct {
	token, method, url string // url relative to the base, without a leading slash
	body               any    // a resource, or []byte for a JSON Patch
	ifMatch            string
}

// derivedRow is one row of TestDerivedValuesStayBeside.
type derivedRow struct {
	name string
	// prepare makes the row's request (after any setup writes of its own).
	prepare    func(s *secure, st *state) request
	wantStatus int
	wantCode   string   // the OperationOutcome's issue code when refused
	owner      bool     // a write of hs-derm by its owner: a new version when it succeeds
	modes      []string // default single, transaction and batch
	after      func(s *secure, mode string, r *reply)
}

// TestDerivedValuesStayBeside: the waiting time is a derived value kept
// beside the service. Bookings, cancellations and slot writes move it
// without a new version of the service (versionId, ETag, lastUpdated and
// history stay its owner's, and the audit trail never says another client
// updated it); the owner's If-Match taken before bookings still holds; a
// client cannot set it (a copy it sends is dropped, by every write path);
// reads, searches, sorts, includes and Bundle entries show the current
// value and vread and history none. Every row runs as a single request,
// in a transaction and in a batch.
func TestDerivedValuesStayBeside(t *testing.T) {
	s := newSecure(t)
	st := state{version: 1}
	cur := s.must(200, s.provider, "GET", "/HealthcareService/hs-derm", nil)
	st.lastUpdated = cur["meta"].(map[string]any)["lastUpdated"].(string)
	s.check("seeded", st)

	serviceBody := func(extra ...map[string]any) map[string]any {
		b := s.must(200, s.provider, "GET", "/HealthcareService/hs-derm", nil) // as served: the wait included
		exts, _ := b["extension"].([]any)
		for _, e := range extra {
			exts = append(exts, e)
		}
		b["extension"] = exts
		b["name"] = fmt.Sprintf("Dermatology %d", time.Now().UnixNano())
		return b
	}
	book := func(s *secure, token string) string {
		b := s.must(201, token, "POST", "/Appointment", appointment(s.nextFree()))
		return b["id"].(string)
	}
	cancel := func(s *secure, token string) request {
		id := book(s, token)
		a := s.must(200, token, "GET", "/Appointment/"+id, nil)
		a["status"] = "cancelled"
		a["cancelationReason"] = map[string]any{"text": "patient cancelled"}
		return request{token: token, method: "PUT", url: "Appointment/" + id, body: a}
	}
	rows := []derivedRow{
		{name: "the booking hub books the next free slot", wantStatus: 201,
			prepare: func(s *secure, st *state) request {
				return request{token: s.hub, method: "POST", url: "Appointment", body: appointment(s.nextFree())}
			}},
		{name: "the booking hub cancels a booking", wantStatus: 200,
			prepare: func(s *secure, st *state) request { return cancel(s, s.hub) }},
		// The call centre books and cancels for patients, in Bundles as
		// in single requests (issue 10 point 4).
		{name: "the call centre books the next free slot", wantStatus: 201,
			prepare: func(s *secure, st *state) request {
				return request{token: s.callCentre, method: "POST", url: "Appointment", body: appointment(s.nextFree())}
			}},
		{name: "the call centre cancels a booking", wantStatus: 200,
			prepare: func(s *secure, st *state) request { return cancel(s, s.callCentre) }},
		{name: "the provider marks its next free slot busy", wantStatus: 200,
			prepare: func(s *secure, st *state) request {
				id := s.nextFree()
				sl := s.must(200, s.provider, "GET", "/Slot/"+id, nil)
				sl["status"] = "busy"
				return request{token: s.provider, method: "PUT", url: "Slot/" + id, body: sl}
			}},
		{name: "the provider patches its next free slot busy", wantStatus: 200,
			prepare: func(s *secure, st *state) request {
				return request{token: s.provider, method: "PATCH", url: "Slot/" + s.nextFree(),
					body: []byte(`[{"op":"replace","path":"/status","value":"busy"}]`)}
			}},
		{name: "the provider adds a free slot tomorrow", wantStatus: 201,
			prepare: func(s *secure, st *state) request {
				today := time.Now().In(s.a.Location)
				start := time.Date(today.Year(), today.Month(), today.Day(), 8, 0, 0, 0, s.a.Location).AddDate(0, 0, 1)
				start = start.Add(time.Duration(time.Now().UnixNano()%600) * time.Second) // distinct per mode
				return request{token: s.provider, method: "POST", url: "Slot", body: map[string]any{"resourceType": "Slot", "status": "free",
					"schedule": map[string]any{"reference": "Schedule/sc"}, "start": start.Format(time.RFC3339), "end": start.Add(10 * time.Minute).Format(time.RFC3339)}}
			}},
		{name: "the provider deletes its next free slot", wantStatus: 204,
			prepare: func(s *secure, st *state) request {
				return request{token: s.provider, method: "DELETE", url: "Slot/" + s.nextFree()}
			}},
		{name: "the provider updates its service with the If-Match it read before a booking", wantStatus: 200, owner: true,
			prepare: func(s *secure, st *state) request {
				body := serviceBody()
				etag := s.do(s.provider, "GET", "/HealthcareService/hs-derm", nil).header.Get("ETag")
				book(s, s.callCentre)
				return request{token: s.provider, method: "PUT", url: "HealthcareService/hs-derm", body: body, ifMatch: etag}
			}},
		{name: "the provider updates with an ETag its own update made stale", wantStatus: 412, wantCode: "conflict",
			prepare: func(s *secure, st *state) request {
				return request{token: s.provider, method: "PUT", url: "HealthcareService/hs-derm", body: serviceBody(),
					ifMatch: fmt.Sprintf(`W/"%d"`, st.version-1)}
			}},
		{name: "the provider sends a forged waiting time in a PUT", wantStatus: 200, owner: true,
			prepare: func(s *secure, st *state) request {
				body := serviceBody(forged)
				return request{token: s.provider, method: "PUT", url: "HealthcareService/hs-derm", body: body,
					ifMatch: fmt.Sprintf(`W/"%d"`, st.version)}
			},
			after: func(s *secure, mode string, r *reply) { checkDropped(s, mode, r) }},
		{name: "the provider patches a forged waiting time in", wantStatus: 200, owner: true,
			prepare: func(s *secure, st *state) request {
				f, _ := json.Marshal(forged)
				return request{token: s.provider, method: "PATCH", url: "HealthcareService/hs-derm",
					body: []byte(`[{"op":"add","path":"/extension/-","value":` + string(f) + `}]`)}
			},
			after: func(s *secure, mode string, r *reply) { checkDropped(s, mode, r) }},
		{name: "the provider patches the served waiting time", wantStatus: 200, owner: true,
			prepare: func(s *secure, st *state) request {
				// The served service ends with its waiting time: the patch
				// sees what the client reads.
				n := len(s.must(200, s.provider, "GET", "/HealthcareService/hs-derm", nil)["extension"].([]any))
				return request{token: s.provider, method: "PATCH", url: "HealthcareService/hs-derm",
					body: []byte(fmt.Sprintf(`[{"op":"test","path":"/extension/%d/url","value":%q},{"op":"replace","path":"/extension/%d/extension/0/valueInteger","value":0}]`,
						n-1, directory.WaitingTime, n-1))}
			},
			after: func(s *secure, mode string, r *reply) { checkDropped(s, mode, r) }},
		{name: "the provider creates a service with a forged waiting time", wantStatus: 201,
			prepare: func(s *secure, st *state) request {
				return request{token: s.provider, method: "POST", url: "HealthcareService", body: map[string]any{"resourceType": "HealthcareService",
					"name": "New clinic", "providedBy": map[string]any{"reference": "Organization/trust"}, "extension": []any{forged}}}
			},
			after: func(s *secure, mode string, r *reply) {
				s.t.Helper()
				id, _ := r.body["id"].(string)
				b := s.must(200, s.provider, "GET", "/HealthcareService/"+id, nil)
				if len(waits(b)) != 0 || len(waits(r.body)) != 0 {
					s.t.Errorf("%s: a new service keeps a forged waiting time: %v", mode, b["extension"])
				}
				storedRaw(s, mode, "HealthcareService", id)
				if got := resources(s.must(200, s.provider, "GET", "/HealthcareService?waiting-time=0", nil)); len(got) != 0 {
					s.t.Errorf("%s: waiting-time=0 finds %v", mode, got)
				}
			}},
		{name: "the call centre cannot write the service", wantStatus: 403, wantCode: "forbidden",
			prepare: func(s *secure, st *state) request {
				return request{token: s.callCentre, method: "PUT", url: "HealthcareService/hs-derm", body: serviceBody(forged)}
			}},
	}
	for _, row := range rows {
		modes := row.modes
		if modes == nil {
			modes = []string{"single", "transaction", "batch"}
		}
		for _, mode := range modes {
			t.Run(row.name+"/"+mode, func(t *testing.T) {
				s.t = t
				req := row.prepare(s, &st)
				before := s.truth()
				r, status := s.run(mode, req)
				if status != row.wantStatus {
					t.Fatalf("status %d, want %d: %s", status, row.wantStatus, r.raw)
				}
				if row.wantCode != "" {
					if code := issueCode(r, mode); code != row.wantCode {
						t.Errorf("issue code %q, want %q: %s", code, row.wantCode, r.raw)
					}
				}
				if row.owner && status < 300 {
					st.version++
					st.updates++
					meta := resourceOf(r, mode)["meta"].(map[string]any)
					st.lastUpdated = meta["lastUpdated"].(string)
					if meta["versionId"] != fmt.Sprint(st.version) {
						t.Errorf("the owner's write made version %v, want %d", meta["versionId"], st.version)
					}
				}
				if row.after != nil {
					row.after(s, mode, &reply{status: status, body: resourceOf(r, mode), raw: r.raw})
				}
				if row.wantStatus < 300 && !row.owner && row.name != "the provider creates a service with a forged waiting time" {
					if after := s.truth(); after.NextSlot.Equal(before.NextSlot) && after.Sample == before.Sample && after.AverageDays == before.AverageDays {
						t.Errorf("the row did not move the wait (%+v): it tests nothing", after)
					}
				}
				s.check(row.name+"/"+mode, st)
			})
		}
	}
}

// appointment is a booking of pat-1 on slot.
func appointment(slot string) map[string]any {
	return map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot":        []any{map[string]any{"reference": "Slot/" + slot}},
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/pat-1"}, "status": "accepted"}}}
}

// run sends req as mode ("single", "transaction", "batch") and returns the
// answer and the status of the interaction (the entry's in a Bundle).
func (s *secure) run(mode string, req request) (*reply, int) {
	s.t.Helper()
	if mode == "single" {
		var h []string
		if req.ifMatch != "" {
			h = []string{"If-Match", req.ifMatch}
		}
		r := s.do(req.token, req.method, "/"+req.url, req.body, h...)
		return r, r.status
	}
	entry := map[string]any{"request": map[string]any{"method": req.method, "url": req.url}}
	if req.ifMatch != "" {
		entry["request"].(map[string]any)["ifMatch"] = req.ifMatch
	}
	switch b := req.body.(type) {
	case nil:
	case []byte:
		entry["resource"] = map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": base64.StdEncoding.EncodeToString(b)}
	default:
		entry["resource"] = b
		if req.method == "POST" {
			entry["fullUrl"] = "urn:uuid:0e8d6d8c-8d6e-4a51-9f5e-5f7d0b0c1a2b"
		}
	}
	r := s.do(req.token, "POST", "", map[string]any{"resourceType": "Bundle", "type": mode, "entry": []any{entry}})
	if mode == "transaction" && r.status != 200 {
		return r, r.status
	}
	if r.status != 200 {
		s.t.Fatalf("%s: %d %s", mode, r.status, r.raw)
	}
	resp := r.body["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)
	var status int
	fmt.Sscan(strings.Fields(resp["status"].(string))[0], &status)
	return r, status
}

// resourceOf returns the resource a write answered with.
func resourceOf(r *reply, mode string) map[string]any {
	if mode == "single" {
		return r.body
	}
	entries, _ := r.body["entry"].([]any)
	if len(entries) == 0 {
		return nil
	}
	res, _ := entries[0].(map[string]any)["resource"].(map[string]any)
	return res
}

// issueCode returns the first issue's code of a refusal.
func issueCode(r *reply, mode string) string {
	oo := r.body
	if mode == "batch" {
		oo, _ = r.body["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)["outcome"].(map[string]any)
	}
	issues, _ := oo["issue"].([]any)
	if len(issues) == 0 {
		return ""
	}
	code, _ := issues[0].(map[string]any)["code"].(string)
	return code
}

// storedRaw checks that the version the store holds of typ/id (not as
// served, which drops any copy) has no waiting time in it.
func storedRaw(s *secure, mode, typ, id string) {
	s.t.Helper()
	res, err := s.a.Store.Read(context.Background(), typ, id)
	if err != nil {
		s.t.Fatal(err)
	}
	if strings.Contains(string(res.JSON), directory.WaitingTime) {
		s.t.Errorf("%s: the store holds %s/%s v%d with a waiting time: %s", mode, typ, id, res.Version, res.JSON)
	}
}

// checkDropped checks that a forged waiting time the owner sent was not
// stored: the new version, read by number, carries none, and the write's
// answer shows the true wait.
func checkDropped(s *secure, mode string, r *reply) {
	s.t.Helper()
	v := r.body["meta"].(map[string]any)["versionId"].(string)
	stored := s.must(200, s.provider, "GET", "/HealthcareService/hs-derm/_history/"+v, nil)
	if len(waits(stored)) != 0 {
		s.t.Errorf("%s: version %s is served with a waiting time: %v", mode, v, stored["extension"])
	}
	storedRaw(s, mode, "HealthcareService", "hs-derm")
	ws := waits(r.body)
	if len(ws) != 1 || strings.Contains(fmt.Sprint(ws), "2020-01-01") {
		s.t.Errorf("%s: the write's answer shows %v, want the one true waiting time", mode, ws)
	}
	for _, e := range stored["extension"].([]any) {
		if e.(map[string]any)["url"] == directory.AcceptingReferrals {
			return
		}
	}
	s.t.Errorf("%s: the service's other extensions were lost: %v", mode, stored["extension"])
}

// TestWaitingTimesReportIsCurrent: the $waiting-times report reads the
// waiting time kept beside each service, so it follows a booking that made
// no version of the service.
func TestWaitingTimesReportIsCurrent(t *testing.T) {
	c := setup(t)
	_, sched := c.do("POST", "/Schedule", map[string]any{"resourceType": "Schedule",
		"actor": []any{map[string]any{"reference": "HealthcareService/hs-derm-city"}}})
	now := time.Now().UTC()
	var first map[string]any
	for _, d := range []int{3, 5} {
		start := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, d)
		_, s := c.do("POST", "/Slot", map[string]any{"resourceType": "Slot", "status": "free",
			"schedule": map[string]any{"reference": "Schedule/" + sched["id"].(string)},
			"start":    start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)})
		if first == nil {
			first = s
		}
	}
	report := func() (days, version string) {
		t.Helper()
		resp, err := http.Get(c.base + "/$waiting-times?format=csv")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("$waiting-times: %d %s", resp.StatusCode, b)
		}
		lines := strings.Split(string(b), "\n")
		col := slices.Index(strings.Split(lines[0], ","), "waiting-days")
		for _, line := range lines {
			if cells := strings.Split(line, ","); cells[0] == "HealthcareService/hs-derm-city" && col > 0 && len(cells) > col {
				days = cells[col]
			}
		}
		_, hs := c.do("GET", "/HealthcareService/hs-derm-city", nil)
		return days, hs["meta"].(map[string]any)["versionId"].(string)
	}
	days, v := report()
	if days != "3" {
		t.Errorf("$waiting-times says %q days, want 3", days)
	}
	first["status"] = "busy"
	if status, out := c.do("PUT", "/Slot/"+first["id"].(string), first); status != 200 {
		t.Fatalf("PUT Slot: %d %v", status, out)
	}
	if got, gotV := report(); got != "5" || gotV != v {
		t.Errorf("after the booking, $waiting-times says %q days and the service is at version %s; want 5 and still %s", got, gotV, v)
	}
}
