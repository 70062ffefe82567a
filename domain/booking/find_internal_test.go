package booking

import (
	"encoding/json"
	"testing"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// objectBundle is how $find rendered its searchset before proposalBundle:
// each Appointment patched into a fhir.Object, the entries marshalled by
// searchset. proposalBundle must give the same bytes.
func objectBundle(base string, tokens []string, props []proposed, fr *findRequest) []byte {
	var entries []bundleEntry
	for i, p := range props {
		s, sc := p.slot, p.schedule
		obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Appointment"}`))
		obj.Set("id", tokens[i])
		obj.Set("status", "proposed")
		for _, m := range []struct {
			key string
			v   json.RawMessage
		}{{"serviceCategory", s.ServiceCategory}, {"serviceType", s.ServiceType}, {"specialty", s.Specialty}, {"appointmentType", s.AppointmentType}} {
			if m.v != nil {
				obj.Set(m.key, m.v)
			}
		}
		obj.Set("start", s.Start)
		obj.Set("end", s.End)
		obj.Set("slot", []r4.Reference{elem.Ref("Slot/" + p.slotID)})
		if fr.referral != "" {
			obj.Set("basedOn", []r4.Reference{elem.Ref("ServiceRequest/" + fr.referral)})
		}
		parts := []participant{}
		if fr.patient != "" {
			parts = append(parts, participant{Actor: &r4.Reference{Reference: elem.Opt("Patient/" + fr.patient)}, Status: "needs-action"})
		}
		for _, a := range sc.Actor {
			ref := a
			parts = append(parts, participant{Actor: &ref, Status: "accepted"})
		}
		obj.Set("participant", parts)
		entries = append(entries, bundleEntry{FullURL: base + "/Appointment/" + tokens[i], Resource: obj.Bytes(), Mode: "match"})
	}
	return searchset(entries)
}

// TestProposalBundle: the directly written searchset of $find is, byte
// for byte, what marshalling the patched Objects gave, also for coded
// members with whitespace, HTML characters, escapes and non-ASCII text,
// actors without a reference, a patient and a referral, and no proposals.
func TestProposalBundle(t *testing.T) {
	slotJSON := func(raw string) *findSlot {
		s, err := decode[findSlot]([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	plain := slotJSON(`{"resourceType":"Slot","start":"2026-11-23T09:00:00Z","end":"2026-11-23T09:15:00Z",
		"serviceCategory":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/service-category","code":"35"}]}]}`)
	tricky := slotJSON(`{"resourceType":"Slot","start":"2026-11-23T09:00:00.5+01:00","end":"2026-11-23T09:15:00+01:00",
		"serviceType": [ { "text" : "Ear, nose & throat <ENT>" } ],
		"specialty":[{"coding":[{"system":"http://snomed.info/sct","code":"394585009","display":"Obstétrique \u2028 \"gyn\" \\ é"}]}],
		"appointmentType":{"coding":[{"code":"ROUTINE"}],
		  "text":"tab\there"}}`)
	sc := &schedule{Actor: []r4.Reference{elem.Ref("HealthcareService/hs-1"), {}, elem.Ref("Location/l<1>")}}
	for _, tc := range []struct {
		name  string
		props []proposed
		fr    *findRequest
	}{
		{"none", nil, &findRequest{}},
		{"plain", []proposed{{slotID: "s1", slot: plain, schedule: sc}}, &findRequest{}},
		{"tricky, patient and referral", []proposed{{slotID: "s1", slot: plain, schedule: sc}, {slotID: "s-2", slot: tricky, schedule: sc}},
			&findRequest{patient: "p1", referral: "sr&1"}},
	} {
		tokens := make([]string, len(tc.props))
		for i := range tokens {
			tokens[i] = "QWsDMRo" + string(rune('A'+i))
		}
		got := proposalBundle("http://x.test/fhir", tokens, tc.props, tc.fr)
		want := objectBundle("http://x.test/fhir", tokens, tc.props, tc.fr)
		if string(got) != string(want) {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: not JSON: %s", tc.name, got)
		}
	}
}
