package pas_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/fhir"
)

// TestBuilder: each message Signpost sends carries, at the paths a PAS
// reads, what the appointment, its patient, schedule, service and referral
// say (the v2-to-FHIR mappings in reverse), survives the codec, and has a
// control id of its own.
func TestBuilder(t *testing.T) {
	res := func(typ, id, js string) *fhir.Resource {
		return &fhir.Resource{Type: typ, ID: id, Version: 1, JSON: []byte(js)}
	}
	subj := &pas.Subject{
		Appointment: res("Appointment", "appt-1", `{"resourceType":"Appointment","id":"appt-1","status":"booked",
			"start":"2026-12-07T09:00:00Z","end":"2026-12-07T09:15:00Z",
			"identifier":[{"system":"urn:signpost:adapter:pas-rh8:filler","value":"F-77"}],
			"cancelationReason":{"text":"patient asked"}}`),
		Schedule: res("Schedule", "sched-pas", `{"resourceType":"Schedule"}`),
		Service:  res("HealthcareService", "hs-pas", `{"resourceType":"HealthcareService","name":"Cardiology"}`),
		Patient: res("Patient", "pat-1", `{"resourceType":"Patient","birthDate":"1980-05-17","gender":"female",
			"name":[{"family":"Jones","given":["Ann","Mary"]}],
			"identifier":[{"system":"https://harbour.example/Id/pas-number","value":"P100001"},
			{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}]}`),
		Referral: res("ServiceRequest", "sr-1", `{"resourceType":"ServiceRequest","identifier":[{"system":"https://fhir.nhs.uk/Id/UBRN","value":"000011112222"}]}`),
		Practitioner: []*fhir.Resource{res("Practitioner", "pr-1", `{"resourceType":"Practitioner",
			"identifier":[{"system":"https://fhir.hl7.org.uk/Id/gmc-number","value":"G123"}],"name":[{"family":"Who","given":["Doctor"]}]}`)},
	}
	b := pas.Builder{Instance: "pas-rh8", Location: time.UTC, Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) },
		Settings: pas.Settings{Application: "SIGNPOST", Facility: "RH8", PASApplication: "PAS", PASFacility: "RH8", Version: "2.5.1",
			PASNumberSystem: "https://harbour.example/Id/pas-number", Clinics: map[string]string{"CARD1": "sched-pas"}}}
	common := map[string]string{
		"MSH-3": "SIGNPOST", "MSH-4": "RH8", "MSH-5": "PAS", "MSH-6": "RH8", "MSH-7": "20261206120000+0000", "MSH-12": "2.5.1",
		"PID-3[1].1": "9990000018", "PID-3[1].4": "NHS", "PID-3[1].5": "NH",
		"PID-3[2].1": "P100001", "PID-3[2].4": "RH8", "PID-3[2].5": "PI",
		"PID-5.1": "Jones", "PID-5.2": "Ann", "PID-5.3": "Mary", "PID-7": "19800517", "PID-8": "F",
		"AIS-3.1": "hs-pas", "AIS-3.2": "Cardiology", "AIS-4": "20261207090000+0000", "AIS-7": "15",
		"AIL-3.1": "CARD1", "AIL-3.4": "RH8", "AIP-3.1": "G123", "AIP-3.2": "Who",
	}
	tests := []struct {
		name string
		make func() (*hl7v2.Message, error)
		want map[string]string
	}{
		{"SIU^S12", func() (*hl7v2.Message, error) { return b.SIU(pas.EventBooked, subj) }, map[string]string{
			"MSH-9.1": "SIU", "MSH-9.2": "S12", "MSH-9.3": "SIU_S12",
			"SCH-1.1": "appt-1", "SCH-1.2": "SIGNPOST", "SCH-2.1": "F-77", "SCH-2.2": "PAS", "SCH-6.1": "S12",
			"SCH-9": "15", "SCH-11.4": "20261207090000+0000", "SCH-11.5": "20261207091500+0000",
			"SCH-25.1": "Booked", "SCH-26.1": "000011112222", "SCH-26.2": "UBRN",
			"TQ1-7": "20261207090000+0000", "AIS-10": "Booked", "RGS-1": "1", "PV1-2": "O", "PV1-3.1": "CARD1"}},
		{"SIU^S15", func() (*hl7v2.Message, error) { return b.SIU(pas.EventCancelled, subj) }, map[string]string{
			"MSH-9.2": "S15", "SCH-6.2": "patient asked"}},
		{"SRM^S01", func() (*hl7v2.Message, error) { return b.SRM(pas.EventRequestBooking, subj) }, map[string]string{
			"MSH-9.1": "SRM", "MSH-9.2": "S01", "ARQ-1.1": "appt-1", "ARQ-2.1": "F-77", "ARQ-11.1": "20261207090000+0000",
			"ARQ-24.1": "000011112222", "ARQ-15.1": "SIGNPOST", "ARQ-19.1": "SIGNPOST"}},
		{"SRM^S04", func() (*hl7v2.Message, error) { return b.SRM(pas.EventRequestCancel, subj) }, map[string]string{
			"MSH-9.2": "S04", "AIS-10": "Cancelled", "ARQ-6.2": "patient asked"}},
	}
	ids := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.make()
			if err != nil {
				t.Fatal(err)
			}
			back, err := hl7v2.Parse(m.Encode())
			if err != nil {
				t.Fatalf("the message does not parse: %v\n%s", err, m)
			}
			if err := back.CheckHeader(); err != nil {
				t.Errorf("header: %v", err)
			}
			got, want := map[string]string{}, map[string]string{}
			for _, w := range []map[string]string{common, tt.want} {
				for p, v := range w {
					want[p], got[p] = v, back.Get(p)
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("fields (-want +got):\n%s\n%s", d, back)
			}
			if ctl := back.ControlID(); len(ctl) != 20 || ids[ctl] {
				t.Errorf("control id %q: not 20 characters, or used twice", ctl)
			}
			ids[back.ControlID()] = true
		})
	}
	if _, err := b.SIU(pas.EventRequestBooking, subj); err == nil {
		t.Error("SIU^S01 built")
	}
}
