package booking_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// referralWith creates a GP referral for pat, returning its id and UBRN.
func (s *server) referralWith(pat string) (id, ubrn string) {
	s.t.Helper()
	sr := must(s.t, "POST ServiceRequest", s.do("POST", "/ServiceRequest", map[string]any{
		"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"subject": ref("Patient/" + pat), "requester": ref("Organization/gp"),
		"performerType": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": dermatology}}},
		"category":      []any{map[string]any{"coding": []any{map[string]any{"system": referral.Base + "/CodeSystem/referral-source", "code": "gp"}}}},
		"authoredOn":    time.Now().UTC().Format("2006-01-02")}), 201).json()
	for _, x := range sr["identifier"].([]any) {
		if x := x.(map[string]any); x["system"] == referral.UBRNSystem {
			ubrn = x["value"].(string)
		}
	}
	if ubrn == "" {
		s.t.Fatalf("the referral has no UBRN: %v", sr)
	}
	return sr["id"].(string), ubrn
}

// dermatology is the SNOMED CT specialty of referralWith's referrals.
const dermatology = "394582007"

// specialtyService is a directly bookable service of a specialty.
func specialtyService(id, specialty string) string {
	return `{"resourceType":"HealthcareService","id":"` + id + `","name":"Clinic ` + id +
		`","specialty":[{"coding":[{"system":"http://snomed.info/sct","code":"` + specialty + `"}]}]}`
}

// taskState returns the businessStatus of the referral's workflow Task.
func (s *server) taskState(sr string) string {
	s.t.Helper()
	r := must(s.t, "GET Task", s.do("GET", "/Task?focus=ServiceRequest/"+sr+"&code="+url.QueryEscape(referral.TaskCodeSystem+"|"+referral.TaskCode), nil), 200)
	ts := entries(s.t.(*testing.T), r)
	if len(ts) != 1 {
		s.t.Fatalf("ServiceRequest/%s has %d workflow Tasks, want 1", sr, len(ts))
	}
	bs, _ := ts[0]["businessStatus"].(map[string]any)
	c, _ := bs["coding"].([]any)
	if len(c) == 0 {
		return ""
	}
	return c[0].(map[string]any)["code"].(string)
}

// TestBookProposalOfReferral: a proposal made with referral-identifier
// (a UBRN) and booked or held by appointment-reference carries the
// referral as appointment-resource does: basedOn the ServiceRequest, the
// UBRN identifier, and the referral's Task booked. Ids are long and not
// UUIDs, so the proposals are stored ones.
func TestBookProposalOfReferral(t *testing.T) {
	for _, via := range []string{"book", "hold then book"} {
		t.Run(via, func(t *testing.T) {
			s := newServer(t, app.Config{})
			long := func(prefix string) string { return prefix + strings.Repeat("r", 64-len(prefix)) }
			svc, sched, pat, sl := long("hs-"), long("sc-"), long("pat-"), long("slot-")
			s.put(`{"resourceType":"Organization","id":"gp","name":"Riverside Surgery"}`, specialtyService(svc, dermatology), schedule(sched, svc), patient(pat),
				slotAt(sl, sched, tomorrow9(), 20*time.Minute))
			sr, ubrn := s.referralWith(pat)
			if got := s.taskState(sr); got != "awaiting-booking" {
				t.Fatalf("new referral state %q, want awaiting-booking", got)
			}
			q := "/Appointment/$find?healthcare-service=HealthcareService/" + svc + "&patient-reference=Patient/" + pat +
				"&referral-identifier=" + url.QueryEscape(referral.UBRNSystem+"|"+ubrn)
			found := entries(t, must(t, "$find", s.do("GET", q, nil), 200))
			if len(found) != 1 {
				t.Fatalf("$find gave %d proposals, want 1", len(found))
			}
			id := found[0]["id"].(string)
			if len(id) > 64 {
				t.Fatalf("proposal id has %d characters", len(id))
			}
			if via == "hold then book" {
				held := entries(t, must(t, "$hold", s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+id))), 200))[0]
				id = held["id"].(string)
			}
			a := entries(t, must(t, "$book", s.do("POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+id))), 200))[0]
			basedOn, _ := a["basedOn"].([]any)
			if len(basedOn) != 1 || basedOn[0].(map[string]any)["reference"] != "ServiceRequest/"+sr {
				t.Errorf("appointment basedOn %v, want ServiceRequest/%s", a["basedOn"], sr)
			}
			gotUBRN := ""
			ids, _ := a["identifier"].([]any)
			for _, x := range ids {
				if x := x.(map[string]any); x["system"] == referral.UBRNSystem {
					gotUBRN, _ = x["value"].(string)
				}
			}
			if gotUBRN != ubrn {
				t.Errorf("appointment UBRN %q, want %q", gotUBRN, ubrn)
			}
			if got := s.taskState(sr); got != "booked" {
				t.Errorf("referral state after $book %q, want booked", got)
			}
			if n := s.count("/Appointment?based-on.identifier=" + url.QueryEscape(referral.UBRNSystem+"|"+ubrn)); n != 1 {
				t.Errorf("appointments found by the UBRN: %d, want 1", n)
			}
			s.check()
		})
	}
}
