package booking_test

import (
	"context"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// TestBuiltAppointmentsValidate: every Appointment booking builds itself
// (with samply's R4 datatypes: participants, slot and basedOn references,
// extensions, cancellation reasons), reached through the real operations,
// passes Signpost's own validator as stored.
func TestBuiltAppointmentsValidate(t *testing.T) {
	v, err := validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	for i, id := range []string{"s1", "s2", "s3", "s4", "s5"} {
		s.put(slotAt(id, "sc", t0.Add(time.Duration(i)*time.Hour), 30*time.Minute))
	}
	// proposal returns the id of the $find proposal for slot.
	proposal := func(slot string) string {
		win := "start=" + t0.Add(-time.Hour).Format("2006-01-02") + "&end=" + t0.Add(24*time.Hour).Format("2006-01-02")
		for _, a := range entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs&patient-reference=Patient/p1&"+win, nil), 200)) {
			if slotOf(a) == slot {
				return a["id"].(string)
			}
		}
		t.Fatalf("$find proposed no appointment on %s", slot)
		return ""
	}
	hold := func(slot string, extra ...any) string {
		kv := append([]any{"appointment-reference", ref("Appointment/" + proposal(slot))}, extra...)
		return entries(t, must(t, "$hold", s.do("POST", "/Appointment/$hold", params(kv...)), 200))[0]["id"].(string)
	}
	for _, tc := range []struct {
		name  string
		build func() []string // ids of the Appointments built
	}{
		{"$hold of a proposal, with a breach reason", func() []string {
			return []string{hold("s1", "breach-reason", "patient asked for a later date")}
		}},
		{"$book of a proposal, with a patient and a comment", func() []string {
			r := must(t, "$book", s.do("POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+proposal("s2")),
				"patient-resource", map[string]any{"resourceType": "Patient", "id": "p1"}, "comment", "first visit")), 200)
			return []string{entries(t, r)[0]["id"].(string)}
		}},
		{"$book of a hold, for a patient the hold did not name", func() []string {
			id := hold("s3")
			must(t, "$book", s.do("POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+id),
				"patient-reference", ref("Patient/p1"))), 200)
			return []string{id}
		}},
		{"$reschedule: the new appointment and the cancelled one", func() []string {
			id := must(t, "book", s.do("POST", "/Appointment", booked("p2", "s4")), 201).json()["id"].(string)
			out := entries(t, must(t, "$reschedule", s.do("POST", "/Appointment/"+id+"/$reschedule", params("slot", ref("Slot/s5"), "reason", "clash")), 200))
			return []string{out[0]["id"].(string), out[1]["id"].(string)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, id := range tc.build() {
				res, err := s.app.Store.Read(context.Background(), "Appointment", id)
				if err != nil {
					t.Fatal(err)
				}
				for _, is := range v.Validate(res.JSON) {
					if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
						t.Errorf("Appointment/%s: %s at %v\n%s", id, is.Diagnostics, is.Expression, res.JSON)
					}
				}
			}
		})
	}
}
