package stu3_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

// consumer is the booking organisation the adapter supplies.
var consumer = &stu3.Organization{
	Identifier: []stu3.Identifier{{System: stu3.ODSOrganizationSystem, Value: "RH8"}},
	Name:       "Royal Devon Hospital",
	Telecom:    stu3.List[stu3.ContactPoint]{{System: "phone", Value: "01392 000000"}},
}

// signpostAppointment is an Appointment as Signpost holds one for a GP
// Connect slot: its own id, a referral, a Signpost patient and service,
// Signpost's extensions beside the GP Connect ones.
const signpostAppointment = `{
  "resourceType": "Appointment", "id": "a1",
  "meta": {"versionId": "3"},
  "identifier": [{"system": "https://fhir.nhs.uk/Id/UBRN", "value": "000000000001"},
    {"system": "https://signpost.example/fhir/Id/booking-request", "value": "r-77"}%s],
  "extension": [
    {"url": "https://signpost.example/fhir/StructureDefinition/hold-expires", "valueInstant": "2026-12-07T10:00:00Z"},
    {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2", "valueCode": "In-person"}
  ],
  "status": "%s",%s
  "serviceType": [{"text": "General GP Appointment"}],
  "description": "Review", "comment": "Prefers mornings",
  "start": "2026-12-08T09:00:00Z", "end": "2026-12-08T09:30:00Z",
  "slot": [{"reference": "Slot/gpc-A00001-1584"}, {"reference": "Slot/gpc-A00001-1585"}],
  "created": "2026-12-06T18:00:00Z",
  "basedOn": [{"reference": "ServiceRequest/r1"}],
  "participant": [
    {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
    {"actor": {"reference": "HealthcareService/gp-a00001"}, "status": "accepted"},
    {"actor": {"reference": "Location/gpc-A00001-17"}, "status": "accepted"}
  ]
}`

func r4Appointment(t *testing.T, ident, status, extra string) *r4.Appointment {
	t.Helper()
	a, err := r4.UnmarshalAppointment([]byte(fmtJSON(signpostAppointment, ident, status, extra)))
	must(t, err)
	return &a
}

func fmtJSON(f string, args ...any) string {
	for _, a := range args {
		f = strings.Replace(f, "%s", a.(string), 1)
	}
	return f
}

// TestAppointmentFromSignpost: Signpost-shaped Appointments map to what
// GP Connect books, amends and cancels: the practice's slots, patient and
// location, the booking organisation contained, the cancellation reason
// as its extension; Signpost's referral, service, extensions and
// identifiers left out.
func TestAppointmentFromSignpost(t *testing.T) {
	p := stu3.Practice{ODS: "A00001", Refs: map[string]string{"Patient/p1": "Patient/2"}}
	contained := `"contained": [{"resourceType": "Organization", "id": "1",
	    "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Organization-1"]},
	    "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RH8"}],
	    "name": "Royal Devon Hospital", "telecom": [{"system": "phone", "value": "01392 000000"}]}],`
	common := `
	  "identifier": [{"system": "https://fhir.nhs.uk/Id/UBRN", "value": "000000000001"}],
	  "serviceType": [{"text": "General GP Appointment"}],
	  "description": "Review", "comment": "Prefers mornings",
	  "start": "2026-12-08T09:00:00Z", "end": "2026-12-08T09:30:00Z",
	  "slot": [{"reference": "Slot/1584"}, {"reference": "Slot/1585"}],
	  "created": "2026-12-06T18:00:00Z",
	  "participant": [
	    {"actor": {"reference": "Patient/2"}, "status": "accepted"},
	    {"actor": {"reference": "Location/17"}, "status": "accepted"}
	  ]`
	booking := `{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1", "valueReference": {"reference": "#1"}}`
	channel := `{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2", "valueCode": "In-person"}`
	profile := `"meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Appointment-1"]},`
	for _, tc := range []struct {
		name                 string
		ident, status, extra string
		want                 string
	}{
		{"a new booking", "", "booked", "",
			`{"resourceType": "Appointment", ` + profile + contained + `
			  "extension": [` + booking + `,` + channel + `], "status": "booked",` + common + `}`},
		{"an amendment of the practice's appointment 9", `,{"system": "https://signpost.example/fhir/Id/gpconnect-appointment", "value": "A00001/9"}`, "booked", "",
			`{"resourceType": "Appointment", "id": "9", ` + profile + contained + `
			  "extension": [` + booking + `,` + channel + `], "status": "booked",` + common + `}`},
		{"a cancellation, its reason", `,{"system": "https://signpost.example/fhir/Id/gpconnect-appointment", "value": "A00001/9"}`, "cancelled",
			`"cancelationReason": {"text": "Patient recovered"},`,
			`{"resourceType": "Appointment", "id": "9", ` + profile + contained + `
			  "extension": [` + booking + `,
			    {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1", "valueString": "Patient recovered"},
			    ` + channel + `], "status": "cancelled",` + common + `}`},
		{"a cancellation, its reason coded", `,{"system": "https://signpost.example/fhir/Id/gpconnect-appointment", "value": "A00001/9"}`, "cancelled",
			`"cancelationReason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason", "code": "pat", "display": "Patient"}]},`,
			`{"resourceType": "Appointment", "id": "9", ` + profile + contained + `
			  "extension": [` + booking + `,
			    {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1", "valueString": "Patient"},
			    ` + channel + `], "status": "cancelled",` + common + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.AppointmentFromR4(r4Appointment(t, tc.ident, tc.status, tc.extra), stu3.AppointmentOptions{BookingOrganization: consumer})
			must(t, err)
			b, _ := json.Marshal(got)
			if d := cmp.Diff(generic(t, []byte(tc.want)), generic(t, b)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestMappingRefusals: what GP Connect cannot carry is refused, saying
// where.
func TestMappingRefusals(t *testing.T) {
	p := stu3.Practice{ODS: "A00001", Refs: map[string]string{"Patient/p1": "Patient/2"}}
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"a status STU3 lacks", func() error {
			_, err := p.AppointmentFromR4(r4Appointment(t, "", "waitlist", ""), stu3.AppointmentOptions{})
			return err
		}, `Appointment.status: "waitlist" has no GP Connect`},
		{"a patient the practice does not know", func() error {
			_, err := stu3.Practice{ODS: "A00001"}.AppointmentFromR4(r4Appointment(t, "", "booked", ""), stu3.AppointmentOptions{})
			return err
		}, "Appointment.participant[0].actor: Patient/p1 is not known at practice A00001"},
		{"a slot of another practice", func() error {
			_, err := stu3.Practice{ODS: "B00002", Refs: p.Refs}.AppointmentFromR4(r4Appointment(t, "", "booked", ""), stu3.AppointmentOptions{})
			return err
		}, "Appointment.slot[0]: Slot/gpc-A00001-1584 is not a slot of practice B00002"},
		{"an STU3 slot without status or schedule", func() error {
			_, err := p.SlotToR4(&stu3.Slot{ID: "1", Start: "2026-12-08T09:00:00Z", End: "2026-12-08T09:15:00Z"})
			return err
		}, "Slot.schedule: missing\nSlot.status: missing"},
		{"an STU3 slot status outside the value set", func() error {
			_, err := p.SlotToR4(&stu3.Slot{ID: "1", Status: "open", Schedule: stu3.Reference{Reference: "Schedule/1"}, Start: "x", End: "y"})
			return err
		}, `Slot.status: "open" is not a valid code`},
		{"an id too long for FHIR", func() error {
			_, err := p.SlotToR4(&stu3.Slot{ID: strings.Repeat("9", 60), Status: "free", Schedule: stu3.Reference{Reference: "Schedule/1"}, Start: "x", End: "y"})
			return err
		}, "Slot.id: gpconnect: practice id"},
		{"a contact point system R4 does not know", func() error {
			_, err := p.OrganizationToR4(&stu3.Organization{ID: "1", Telecom: stu3.List[stu3.ContactPoint]{{System: "telex", Value: "1"}}})
			return err
		}, "Organization.telecom"},
		{"a booking organisation not contained", func() error {
			_, err := p.AppointmentToR4(&stu3.Appointment{Status: "booked",
				Extension:   []stu3.Extension{{URL: stu3.ExtBookingOrganisation, ValueReference: &stu3.Reference{Reference: "#9"}}},
				Participant: []stu3.Participant{{Actor: &stu3.Reference{Reference: "Patient/1"}, Status: "accepted"}}})
			return err
		}, "Appointment.extension[0]: the booking organisation #9 is not contained"},
		{"a slot search without the slot's schedule", func() error {
			raw, _ := json.Marshal(stu3.Slot{ResourceType: "Slot", ID: "1", Status: "free", Schedule: stu3.Reference{Reference: "Schedule/9"}, Start: "2026-12-08T09:00:00Z", End: "2026-12-08T09:15:00Z"})
			_, err := p.SlotSearchToR4(&stu3.Bundle{ResourceType: "Bundle", Type: "searchset", Entry: []stu3.Entry{{Resource: raw}}})
			return err
		}, "Slot[0].schedule: Schedule/9 is not included"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSlotFromSignpost: a Signpost Slot of the practice maps back to the
// practice's Slot by its identifier, Signpost's extensions left out.
func TestSlotFromSignpost(t *testing.T) {
	p := stu3.Practice{ODS: "A00001"}
	s, err := r4.UnmarshalSlot([]byte(`{"resourceType": "Slot", "id": "gpc-A00001-1584",
	  "identifier": [{"system": "https://signpost.example/fhir/Id/gpconnect-slot", "value": "A00001/1584"}],
	  "extension": [{"url": "https://signpost.example/fhir/StructureDefinition/bookability", "valueCode": "direct"}],
	  "serviceCategory": [{"text": "General GP Appointments"}, {"text": "second"}],
	  "schedule": {"reference": "Schedule/gpc-A00001-14"}, "status": "busy",
	  "start": "2026-12-08T09:00:00Z", "end": "2026-12-08T09:15:00Z"}`))
	must(t, err)
	got, err := p.SlotFromR4(&s)
	must(t, err)
	b, _ := json.Marshal(got)
	want := `{"resourceType": "Slot", "id": "1584", "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Slot-1"]},
	  "serviceCategory": {"text": "General GP Appointments"},
	  "schedule": {"reference": "Schedule/14"}, "status": "busy",
	  "start": "2026-12-08T09:00:00Z", "end": "2026-12-08T09:15:00Z"}`
	if d := cmp.Diff(generic(t, []byte(want)), generic(t, b)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestErrors: GP Connect's OperationOutcomes read back as *Error with
// status and code, matched by errors.Is; a body that is not one still
// gives the status.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		code   string
		status int
	}{
		{stu3.CodeDuplicateRejected, 409}, {stu3.CodeInvalidResource, 422}, {stu3.CodeNoRecordFound, 404},
		{stu3.CodeBadRequest, 400}, {stu3.CodeReferenceNotFound, 422}, {stu3.CodeAccessDenied, 403},
		{stu3.CodeInvalidNHSNumber, 400}, {stu3.CodeInvalidParameter, 422},
	} {
		t.Run(tc.code, func(t *testing.T) {
			if got := stu3.StatusOf(tc.code); got != tc.status {
				t.Errorf("StatusOf = %d, want %d", got, tc.status)
			}
			b, _ := json.Marshal(stu3.NewOutcome(tc.code, "because"))
			err := stu3.ParseError(stu3.StatusOf(tc.code), b)
			if err.Status != tc.status || err.Code != tc.code || err.Diagnostics != "because" {
				t.Errorf("ParseError = %+v", err)
			}
			var wrapped error = errors.Join(errors.New("booking"), err)
			if !errors.Is(wrapped, &stu3.Error{Code: tc.code}) || errors.Is(wrapped, &stu3.Error{Code: "OTHER"}) {
				t.Errorf("errors.Is does not match by code")
			}
		})
	}
	if err := stu3.ParseError(502, []byte("<html>Bad gateway</html>")); err.Status != 502 || err.Code != "" || !strings.Contains(err.Error(), "HTTP 502") {
		t.Errorf("non-FHIR body: %+v", err)
	}
}
