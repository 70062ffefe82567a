package referral_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// The ways a booking can arrive that a Bundle can carry: each adversarial
// row runs as a single request, as a transaction entry and as a batch
// entry, and must be answered alike.
var bookingPaths = []string{"single", "transaction", "batch"}

// write sends one write (method, path, body) by path: as itself, or as the
// only entry of a transaction or batch Bundle. It returns the status the
// write got and its OperationOutcome (or resource).
func (c *client) write(via, method, path string, body map[string]any) (int, map[string]any) {
	c.t.Helper()
	if via == "single" {
		return c.do(method, path, body)
	}
	entry := map[string]any{"request": map[string]any{"method": method, "url": strings.TrimPrefix(path, "/")}}
	if body != nil {
		entry["resource"] = body
	}
	status, out := c.do("POST", "", map[string]any{"resourceType": "Bundle", "type": via, "entry": []any{entry}})
	if via == "transaction" || status != 200 {
		return status, out
	}
	resp, _ := get(out, "entry", 0, "response").(map[string]any)
	var code int
	fmt.Sscanf(fmt.Sprint(resp["status"]), "%d", &code)
	oo, _ := resp["outcome"].(map[string]any)
	if oo == nil {
		oo, _ = get(out, "entry", 0, "resource").(map[string]any)
	}
	return code, oo
}

// in returns a copy of c that reports to t (a subtest).
func (c *client) in(t *testing.T) *client {
	d := *c
	d.t = t
	return &d
}

// fitFixture is the test directory (testdata/directory.json) with a free
// slot three days and twenty days ahead at every service, and an
// indirectly bookable dermatology service, hs-derm-triage.
type fitFixture struct {
	c     *client
	slots map[string][]string // service → its slots, +3 days then +20 days
}

func newFitFixture(t *testing.T, cfg app.Config) *fitFixture {
	t.Helper()
	c := newClientWith(t, cfg)
	f := &fitFixture{c: c, slots: map[string][]string{}}
	loadDirectory(c)
	triage := c.must(200, "GET", "/HealthcareService/hs-derm-city", nil)
	triage["id"] = "hs-derm-triage"
	triage["name"] = "Dermatology triage"
	delete(triage, "meta")
	triage["characteristic"] = []any{map[string]any{"coding": []any{map[string]any{
		"system": "https://signpost.example/fhir/CodeSystem/bookability", "code": "indirectly-bookable"}}}}
	c.must(201, "PUT", "/HealthcareService/hs-derm-triage", triage)
	for _, svc := range []string{"hs-derm-city", "hs-derm-gpwsi", "hs-derm-far", "hs-derm-south", "hs-derm-closed",
		"hs-derm-kids", "hs-derm-men", "hs-cardio"} {
		f.slots[svc] = addSlots(c, svc, 3, 20)
	}
	return f
}

// in returns a copy of f that reports to t (a subtest).
func (f *fitFixture) in(t *testing.T) *fitFixture {
	g := *f
	g.c = f.c.in(t)
	return &g
}

// referral creates a dermatology referral for pat-1 with extra members and
// returns it.
func (f *fitFixture) referral(extra map[string]any) (ref, ubrn string) {
	f.c.t.Helper()
	sr := f.c.must(201, "POST", "/ServiceRequest", dermReferral(extra))
	return "ServiceRequest/" + sr["id"].(string), ubrnOf(sr)
}

// appointment is a booking of slot at service for pat-1.
func (f *fitFixture) appointment(service, slot string, extra map[string]any) map[string]any {
	f.c.t.Helper()
	s := f.c.must(200, "GET", "/"+slot, nil)
	a := map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot": []any{ref(slot)}, "start": s["start"], "end": s["end"],
		"participant": []any{
			map[string]any{"actor": ref("Patient/pat-1"), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// unchanged checks that a refused booking left the referral and the slot
// as they were.
func (f *fitFixture) unchanged(t *testing.T, sr, slot, wantState string) {
	t.Helper()
	if got := get(f.c.must(200, "GET", "/"+slot, nil), "status"); got != "free" {
		t.Errorf("%s is %v after a refused booking, want free", slot, got)
	}
	if got := state(task(f.c, sr)); got != wantState {
		t.Errorf("%s is %s after a refused booking, want %s", sr, got, wantState)
	}
	if n := len(f.c.search("/Appointment?based-on=" + sr)); n != 0 {
		t.Errorf("%s has %d appointments after a refused booking", sr, n)
	}
}

func twoWeekWait() map[string]any {
	return map[string]any{"priority": "urgent", "extension": []any{map[string]any{
		"url": referral.PriorityExtension, "valueCoding": map[string]any{"system": referral.PrioritySystem, "code": "two-week-wait"}}}}
}

// TestBookingFitsReferral: a booking based on a referral is refused with
// 422 SERVICE_NOT_SUITABLE_FOR_REFERRAL (naming the reason) at a service
// $shortlist would exclude, whichever way the referral is named (basedOn
// or only its UBRN) and whichever way the booking arrives; nothing is
// written. A two-week-wait referral's booking past its 14 days is refused
// without a reason.
func TestBookingFitsReferral(t *testing.T) {
	f := newFitFixture(t, app.Config{})
	basedOn := func(sr, _ string) map[string]any { return map[string]any{"basedOn": []any{ref(sr)}} }
	byUBRN := func(_, ubrn string) map[string]any {
		return map[string]any{"identifier": []any{map[string]any{"system": referral.UBRNSystem, "value": ubrn}}}
	}
	rows := []struct {
		name     string
		service  string
		slot     int // 0: +3 days, 1: +20 days
		referral map[string]any
		names    func(sr, ubrn string) map[string]any
		extra    map[string]any
		code     string
		why      string
	}{
		{"wrong specialty", "hs-cardio", 0, nil, basedOn, nil, referral.ErrNotSuitable, "specialty and service type do not match"},
		{"wrong specialty, by UBRN only", "hs-cardio", 0, nil, byUBRN, nil, referral.ErrNotSuitable, "specialty and service type do not match"},
		{"another commissioner's service", "hs-derm-south", 0, nil, basedOn, nil, referral.ErrNotSuitable, "not commissioned by the patient's commissioner"},
		{"not accepting referrals", "hs-derm-closed", 0, nil, basedOn, nil, referral.ErrNotSuitable, "not accepting referrals"},
		{"patient too old", "hs-derm-kids", 0, nil, basedOn, nil, referral.ErrNotSuitable, "over the maximum age"},
		{"wrong gender", "hs-derm-men", 0, nil, byUBRN, nil, referral.ErrNotSuitable, "sees male patients only"},
		{"two-week wait breached without a reason", "hs-derm-city", 1, twoWeekWait(), basedOn, nil, referral.ErrOutsideTwoWeekWait, "two-week-wait referral"},
		{"another patient", "hs-derm-city", 0, nil, basedOn, map[string]any{"participant": []any{
			map[string]any{"actor": ref("Patient/someone-else"), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/hs-derm-city"), "status": "accepted"}}}, "", "not the patient of referral"},
	}
	for _, row := range rows {
		for _, via := range bookingPaths {
			t.Run(row.name+"/"+via, func(t *testing.T) {
				f := f.in(t)
				sr, ubrn := f.referral(row.referral)
				slot := f.slots[row.service][row.slot]
				extra := row.names(sr, ubrn)
				for k, v := range row.extra {
					extra[k] = v
				}
				status, oo := f.c.write(via, "POST", "/Appointment", f.appointment(row.service, slot, extra))
				if status != 422 || errorCode(oo) != row.code || !strings.Contains(fmt.Sprint(get(oo, "issue", 0, "diagnostics")), row.why) {
					t.Fatalf("status %d %v, want 422 %s %q", status, oo, row.code, row.why)
				}
				if strings.Contains(fmt.Sprint(oo), "someone-else") && row.code == "" {
					t.Errorf("the outcome names the other patient: %v", oo)
				}
				f.unchanged(t, sr, slot, "awaiting-booking")
			})
		}
	}
}

// TestBookingFitsReferralAllowed: what the rule lets through, by each path:
// a suitable service, a service on the saved shortlist (even once it stops
// accepting referrals), the service the referral was redirected to (even
// of another specialty), a two-week-wait booking past the wait with a
// reason (recorded on the Task), and the UBRN and patient filled in.
func TestBookingFitsReferralAllowed(t *testing.T) {
	f := newFitFixture(t, app.Config{})
	for i, via := range bookingPaths {
		t.Run(via, func(t *testing.T) {
			f := f.in(t)
			c := f.c
			// A suitable service, named by UBRN only, with no patient:
			// linked to the referral, its UBRN and patient filled in.
			sr, ubrn := f.referral(nil)
			slot := f.slots["hs-derm-city"][0]
			if i > 0 {
				slot = addSlots(c, "hs-derm-city", 4+i)[0]
			}
			a := f.appointment("hs-derm-city", slot, map[string]any{"identifier": []any{
				map[string]any{"system": referral.UBRNSystem, "value": ubrn}}})
			a["participant"] = a["participant"].([]any)[1:]
			status, oo := c.write(via, "POST", "/Appointment", a)
			if status != 201 && status != 200 {
				t.Fatalf("booking a suitable service: %d %v", status, oo)
			}
			got := c.search("/Appointment?based-on=" + sr)
			if len(got) != 1 || !strings.Contains(fmt.Sprint(got[0]["participant"]), "Patient/pat-1") {
				t.Fatalf("the booking by UBRN is not based on the referral with its patient: %v", got)
			}
			if s := state(task(c, sr)); s != "booked" {
				t.Errorf("referral %s after booking, want booked", s)
			}

			// On the saved shortlist, then closed to referrals: still bookable.
			sr2, _ := f.referral(nil)
			c.must(200, "POST", "/"+sr2+"/$shortlist", params("choose", ref("HealthcareService/hs-derm-gpwsi")))
			hs := c.must(200, "GET", "/HealthcareService/hs-derm-gpwsi", nil)
			delete(hs, "meta")
			hs["extension"] = append(hs["extension"].([]any), map[string]any{"url": referral.AcceptingReferrals, "valueBoolean": false})
			c.must(200, "PUT", "/HealthcareService/hs-derm-gpwsi", hs)
			slot2 := addSlots(c, "hs-derm-gpwsi", 5+i)[0]
			if status, oo := c.write(via, "POST", "/Appointment", f.appointment("hs-derm-gpwsi", slot2, map[string]any{"basedOn": []any{ref(sr2)}})); status != 201 && status != 200 {
				t.Fatalf("booking a shortlisted service: %d %v", status, oo)
			}
			hs = c.must(200, "GET", "/HealthcareService/hs-derm-gpwsi", nil)
			delete(hs, "meta")
			hs["extension"] = slices.DeleteFunc(hs["extension"].([]any), func(e any) bool { return get(e, "url") == referral.AcceptingReferrals })
			c.must(200, "PUT", "/HealthcareService/hs-derm-gpwsi", hs)

			// Redirected to cardiology: bookable there.
			sr3, _ := f.referral(nil)
			first := book(c, sr3, "hs-derm-city", addSlots(c, "hs-derm-city", 6+i)[0])
			c.must(200, "POST", "/"+sr3+"/$redirect", params("service", ref("HealthcareService/hs-cardio"), "reason", "cardiac cause"))
			if got := get(c.must(200, "GET", "/"+first, nil), "cancelationReason", "coding", 0, "code"); got != "prov" {
				t.Errorf("the appointment the redirect cancelled has reason code %v, want prov (the provider's)", got)
			}
			slot3 := addSlots(c, "hs-cardio", 6+i)[0]
			if status, oo := c.write(via, "POST", "/Appointment", f.appointment("hs-cardio", slot3, map[string]any{"basedOn": []any{ref(sr3)}})); status != 201 && status != 200 {
				t.Fatalf("booking the service redirected to: %d %v", status, oo)
			}

			// Two-week wait breached with a reason: booked, the Task records it.
			sr4, _ := f.referral(twoWeekWait())
			slot4 := addSlots(c, "hs-derm-city", 20+i)[0]
			a4 := f.appointment("hs-derm-city", slot4, map[string]any{"basedOn": []any{ref(sr4)},
				"extension": []any{map[string]any{"url": referral.BreachReasonExtension, "valueString": "patient abroad until then"}}})
			if status, oo := c.write(via, "POST", "/Appointment", a4); status != 201 && status != 200 {
				t.Fatalf("booking past the two-week wait with a reason: %d %v", status, oo)
			}
			tk := task(c, sr4)
			if !strings.Contains(fmt.Sprint(tk["extension"]), "patient abroad until then") || state(tk) != "booked" {
				t.Errorf("the Task does not record the breach: %v", tk)
			}
			if ts := c.search("/Task?worklist=for-review&_id=" + tk["id"].(string)); len(ts) != 1 {
				t.Errorf("the breached referral is not on the for-review worklist")
			}
		})
	}
}

// TestFitOperations: $book, $hold and $reschedule apply the same rule as
// POST Appointment; $book's breach-reason justifies a late two-week-wait
// booking.
func TestFitOperations(t *testing.T) {
	f := newFitFixture(t, app.Config{})
	c := f.c
	bookResource := func(a map[string]any, extra ...any) (int, map[string]any) {
		a["status"] = "proposed"
		return c.do("POST", "/Appointment/$book", params(append([]any{"appointment-resource", a}, extra...)...))
	}
	// $book with appointment-resource at an unsuitable service.
	sr, _ := f.referral(nil)
	a := f.appointment("hs-cardio", f.slots["hs-cardio"][0], map[string]any{"basedOn": []any{ref(sr)}})
	p := params()
	p["parameter"] = []any{map[string]any{"name": "appointment-resource", "resource": a}}
	a["status"] = "proposed"
	if status, oo := c.do("POST", "/Appointment/$book", p); status != 422 || errorCode(oo) != referral.ErrNotSuitable {
		t.Errorf("$book at an unsuitable service: %d %v", status, oo)
	}
	f.unchanged(t, sr, f.slots["hs-cardio"][0], "awaiting-booking")
	_ = bookResource

	// $book past a two-week wait: refused, then booked with breach-reason.
	sr2, _ := f.referral(twoWeekWait())
	late := f.appointment("hs-derm-city", f.slots["hs-derm-city"][1], map[string]any{"basedOn": []any{ref(sr2)}, "status": "proposed"})
	p = params()
	p["parameter"] = []any{map[string]any{"name": "appointment-resource", "resource": late}}
	if status, oo := c.do("POST", "/Appointment/$book", p); status != 422 || errorCode(oo) != referral.ErrOutsideTwoWeekWait {
		t.Errorf("$book past the two-week wait: %d %v", status, oo)
	}
	f.unchanged(t, sr2, f.slots["hs-derm-city"][1], "awaiting-booking")
	p["parameter"] = append(p["parameter"].([]any), map[string]any{"name": "breach-reason", "valueString": "patient choice"})
	if status, oo := c.do("POST", "/Appointment/$book", p); status != 200 {
		t.Fatalf("$book past the two-week wait with breach-reason: %d %v", status, oo)
	}
	if tk := task(c, sr2); !strings.Contains(fmt.Sprint(tk["extension"]), "patient choice") {
		t.Errorf("the Task does not record the breach: %v", tk["extension"])
	}

	// $reschedule to an unsuitable service's slot: refused, the booking stays.
	sr3, _ := f.referral(nil)
	appt := book(c, sr3, "hs-derm-city", f.slots["hs-derm-city"][0])
	if status, oo := c.do("POST", "/"+appt+"/$reschedule", params("slot", ref(f.slots["hs-derm-south"][0]))); status != 422 || errorCode(oo) != referral.ErrNotSuitable {
		t.Errorf("$reschedule to another commissioner's service: %d %v", status, oo)
	}
	if got := get(c.must(200, "GET", "/"+appt, nil), "status"); got != "booked" {
		t.Errorf("the appointment is %v after a refused reschedule, want booked", got)
	}
	if got := get(c.must(200, "GET", "/"+f.slots["hs-derm-south"][0], nil), "status"); got != "free" {
		t.Errorf("the unsuitable slot is %v after a refused reschedule", got)
	}
	// ... and to a suitable one: done.
	c.must(200, "POST", "/"+appt+"/$reschedule", params("slot", ref(f.slots["hs-derm-far"][0])))
}

// proposalServices returns the HealthcareServices $find's proposals are at,
// and its outcome entry's error code, if any.
func proposalServices(out map[string]any) (services []string, patients []string, outcome string) {
	entries, _ := out["entry"].([]any)
	for _, e := range entries {
		r, _ := get(e, "resource").(map[string]any)
		if r["resourceType"] == "OperationOutcome" {
			outcome = errorCode(r)
			continue
		}
		parts, _ := r["participant"].([]any)
		for _, p := range parts {
			ref, _ := get(p, "actor", "reference").(string)
			switch {
			case strings.HasPrefix(ref, "HealthcareService/"):
				services = append(services, strings.TrimPrefix(ref, "HealthcareService/"))
			case strings.HasPrefix(ref, "Patient/"):
				patients = append(patients, ref)
			}
		}
	}
	slices.Sort(services)
	return slices.Compact(services), slices.Compact(patients), outcome
}

// TestFindForReferral: $find for a referral offers only slots at services
// that suit it (whatever the caller's own filters), fills in its patient,
// keeps a two-week wait, and its proposals book as returned; with no free
// slot at any suitable service it says so, and a referral with an
// indirectly bookable service says the provider books.
func TestFindForReferral(t *testing.T) {
	f := newFitFixture(t, app.Config{})
	find := func(c *client, ubrn string, extra ...any) (int, map[string]any) {
		return c.do("POST", "/Appointment/$find", params(append([]any{"referral-identifier", ubrn, "_count", 50}, extra...)...))
	}
	sr, ubrn := f.referral(nil)
	id := referral.UBRNSystem + "|" + ubrn
	_ = sr
	suitable := []string{"hs-derm-city", "hs-derm-far", "hs-derm-gpwsi"}
	rows := []struct {
		name     string
		extra    []any
		services []string
		outcome  string
	}{
		{"no filter", nil, suitable, ""},
		{"an unsuitable service asked for", []any{"healthcare-service", ref("HealthcareService/hs-cardio")}, nil, ""},
		{"another commissioner's service asked for", []any{"healthcare-service", ref("HealthcareService/hs-derm-south")}, nil, ""},
		{"a suitable service asked for", []any{"healthcare-service", ref("HealthcareService/hs-derm-far")}, []string{"hs-derm-far"}, ""},
		{"a specialty of another kind asked for", []any{"specialty", "http://snomed.info/sct|394579002"}, nil, ""},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			c := f.c.in(t)
			status, out := find(c, id, row.extra...)
			services, patients, outcome := proposalServices(out)
			if status != 200 || !slices.Equal(services, row.services) || outcome != row.outcome {
				t.Fatalf("status %d, services %v outcome %q; want 200 %v %q", status, services, outcome, row.services, row.outcome)
			}
			if len(services) > 0 && !slices.Equal(patients, []string{"Patient/pat-1"}) {
				t.Errorf("proposals for patients %v, want the referral's Patient/pat-1", patients)
			}
		})
	}
	t.Run("another patient", func(t *testing.T) {
		f := f.in(t)
		c := f.c
		if status, oo := find(c, id, "patient-reference", ref("Patient/someone-else")); status != 400 {
			t.Errorf("$find for the referral with another patient: %d %v", status, oo)
		}
	})
	t.Run("unknown UBRN", func(t *testing.T) {
		f := f.in(t)
		c := f.c
		if status, _ := find(c, referral.UBRNSystem+"|123456789012"); status != 400 {
			t.Errorf("$find with an unknown UBRN: %d", status)
		}
	})
	t.Run("proposals book as returned", func(t *testing.T) {
		f := f.in(t)
		c := f.c
		_, out := find(c, id, "_count", 1)
		prop := get(out, "entry", 0, "resource").(map[string]any)
		delete(prop, "id")
		p := params()
		p["parameter"] = []any{map[string]any{"name": "appointment-resource", "resource": prop}}
		c.must(200, "POST", "/Appointment/$book", p)
		if s := state(task(c, sr)); s != "booked" {
			t.Errorf("referral %s after booking its proposal", s)
		}
	})
	t.Run("two-week wait", func(t *testing.T) {
		f := f.in(t)
		c := f.c
		_, ubrn := f.referral(twoWeekWait())
		_, out := find(c, referral.UBRNSystem+"|"+ubrn)
		deadline := time.Now().AddDate(0, 0, referral.TwoWeekWaitDays+1)
		for _, e := range out["entry"].([]any) {
			start, _ := time.Parse(time.RFC3339, get(e, "resource", "start").(string))
			if start.After(deadline) {
				t.Errorf("$find offered %s, past the two-week wait", start)
			}
		}
	})
	t.Run("no slots, then a slot issue raised once", func(t *testing.T) {
		f := f.in(t)
		c := f.c
		// Cardiology has one service; book its slots away.
		cardio := dermReferral(map[string]any{"performerType": map[string]any{"coding": []any{
			map[string]any{"system": "http://snomed.info/sct", "code": "394579002"}}}})
		out := c.must(201, "POST", "/ServiceRequest", cardio)
		srC, ubrnC := "ServiceRequest/"+out["id"].(string), ubrnOf(out)
		for _, slot := range f.slots["hs-cardio"] {
			if get(c.must(200, "GET", "/"+slot, nil), "status") == "free" {
				other := c.must(201, "POST", "/ServiceRequest", cardio)
				book(c, "ServiceRequest/"+other["id"].(string), "hs-cardio", slot)
			}
		}
		for _, extra := range [][]any{nil, {"start", time.Now().AddDate(0, 0, 1).Format("2006-01-02"), "end", time.Now().AddDate(0, 0, 2).Format("2006-01-02")}} {
			_, res := find(c, referral.UBRNSystem+"|"+ubrnC, extra...)
			if services, _, outcome := proposalServices(res); len(services) != 0 || outcome != referral.ErrNoSlots {
				t.Fatalf("$find with no slot anywhere: %v %q, want the %s outcome", services, outcome, referral.ErrNoSlots)
			}
		}
		t1 := c.must(200, "POST", "/"+srC+"/$defer", params("reason", "no slots"))
		if state(t1) != "slot-issue" || get(t1, "owner", "reference") != "HealthcareService/hs-cardio" {
			t.Fatalf("after raising a slot issue: %s owner %v", state(t1), get(t1, "owner"))
		}
		provs := len(c.search("/Provenance?target=" + srC))
		t2 := c.must(200, "POST", "/"+srC+"/$defer", params("reason", "no slots"))
		if get(t2, "meta", "versionId") != get(t1, "meta", "versionId") || len(c.search("/Provenance?target="+srC)) != provs {
			t.Errorf("a second raise changed the Task or wrote a Provenance")
		}
		if ts := c.search("/Task?worklist=slot-issues&owner=HealthcareService/hs-cardio"); len(ts) != 1 {
			t.Errorf("slot-issues worklist: %d Tasks, want 1", len(ts))
		}
	})
	t.Run("indirectly bookable", func(t *testing.T) {
		f := f.in(t)
		c := f.c
		sr, ubrn := f.referral(map[string]any{"performer": []any{ref("HealthcareService/hs-derm-triage")}})
		tk := task(c, sr)
		if state(tk) != "awaiting-triage" || get(tk, "owner", "reference") != "HealthcareService/hs-derm-triage" {
			t.Fatalf("referral to an indirectly bookable service: %s, owner %v", state(tk), get(tk, "owner"))
		}
		if ts := c.search("/Task?worklist=for-review&owner=HealthcareService/hs-derm-triage"); len(ts) != 1 {
			t.Errorf("for-review worklist: %d Tasks, want 1", len(ts))
		}
		_, out := find(c, referral.UBRNSystem+"|"+ubrn)
		if services, _, outcome := proposalServices(out); len(services) != 0 || outcome != referral.ErrProviderBooks {
			t.Errorf("$find for a referral in triage: %v %q, want the %s outcome", services, outcome, referral.ErrProviderBooks)
		}
		// Chosen later, by an update of the performer.
		sr2, _ := f.referral(nil)
		cur := c.must(200, "GET", "/"+sr2, nil)
		cur["performer"] = []any{ref("HealthcareService/hs-derm-triage")}
		c.must(200, "PUT", "/"+sr2, cur)
		if s := state(task(c, sr2)); s != "awaiting-triage" {
			t.Errorf("after choosing an indirectly bookable service: %s", s)
		}
	})
}

// TestFitForPatients: with authorisation on, a UBRN patient finds for
// their own referral without naming it, cannot find by another referral's
// UBRN (answered as an unknown one, revealing nothing), and may raise a
// slot issue for their own referral but not defer it otherwise.
func TestFitForPatients(t *testing.T) {
	c := newSecureClient(t)
	gp := c.as(c.mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem}))
	provider := c.as(c.mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider}))
	addSlots(provider, "hs-derm", 2, 3)
	mine := gp.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	other := gp.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	tok, err := c.a.Auth.MintReferralToken(context.Background(), "pat-1", mine["id"].(string), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	patient := c.as(tok)
	status, out := patient.do("POST", "/Appointment/$find", params("_count", 5))
	if services, patients, _ := proposalServices(out); status != 200 || !slices.Equal(services, []string{"hs-derm"}) || !slices.Equal(patients, []string{"Patient/pat-1"}) {
		t.Errorf("the UBRN patient's $find: %d %v %v", status, services, patients)
	}
	status, out = patient.do("POST", "/Appointment/$find", params("referral-identifier", referral.UBRNSystem+"|"+ubrnOf(other)))
	if status != 400 || strings.Contains(fmt.Sprint(out), other["id"].(string)) {
		t.Errorf("the UBRN patient's $find by another UBRN: %d %v", status, out)
	}
	srRef := "/ServiceRequest/" + mine["id"].(string)
	if status, _ := patient.do("POST", srRef+"/$defer", params("reason", "other", "service", ref("HealthcareService/hs-derm"))); status != 403 {
		t.Errorf("a UBRN patient deferring with another reason: %d, want 403", status)
	}
	if status, _ := patient.do("POST", "/ServiceRequest/"+other["id"].(string)+"/$defer", params("reason", "no slots")); status != 404 && status != 403 {
		t.Errorf("a UBRN patient raising a slot issue on another referral: %d", status)
	}
	if status, out := patient.do("POST", srRef+"/$defer", params("reason", "no slots")); status != 200 || state(out) != "slot-issue" {
		t.Errorf("a UBRN patient raising a slot issue: %d %v", status, out)
	}
}
