package standin_test

import (
	"encoding/json"
	"testing"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// TestMappedBookingLifecycle: what the mapping makes of Signpost's R4
// is what the practice accepts: the stand-in's free slots, mapped to R4
// (valid to Signpost's validator), booked from a Signpost-shaped R4
// Appointment mapped back to STU3, then amended and cancelled the same
// way from the R4 the practice's answers map to.
func TestMappedBookingLifecycle(t *testing.T) {
	f := newFixture(t)
	v, err := validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	must(t, err)
	valid := func(what string, x any) {
		t.Helper()
		b, _ := json.Marshal(x)
		for _, is := range v.Validate(b) {
			if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
				t.Errorf("%s: %s at %v\n%s", what, is.Diagnostics, is.Expression, b)
			}
		}
	}
	practiceID := f.s.RegisterPatient(nhs, stu3.HumanName{Family: "Jackson"}, "female", "1952-05-31")
	p := stu3.Practice{ODS: ods, Services: []string{"HealthcareService/gp"}, Refs: map[string]string{"Patient/p1": "Patient/" + practiceID}}

	a := f.do(request{method: "GET", path: slotQuery("2026-12-08", "2026-12-08"), interaction: stu3.InteractionSearchSlots})
	var b stu3.Bundle
	must(t, json.Unmarshal(a.body, &b))
	found, err := p.SlotSearchToR4(&b)
	must(t, err)
	if len(found.Slots) == 0 {
		t.Fatal("no free slots on Tuesday")
	}
	for _, s := range found.Slots {
		valid("Slot", s)
	}
	for _, s := range found.Schedules {
		valid("Schedule", s)
	}
	for _, x := range found.Practitioners {
		valid("Practitioner", x)
	}
	for _, x := range found.Locations {
		valid("Location", x)
	}
	for _, x := range found.Organizations {
		valid("Organization", x)
	}
	slot := found.Slots[0]

	// Signpost's appointment, as a client books it.
	status := r4.AppointmentStatusBooked
	accepted := r4.ParticipationStatusAccepted
	desc, comment, created := "Review", "Prefers mornings", "2026-12-07T08:00:00Z"
	sp := r4.Appointment{
		Id: ptr("a1"), Status: status, Description: &desc, Comment: &comment, Created: &created,
		Start: &slot.Start, End: &slot.End,
		Slot:    []r4.Reference{{Reference: ptr("Slot/" + *slot.Id)}},
		BasedOn: []r4.Reference{{Reference: ptr("ServiceRequest/r1")}},
		Participant: []r4.AppointmentParticipant{
			{Actor: &r4.Reference{Reference: ptr("Patient/p1")}, Status: accepted},
			{Actor: &r4.Reference{Reference: ptr("HealthcareService/gp")}, Status: accepted},
		},
	}
	us := &stu3.Organization{Identifier: []stu3.Identifier{{System: stu3.ODSOrganizationSystem, Value: "RH8"}},
		Name: "Royal Devon Hospital", Telecom: stu3.List[stu3.ContactPoint]{{System: "phone", Value: "01392 000000"}}}
	out, err := p.AppointmentFromR4(&sp, stu3.AppointmentOptions{BookingOrganization: us})
	must(t, err)
	booked := f.do(request{method: "POST", path: "/Appointment", interaction: stu3.InteractionBookAppointment, body: out})
	if booked.status != 201 {
		t.Fatalf("booking the mapped appointment: %d %s", booked.status, booked.body)
	}
	// The practice's answer, back to R4: Signpost keeps the practice's id.
	var practice stu3.Appointment
	must(t, json.Unmarshal(booked.body, &practice))
	back, err := p.AppointmentToR4(&practice)
	must(t, err)
	valid("the booked Appointment", back)
	sp.Identifier = back.Identifier

	// Amend the comment, then cancel, each from Signpost's R4.
	amended := "Wheelchair user"
	sp.Comment = &amended
	out, err = p.AppointmentFromR4(&sp, stu3.AppointmentOptions{BookingOrganization: us})
	must(t, err)
	if out.ID != practice.ID {
		t.Fatalf("the amendment names appointment %q, the practice's is %q", out.ID, practice.ID)
	}
	if a := f.do(request{method: "PUT", path: "/Appointment/" + out.ID, interaction: stu3.InteractionAmendAppointment, body: out}); a.status != 200 {
		t.Fatalf("amending: %d %s", a.status, a.body)
	}
	sp.Status = r4.AppointmentStatusCancelled
	sp.CancelationReason = &r4.CodeableConcept{Text: ptr("Patient recovered")}
	out, err = p.AppointmentFromR4(&sp, stu3.AppointmentOptions{BookingOrganization: us})
	must(t, err)
	cancelled := f.do(request{method: "PUT", path: "/Appointment/" + out.ID, interaction: stu3.InteractionCancelAppointment, body: out})
	if cancelled.status != 200 {
		t.Fatalf("cancelling: %d %s", cancelled.status, cancelled.body)
	}
	must(t, json.Unmarshal(cancelled.body, &practice))
	back, err = p.AppointmentToR4(&practice)
	must(t, err)
	valid("the cancelled Appointment", back)
	if back.Status != r4.AppointmentStatusCancelled || back.CancelationReason == nil || *back.CancelationReason.Text != "Patient recovered" || *back.Comment != amended {
		t.Errorf("cancelled: %+v", back)
	}
}

func ptr(s string) *string { return &s }
