package referral_test

import (
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/domain/referral"
)

const photoQuestionnaire = referral.Base + "/Questionnaire/derm-photo"

// requireQuestionnaire makes service ask for photoQuestionnaire before
// booking.
func requireQuestionnaire(c *client, service string) {
	c.t.Helper()
	hs := c.must(200, "GET", "/HealthcareService/"+service, nil)
	exts, _ := hs["extension"].([]any)
	hs["extension"] = append(exts, map[string]any{"url": referral.BookingQuestionnaire, "valueCanonical": photoQuestionnaire})
	c.must(200, "PUT", "/HealthcareService/"+service, hs)
}

func answers(sr, questionnaire, status string, value any) map[string]any {
	return map[string]any{"resourceType": "QuestionnaireResponse", "status": status, "basedOn": []any{ref(sr)},
		"questionnaire": questionnaire, "subject": ref("Patient/pat-1"),
		"item": []any{map[string]any{"linkId": "1", "answer": []any{value}}}}
}

// TestBookingQuestionnaire: a service that requires its booking questions
// answered refuses a booking for a referral until a completed response to
// its Questionnaire is basedOn the referral, whichever way the appointment
// names the service (a participant, or the slot's schedule).
func TestBookingQuestionnaire(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	c.create(map[string]any{"resourceType": "Questionnaire", "status": "active", "url": photoQuestionnaire,
		"item": []any{map[string]any{"linkId": "1", "text": "Have you a photo of the lesion?", "type": "boolean"}}})
	requireQuestionnaire(c, "hs-derm-city")
	slots := addSlots(c, "hs-derm-city", 10, 11)
	sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	srRef := "ServiceRequest/" + sr["id"].(string)
	viaSchedule := func(slot string) map[string]any { // names the service only through the slot
		s := c.must(200, "GET", "/"+slot, nil)
		return map[string]any{"resourceType": "Appointment", "status": "booked", "basedOn": []any{ref(srRef)},
			"slot": []any{ref(slot)}, "start": s["start"], "end": s["end"],
			"participant": []any{map[string]any{"actor": ref("Patient/pat-1"), "status": "accepted"}}}
	}

	for _, step := range []struct {
		name   string
		answer map[string]any
	}{
		{"no answers", nil},
		{"answers in progress", answers(srRef, photoQuestionnaire, "in-progress", map[string]any{"valueBoolean": true})},
		{"answers to another questionnaire", answers(srRef, referral.Base+"/Questionnaire/other", "completed", map[string]any{"valueBoolean": true})},
	} {
		if step.answer != nil {
			if strings.HasSuffix(step.answer["questionnaire"].(string), "/other") {
				c.create(map[string]any{"resourceType": "Questionnaire", "status": "active", "url": step.answer["questionnaire"],
					"item": []any{map[string]any{"linkId": "1", "text": "?", "type": "boolean"}}})
			}
			c.create(step.answer)
		}
		status, oo := c.do("POST", "/Appointment", viaSchedule(slots[0]))
		if status != 422 || errorCode(oo) != "BOOKING_QUESTIONNAIRE_REQUIRED" {
			t.Fatalf("%s: booking answered %d %s, want 422 BOOKING_QUESTIONNAIRE_REQUIRED", step.name, status, errorCode(oo))
		}
		if diag, _ := get(oo, "issue", 0, "diagnostics").(string); !strings.Contains(diag, photoQuestionnaire) || get(oo, "issue", 0, "expression", 0) != "Appointment.basedOn" {
			t.Errorf("%s: OperationOutcome %v does not name the questionnaire at Appointment.basedOn", step.name, oo)
		}
		if got := c.must(200, "GET", "/"+slots[0], nil)["status"]; got != "free" {
			t.Errorf("%s: slot after the refused booking = %v, want free", step.name, got)
		}
	}

	// Answered: both ways of naming the service book.
	c.create(answers(srRef, photoQuestionnaire, "completed", map[string]any{"valueBoolean": true}))
	c.must(201, "POST", "/Appointment", viaSchedule(slots[0]))
	c.must(200, "POST", "/"+srRef+"/$cancel", params())

	// Another referral, booked with the service as a participant.
	sr2 := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	sr2Ref := "ServiceRequest/" + sr2["id"].(string)
	if status, oo := c.do("POST", "/Appointment", bookingOf(c, sr2Ref, "hs-derm-city", slots[1])); status != 422 || errorCode(oo) != "BOOKING_QUESTIONNAIRE_REQUIRED" {
		t.Errorf("booking with the service as participant: %d %s, want 422 BOOKING_QUESTIONNAIRE_REQUIRED", status, errorCode(oo))
	}
	c.create(answers(sr2Ref, "Questionnaire/"+questionnaireID(c, photoQuestionnaire), "completed", map[string]any{"valueBoolean": false}))
	c.must(201, "POST", "/Appointment", bookingOf(c, sr2Ref, "hs-derm-city", slots[1]))

	// A service without the requirement books without answers.
	other := addSlots(c, "hs-derm-gpwsi", 12)
	sr3 := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	book(c, "ServiceRequest/"+sr3["id"].(string), "hs-derm-gpwsi", other[0])
}

func bookingOf(c *client, sr, service, slot string) map[string]any {
	s := c.must(200, "GET", "/"+slot, nil)
	return map[string]any{"resourceType": "Appointment", "status": "booked", "basedOn": []any{ref(sr)},
		"slot": []any{ref(slot)}, "start": s["start"], "end": s["end"],
		"participant": []any{
			map[string]any{"actor": ref("Patient/pat-1"), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}}
}

func questionnaireID(c *client, url string) string {
	qs := c.search("/Questionnaire?url=" + url)
	if len(qs) != 1 {
		c.t.Fatalf("%d Questionnaires with url %s", len(qs), url)
	}
	return qs[0]["id"].(string)
}

// TestPatientExperience: experience feedback is taken after the
// appointment only, and $patient-experience reports it by service and
// question (Parameters and CSV).
func TestPatientExperience(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	const experience = referral.Base + "/Questionnaire/experience"
	c.create(map[string]any{"resourceType": "Questionnaire", "status": "active", "url": experience,
		"extension": []any{map[string]any{"url": referral.ExperienceExtension, "valueBoolean": true}},
		"item": []any{
			map[string]any{"linkId": "overall", "text": "Overall, how was your experience? (1-5)", "type": "integer"},
			map[string]any{"linkId": "comment", "text": "Anything else?", "type": "string"}}})
	slots := addSlots(c, "hs-derm-city", 3, 4)
	var appts []string
	var refs []string
	for i := range 2 {
		sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
		refs = append(refs, "ServiceRequest/"+sr["id"].(string))
		appts = append(appts, book(c, refs[i], "hs-derm-city", slots[i]))
	}
	feedback := func(sr string, score int) map[string]any {
		return map[string]any{"resourceType": "QuestionnaireResponse", "status": "completed", "basedOn": []any{ref(sr)},
			"questionnaire": experience, "subject": ref("Patient/pat-1"),
			"item": []any{
				map[string]any{"linkId": "overall", "answer": []any{map[string]any{"valueInteger": score}}},
				map[string]any{"linkId": "comment", "answer": []any{map[string]any{"valueString": "fine"}}}}}
	}
	if status, oo := c.do("POST", "/QuestionnaireResponse", feedback(refs[0], 5)); status != 422 || errorCode(oo) != "NO_APPOINTMENT_YET" {
		t.Errorf("feedback before the appointment: %d %s, want 422 NO_APPOINTMENT_YET", status, errorCode(oo))
	}
	for i, score := range []int{5, 2} {
		tookPlace(c, appts[i])
		a := c.must(200, "GET", "/"+appts[i], nil)
		a["status"] = "fulfilled"
		c.must(200, "PUT", "/"+appts[i], a)
		c.create(feedback(refs[i], score))
	}
	_, csv := c.raw("GET", "/$patient-experience?_format=text/csv", nil)
	want := "service,questionnaire,question,text,responses,average\n" +
		"HealthcareService/hs-derm-city," + experience + ",comment,Anything else?,2,\n" +
		"HealthcareService/hs-derm-city," + experience + ",overall,\"Overall, how was your experience? (1-5)\",2,3.5\n"
	if string(csv) != want {
		t.Errorf("$patient-experience CSV =\n%s\nwant\n%s", csv, want)
	}
	out := c.must(200, "GET", "/$patient-experience", nil)
	if got := get(out, "parameter", 1, "part", 5, "valueDecimal"); got != 3.5 {
		t.Errorf("$patient-experience average of overall = %v, want 3.5 (%v)", got, out)
	}
}
