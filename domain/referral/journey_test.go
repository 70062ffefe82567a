package referral_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/domain/referral"
)

// loadDirectory loads the hand-built directory of testdata/directory.json.
func loadDirectory(c *client) {
	c.t.Helper()
	b, err := os.ReadFile("testdata/directory.json")
	if err != nil {
		c.t.Fatal(err)
	}
	c.must(200, "POST", "", b)
}

// addSlots gives service a schedule and one free 20-minute slot at 10:00
// UTC on each of the given days from now, returning the slots' ids.
func addSlots(c *client, service string, days ...int) []string {
	c.t.Helper()
	sched := c.create(map[string]any{"resourceType": "Schedule", "active": true,
		"actor": []any{ref("HealthcareService/" + service)}})
	var ids []string
	now := time.Now().UTC()
	for _, d := range days {
		start := time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, time.UTC).AddDate(0, 0, d)
		id := c.create(map[string]any{"resourceType": "Slot", "schedule": ref(sched), "status": "free",
			"start": start.Format(time.RFC3339), "end": start.Add(20 * time.Minute).Format(time.RFC3339)})
		ids = append(ids, id)
	}
	return ids
}

func dermReferral(extra map[string]any) map[string]any {
	sr := map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"subject": ref("Patient/pat-1"), "requester": ref("Organization/gp-a"),
		"performerType": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "394582007"}}},
		"category":      []any{map[string]any{"coding": []any{map[string]any{"system": referral.Base + "/CodeSystem/referral-source", "code": "gp"}}}},
		"authoredOn":    time.Now().UTC().Format("2006-01-02")}
	for k, v := range extra {
		sr[k] = v
	}
	return sr
}

// task returns the referral's workflow Task.
func task(c *client, sr string) map[string]any {
	c.t.Helper()
	ts := c.search("/Task?focus=" + sr + "&code=" + referral.TaskCodeSystem + "|" + referral.TaskCode)
	if len(ts) != 1 {
		c.t.Fatalf("%s has %d workflow Tasks, want 1", sr, len(ts))
	}
	return ts[0]
}

func state(t map[string]any) string {
	s, _ := get(t, "businessStatus", "coding", 0, "code").(string)
	return s
}

func ubrnOf(sr map[string]any) string {
	ids, _ := sr["identifier"].([]any)
	for _, id := range ids {
		if get(id, "system") == referral.UBRNSystem {
			return get(id, "value").(string)
		}
	}
	return ""
}

// book writes an Appointment for the referral on slot; the booking rules
// claim the slot in the same transaction.
func book(c *client, sr, service, slot string) string {
	c.t.Helper()
	s := c.must(200, "GET", "/"+slot, nil)
	return c.create(map[string]any{"resourceType": "Appointment", "status": "booked", "basedOn": []any{ref(sr)},
		"slot": []any{ref(slot)}, "start": s["start"], "end": s["end"],
		"participant": []any{
			map[string]any{"actor": ref("Patient/pat-1"), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}})
}

func waitDays(c *client, service string) any {
	c.t.Helper()
	hs := c.must(200, "GET", "/HealthcareService/"+service, nil)
	exts, _ := hs["extension"].([]any)
	for _, e := range exts {
		if get(e, "url") == referral.WaitingTime {
			for _, sub := range get(e, "extension").([]any) {
				if get(sub, "url") == "days" {
					return get(sub, "valueInteger")
				}
			}
			return "no slot"
		}
	}
	return nil
}

type fakeTokens struct{ issued []string }

func (f *fakeTokens) MintReferralToken(_ context.Context, patient, referral string, ttl time.Duration) (string, error) {
	f.issued = append(f.issued, patient+" "+referral)
	return fmt.Sprintf("token-for-%s-%s-%d", patient, referral, int(ttl.Minutes())), nil
}

func shortlisted(out map[string]any, name string) []string {
	var got []string
	for _, p := range out["parameter"].([]any) {
		if get(p, "name") == name {
			got = append(got, strings.TrimPrefix(get(p, "part", 0, "valueReference", "reference").(string), "HealthcareService/"))
		}
	}
	return got
}

// TestWholeJourney follows a referral from the GP to the patient's
// feedback through the HTTP API.
func TestWholeJourney(t *testing.T) {
	c := newClient(t)
	tokens := &fakeTokens{}
	c.a.Referral.Tokens = tokens
	loadDirectory(c)
	citySlots := addSlots(c, "hs-derm-city", 10, 12, 30)
	addSlots(c, "hs-derm-gpwsi", 20)
	addSlots(c, "hs-derm-far", 2)

	if got := waitDays(c, "hs-derm-city"); got != float64(10) {
		t.Errorf("City Dermatology wait = %v days, want 10", got)
	}

	// The GP refers; the server adds a 12-digit UBRN and the workflow Task.
	sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	srRef := "ServiceRequest/" + sr["id"].(string)
	ubrn := ubrnOf(sr)
	if !regexp.MustCompile(`^[1-9][0-9]{11}$`).MatchString(ubrn) {
		t.Fatalf("UBRN = %q, want 12 digits", ubrn)
	}
	if found := c.search("/ServiceRequest?identifier=" + referral.UBRNSystem + "|" + ubrn); len(found) != 1 {
		t.Errorf("search by UBRN found %d referrals, want 1", len(found))
	}
	tk := task(c, srRef)
	if got := state(tk); got != "awaiting-booking" {
		t.Errorf("new referral state = %q, want awaiting-booking", got)
	}

	// The shortlist ranks by waiting days + km / 5 and explains exclusions.
	out := c.must(200, "GET", "/"+srRef+"/$shortlist?explain=true", nil)
	if got, want := shortlisted(out, "service"), []string{"hs-derm-city", "hs-derm-gpwsi", "hs-derm-far"}; !slices.Equal(got, want) {
		t.Errorf("shortlist = %v, want %v", got, want)
	}
	excluded := shortlisted(out, "excluded")
	slices.Sort(excluded)
	if want := []string{"hs-cardio", "hs-derm-closed", "hs-derm-kids", "hs-derm-men", "hs-derm-old", "hs-derm-south"}; !slices.Equal(excluded, want) {
		t.Errorf("excluded = %v, want %v", excluded, want)
	}
	// The patient chooses; the shortlist is saved on the referral.
	c.must(200, "POST", "/"+srRef+"/$shortlist", params("save", true))
	saved := c.must(200, "GET", "/"+srRef, nil)
	var list []string
	for _, e := range saved["extension"].([]any) {
		if get(e, "url") == referral.ShortlistExtension {
			list = append(list, get(e, "valueReference", "reference").(string))
		}
	}
	if len(list) != 3 || list[0] != "HealthcareService/hs-derm-city" {
		t.Errorf("saved shortlist = %v, want the three suitable services, City first", list)
	}

	// The patient signs in with UBRN, access code and birth date.
	codes := c.must(200, "POST", "/"+srRef+"/$access-code", params())
	code := get(codes, "parameter", 1, "valueString").(string)
	if status, _ := c.do("POST", "/ServiceRequest/$ubrn-access", params("ubrn", ubrn, "access-code", code, "birthdate", "1980-05-18")); status != 404 {
		t.Errorf("$ubrn-access with a wrong birth date: %d, want 404", status)
	}
	tok := c.must(200, "POST", "/ServiceRequest/$ubrn-access", params("ubrn", ubrn, "access-code", strings.ToLower(code), "birthdate", "1980-05-17"))
	if got := get(tok, "parameter", 0, "valueString"); got != "token-for-pat-1-"+sr["id"].(string)+"-15" {
		t.Errorf("access token = %v", got)
	}

	// The patient books the City slot: the referral is booked, for review.
	appt := book(c, srRef, "hs-derm-city", citySlots[0])
	if got := waitDays(c, "hs-derm-city"); got != float64(12) {
		t.Errorf("after booking the 10-day slot, City wait = %v days, want 12", got)
	}
	a := c.must(200, "GET", "/"+appt, nil)
	if ubrnOf(a) != ubrn {
		t.Errorf("appointment UBRN = %q, want %q", ubrnOf(a), ubrn)
	}
	if got := state(task(c, srRef)); got != "booked" {
		t.Errorf("after booking, state = %q, want booked", got)
	}
	if got := get(c.must(200, "GET", "/"+srRef, nil), "performer", 0, "reference"); got != "HealthcareService/hs-derm-city" {
		t.Errorf("after booking, ServiceRequest.performer = %v, want the service booked", got)
	}
	review := c.search("/Task?worklist=for-review&owner=HealthcareService/hs-derm-city")
	if len(review) != 1 {
		t.Errorf("for-review worklist of City has %d Tasks, want 1", len(review))
	}

	// The provider accepts; accepting twice is illegal.
	c.must(200, "POST", "/"+srRef+"/$accept", params())
	status, oo := c.do("POST", "/"+srRef+"/$accept", params())
	if status != 422 || errorCode(oo) != "ILLEGAL_TRANSITION" {
		t.Errorf("second $accept: %d %s, want 422 ILLEGAL_TRANSITION", status, errorCode(oo))
	}
	provs := c.search("/Provenance?target=" + srRef)
	if len(provs) < 3 { // created, booked, accepted
		t.Errorf("%d Provenance records for the referral, want at least 3", len(provs))
	}

	// The appointment takes place: the referral is completed.
	tookPlace(c, appt)
	a = c.must(200, "GET", "/"+appt, nil)
	a["status"] = "fulfilled"
	c.must(200, "PUT", "/"+appt, a)
	if got := state(task(c, srRef)); got != "completed" {
		t.Errorf("after the appointment, state = %q, want completed", got)
	}
	if got := c.must(200, "GET", "/"+srRef, nil)["status"]; got != "completed" {
		t.Errorf("ServiceRequest.status = %v, want completed", got)
	}
	if status, _ := c.do("POST", "/"+srRef+"/$cancel", params()); status != 422 {
		t.Errorf("$cancel of a completed referral: %d, want 422", status)
	}

	// Feedback.
	c.create(map[string]any{"resourceType": "Questionnaire", "id": "x", "status": "active", "url": referral.Base + "/Questionnaire/experience",
		"item": []any{map[string]any{"linkId": "1", "text": "How was it?", "type": "integer"}}})
	c.create(map[string]any{"resourceType": "QuestionnaireResponse", "status": "completed", "basedOn": []any{ref(srRef)},
		"questionnaire": referral.Base + "/Questionnaire/experience", "subject": ref("Patient/pat-1"),
		"item": []any{map[string]any{"linkId": "1", "answer": []any{map[string]any{"valueInteger": 5}}}}})
	if status, _ := c.do("POST", "/QuestionnaireResponse", map[string]any{"resourceType": "QuestionnaireResponse", "status": "completed",
		"basedOn": []any{ref("ServiceRequest/nope")}}); status != 422 {
		t.Errorf("feedback on an unknown referral: %d, want 422", status)
	}
	outcomes := c.must(200, "GET", "/$booking-outcomes", nil)
	if get(outcomes, "parameter", 0, "part", 0, "valueReference", "reference") != "HealthcareService/hs-derm-city" ||
		get(outcomes, "parameter", 0, "part", 4, "name") != "attended" || get(outcomes, "parameter", 0, "part", 4, "valueInteger") != float64(1) {
		t.Errorf("$booking-outcomes does not count the attended appointment: %v", outcomes)
	}
}
