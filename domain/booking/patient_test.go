package booking_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// nhsNumber returns a valid NHS number starting with nine digits.
func nhsNumber(t *testing.T, nine string) string {
	d, ok := referral.NHSNumberCheckDigit(nine)
	if !ok {
		t.Fatalf("no NHS number starts %s", nine)
	}
	return nine + string(d)
}

func newPatient(nhs string, extra ...any) map[string]any {
	p := map[string]any{"resourceType": "Patient", "id": "not-on-this-server",
		"identifier": []any{map[string]any{"system": booking.NHSNumberSystem, "value": nhs}},
		"name":       []any{map[string]any{"family": "New", "given": []any{"Patient"}}}, "birthDate": "1990-01-02"}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i].(string)] = extra[i+1]
	}
	return p
}

// TestBookNewPatient: $book with patient-resource of a patient not on the
// server registers it in the booking's transaction (IHE ITI Scheduling),
// validated like any Patient; an invalid one fails the booking and writes
// nothing; a patient named by NHS number is found, not duplicated.
func TestBookNewPatient(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	for i, id := range []string{"n1", "n2", "n3", "n4"} {
		s.put(slotAt(id, "sc", t0.Add(time.Duration(i)*time.Hour), 30*time.Minute))
	}
	proposalFor := func(slot string) string {
		t.Helper()
		for _, a := range entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs", nil), 200)) {
			if slotOf(a) == slot {
				return "Appointment/" + a["id"].(string)
			}
		}
		t.Fatalf("$find did not offer Slot/%s", slot)
		return ""
	}
	nhs := nhsNumber(t, "943476591")
	bad := "9434765918"
	if bad == nhs {
		bad = "9434765917"
	}

	for _, tc := range []struct {
		name    string
		patient map[string]any
		status  int
		at      string // an expression the OperationOutcome names
	}{
		{"invalid NHS number", newPatient(bad), 422, ""},
		{"invalid gender", newPatient(nhs, "gender", "sometimes"), 400, "patient-resource"},
	} {
		r := s.do("POST", "/Appointment/$book", params("appointment-reference", ref(proposalFor("n1")), "patient-resource", tc.patient))
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d\n%s", tc.name, r.status, tc.status, r.body)
		}
		if tc.at != "" && !containsPrefix(r.expressions(), tc.at) {
			t.Errorf("%s: expressions %v, want one under %s", tc.name, r.expressions(), tc.at)
		}
		if st := s.slotStatus("n1"); st != "free" {
			t.Errorf("%s: a failed booking left the slot %s", tc.name, st)
		}
	}
	if n := s.count("/Patient?identifier=" + booking.NHSNumberSystem + "|" + nhs); n != 0 {
		t.Fatalf("failed bookings registered %d patients", n)
	}

	// A new patient: registered with a server id, returned as an include.
	r := must(t, "$book new patient", s.do("POST", "/Appointment/$book", params("appointment-reference", ref(proposalFor("n1")), "patient-resource", newPatient(nhs))), 200)
	var b struct {
		Entry []struct {
			Resource map[string]any
			Search   struct{ Mode string }
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != 2 || b.Entry[1].Resource["resourceType"] != "Patient" || b.Entry[1].Search.Mode != "include" {
		t.Fatalf("$book answer: want the Appointment and the new Patient (include)\n%s", r.body)
	}
	pid := b.Entry[1].Resource["id"].(string)
	if pid == "not-on-this-server" {
		t.Errorf("the new patient kept the client's id")
	}
	a := b.Entry[0].Resource
	if got := a["participant"].([]any)[0].(map[string]any)["actor"].(map[string]any)["reference"]; got != "Patient/"+pid {
		t.Errorf("booked for %v, want Patient/%s", got, pid)
	}
	s.read("Patient", pid)

	// The same patient again, by NHS number: no second Patient.
	a2 := entries(t, must(t, "$book same patient", s.do("POST", "/Appointment/$book", params("appointment-reference", ref(proposalFor("n2")), "patient-resource", newPatient(nhs))), 200))
	if len(a2) != 1 || a2[0]["participant"].([]any)[0].(map[string]any)["actor"].(map[string]any)["reference"] != "Patient/"+pid {
		t.Errorf("second $book: %v, want one Appointment for Patient/%s", a2, pid)
	}
	if n := s.count("/Patient?identifier=" + booking.NHSNumberSystem + "|" + nhs); n != 1 {
		t.Errorf("%d patients with the NHS number, want 1", n)
	}

	// appointment-resource with a new patient.
	res := booked("ignored", "n3")
	delete(res, "participant")
	res["status"] = "pending"
	other := nhsNumber(t, "401023213")
	out := entries(t, must(t, "$book resource, new patient", s.do("POST", "/Appointment/$book", params("appointment-resource", res, "patient-resource", newPatient(other))), 200))
	if len(out) != 2 || s.slotStatus("n3") != "busy" {
		t.Errorf("$book of a resource for a new patient: %d entries, slot %s; want 2, busy", len(out), s.slotStatus("n3"))
	}
	s.check()
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}
