package booking_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
)

// entries returns the resources of a Bundle answer.
func entries(t testing.TB, r *response) []map[string]any {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource map[string]any
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("not a Bundle: %s", r.body)
	}
	var out []map[string]any
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

func params(kv ...any) map[string]any {
	var ps []map[string]any
	for i := 0; i+1 < len(kv); i += 2 {
		p := map[string]any{"name": kv[i]}
		switch v := kv[i+1].(type) {
		case map[string]any:
			if _, ok := v["resourceType"]; ok {
				p["resource"] = v
			} else {
				p["valueReference"] = v
			}
		case string:
			p["valueString"] = v
		}
		ps = append(ps, p)
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

func ref(r string) map[string]any { return map[string]any{"reference": r} }

func slotOf(a map[string]any) string {
	return a["slot"].([]any)[0].(map[string]any)["reference"].(string)[len("Slot/"):]
}

// TestScenario walks a booking through the HTTP API: find free slots, hold
// one, book it, amend, reschedule, cancel; slot statuses at each step.
func TestScenario(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	for i, id := range []string{"s1", "s2", "s3", "s4"} {
		s.put(slotAt(id, "sc", t0.Add(time.Duration(3-i)*time.Hour), 30*time.Minute)) // s4 earliest
	}
	s.put(schedule("sc-other", "other"), service("other"), slotAt("elsewhere", "sc-other", t0, 30*time.Minute))

	// $find, by GET and POST: earliest first, only the chosen service.
	win := "start=" + t0.Add(-time.Hour).Format("2006-01-02") + "&end=" + t0.Add(24*time.Hour).Format("2006-01-02")
	got := entries(t, must(t, "$find GET", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs&patient-reference=Patient/p1&"+win, nil), 200))
	var order []string
	for _, a := range got {
		order = append(order, slotOf(a))
		if a["status"] != "proposed" {
			t.Errorf("proposal status %v, want proposed", a["status"])
		}
	}
	if want := "[s4 s3 s2 s1]"; fmtSlice(order) != want {
		t.Fatalf("$find slots %v, want %s", order, want)
	}
	found := entries(t, must(t, "$find POST", s.do("POST", "/Appointment/$find", params(
		"healthcare-service", ref("HealthcareService/hs"), "patient-reference", ref("Patient/p1"),
		"start", t0.Format(time.RFC3339), "end", t0.Add(3*time.Hour).Format(time.RFC3339))), 200))
	if len(found) != 3 || slotOf(found[0]) != "s4" || slotOf(found[1]) != "s3" {
		t.Fatalf("$find POST in [t0, t0+3h) gave %d proposals starting %v, want s4, s3, s2", len(found), slotOf(found[0]))
	}
	proposal := found[1]["id"].(string)
	if len(proposal) > 64 {
		t.Errorf("proposal id is %d characters, longer than a FHIR id may be", len(proposal))
	}

	// A forged or unknown proposal is refused.
	if r := s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+proposal[:len(proposal)-2]+"AA"))); r.status != 422 || r.detail() != booking.ErrProposalInvalid {
		t.Errorf("$hold of a forged proposal: %d %s, want 422 %s", r.status, r.detail(), booking.ErrProposalInvalid)
	}

	// $hold: busy-tentative, pending with an expiry.
	held := entries(t, must(t, "$hold", s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+proposal))), 200))[0]
	if held["status"] != "pending" || s.slotStatus("s3") != "busy-tentative" {
		t.Fatalf("after $hold: appointment %v, slot %s; want pending, busy-tentative", held["status"], s.slotStatus("s3"))
	}
	if r := s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+proposal))); r.status != 409 || r.detail() != booking.ErrSlotNotAvailable {
		t.Errorf("second $hold of the slot: %d %s, want 409 %s", r.status, r.detail(), booking.ErrSlotNotAvailable)
	}
	s.check()

	// $book the hold.
	id := held["id"].(string)
	bookedA := entries(t, must(t, "$book", s.do("POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+id),
		"patient-resource", map[string]any{"resourceType": "Patient", "id": "p1"}, "comment", "first visit")), 200))[0]
	if bookedA["status"] != "booked" || bookedA["comment"] != "first visit" || s.slotStatus("s3") != "busy" {
		t.Fatalf("after $book: %v %v, slot %s; want booked with the comment, busy", bookedA["status"], bookedA["comment"], s.slotStatus("s3"))
	}

	// Amend the description.
	cur := s.read("Appointment", id)
	cur["description"] = "knee review"
	must(t, "amend", s.do("PUT", "/Appointment/"+id, cur), 200)

	// Reschedule to s4: the old is cancelled, the new replaces it.
	out := entries(t, must(t, "$reschedule", s.do("POST", "/Appointment/"+id+"/$reschedule", params("slot", ref("Slot/s4"), "reason", "clash")), 200))
	nw, old := out[0], out[1]
	if nw["status"] != "booked" || old["status"] != "cancelled" || slotOf(nw) != "s4" || nw["description"] != "knee review" {
		t.Fatalf("after $reschedule: new %v on %v, old %v", nw["status"], slotOf(nw), old["status"])
	}
	ext := nw["extension"].([]any)[0].(map[string]any)
	if ext["url"] != booking.ExtReplaces || ext["valueReference"].(map[string]any)["reference"] != "Appointment/"+id {
		t.Errorf("new appointment extension %v, want replaces Appointment/%s", ext, id)
	}
	if s.slotStatus("s3") != "free" || s.slotStatus("s4") != "busy" {
		t.Errorf("after $reschedule s3=%s s4=%s, want free, busy", s.slotStatus("s3"), s.slotStatus("s4"))
	}
	// Rescheduling onto a taken slot changes nothing.
	must(t, "book s2", s.do("POST", "/Appointment", booked("p2", "s2")), 201)
	if r := s.do("POST", "/Appointment/"+nw["id"].(string)+"/$reschedule", params("slot", ref("Slot/s2"))); r.status != 409 {
		t.Errorf("reschedule onto a taken slot: %d, want 409", r.status)
	}
	if s.read("Appointment", nw["id"].(string))["status"] != "booked" || s.slotStatus("s4") != "busy" {
		t.Errorf("a failed reschedule changed the appointment or its slot")
	}

	// Cancel.
	cur = s.read("Appointment", nw["id"].(string))
	cur["status"] = "cancelled"
	cur["cancelationReason"] = map[string]any{"text": "better"}
	must(t, "cancel", s.do("PUT", "/Appointment/"+nw["id"].(string), cur), 200)
	if s.slotStatus("s4") != "free" {
		t.Errorf("after cancel s4=%s, want free", s.slotStatus("s4"))
	}
	s.check()

	// $book directly from a proposal and from a resource.
	found = entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs&patient-reference=Patient/p2&"+win, nil), 200))
	direct := entries(t, must(t, "$book proposal", s.do("POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+found[0]["id"].(string)))), 200))[0]
	if direct["status"] != "booked" || s.slotStatus(slotOf(direct)) != "busy" {
		t.Errorf("$book of a proposal: %v, slot %s", direct["status"], s.slotStatus(slotOf(direct)))
	}
	res := booked("p1", "s1")
	res["status"] = "pending"
	byRes := entries(t, must(t, "$book resource", s.do("POST", "/Appointment/$book", params("appointment-resource", res)), 200))[0]
	if byRes["status"] != "booked" || byRes["start"] == nil || s.slotStatus("s1") != "busy" {
		t.Errorf("$book of a resource: %v start %v, slot %s", byRes["status"], byRes["start"], s.slotStatus("s1"))
	}
	s.check()
}

func fmtSlice(s []string) string { return "[" + strings.Join(s, " ") + "]" }

// TestHoldsExpire: an expired hold is released by the sweeper, also when
// it expired while the server was down.
func TestHoldsExpire(t *testing.T) {
	data := t.TempDir()
	cfg := app.Config{Data: data, HoldFor: 300 * time.Millisecond}
	s := newServer(t, cfg)
	s.basic()
	t0 := tomorrow9()
	s.put(slotAt("a", "sc", t0, 15*time.Minute), slotAt("b", "sc", t0.Add(time.Hour), 15*time.Minute))
	find := func(s *server, slot string) string {
		for _, a := range entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs", nil), 200)) {
			if slotOf(a) == slot {
				return a["id"].(string)
			}
		}
		t.Fatalf("$find did not offer Slot/%s", slot)
		return ""
	}
	held := entries(t, must(t, "$hold", s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+find(s, "a")))), 200))[0]
	waitUntil(t, 10*time.Second, func() bool { return s.slotStatus("a") == "free" })
	if st := s.read("Appointment", held["id"].(string))["status"]; st != "cancelled" {
		t.Errorf("expired hold is %v, want cancelled", st)
	}
	// Confirming it now fails.
	if r := s.do("POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+held["id"].(string)), "patient-resource", map[string]any{"resourceType": "Patient", "id": "p1"})); r.status != 422 {
		t.Errorf("$book of a released hold: %d, want 422\n%s", r.status, r.body)
	}

	// A hold whose server stops before it expires is released on start.
	must(t, "$hold b", s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+find(s, "b")))), 200)
	s.app.Close()
	time.Sleep(400 * time.Millisecond)
	s2 := newServer(t, app.Config{Data: data, HoldFor: time.Hour})
	waitUntil(t, 10*time.Second, func() bool { return s2.slotStatus("b") == "free" })
	s2.check()
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
