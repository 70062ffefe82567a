package reminder_test

import (
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/reminder"
)

// optOut is a Consent opting patient out of reminders by channels (none:
// every channel).
func optOut(patient string, channels ...reminder.Channel) map[string]any {
	prov := map[string]any{"type": "deny"}
	var codes []any
	for _, ch := range channels {
		codes = append(codes, map[string]any{"coding": []any{map[string]any{"system": reminder.ChannelSystem, "code": string(ch)}}})
	}
	if len(codes) > 0 {
		prov["code"] = codes
	}
	return map[string]any{"resourceType": "Consent", "status": "active",
		"scope":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category":   []any{map[string]any{"coding": []any{map[string]any{"system": reminder.ConsentCategorySystem, "code": reminder.ConsentCategoryCode}}}},
		"patient":    map[string]any{"reference": "Patient/" + patient},
		"dateTime":   "2026-12-01T10:00:00Z",
		"policyRule": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}}},
		"provision":  prov}
}

func mint(t *testing.T, data string, opts devserver.TokenOptions) string {
	t.Helper()
	tok, err := devserver.MintToken(data, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A patient opts out with their own token (of one channel: the next one
// is used; of all: nothing is sent), the call centre for a patient; an
// opt-out made after a reminder was queued stops it at send time; a
// patient cannot opt another out; making the Consent inactive opts back
// in.
func TestOptOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	f.token = mint(t, f.data, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	f.basics()
	for _, p := range []string{"p1", "p2", "p3"} {
		f.patient(p, mobile("07700 900123"))
	}
	patientToken := func(p string) string { return mint(t, f.data, devserver.TokenOptions{Patient: p}) }

	// p1 opts out of SMS with the patient app.
	code, body := f.doAs(patientToken("p1"), "POST", "/Consent", optOut("p1", reminder.SMS))
	if code != 201 {
		t.Fatalf("patient's opt-out: %d %s", code, body)
	}
	// p1 cannot opt p3 out.
	if code, body := f.doAs(patientToken("p1"), "POST", "/Consent", optOut("p3")); code < 400 || code >= 500 {
		t.Fatalf("a patient opting another out: %d %s", code, body)
	}
	// The call centre opts p2 out of everything.
	f.must(201, "POST", "/Consent", optOut("p2"))

	start := f.t0.Add(30 * time.Hour)
	a1, a2, a3 := f.book("p1", "s1", start), f.book("p2", "s2", start), f.book("p3", "s3", start)
	f.clock.Set(f.t0.Add(time.Hour))
	if q, nd := f.sweep(); q != 2 || nd != 1 {
		t.Fatalf("sweep: queued %d, not done %d; want 2, 1", q, nd)
	}
	// p3 opts out after the reminder was queued, before it is sent.
	if code, body := f.doAs(patientToken("p3"), "POST", "/Consent", optOut("p3", reminder.SMS)); code != 201 {
		t.Fatalf("p3's opt-out: %d %s", code, body)
	}
	f.deliver()
	if sent := f.gw.Sent(); len(sent) != 0 {
		t.Errorf("SMS sent to patients who opted out: %+v", sent)
	}
	if got := f.hook.received(); len(got) != 1 {
		t.Errorf("webhook received %d, want p1's reminder", len(got))
	}
	for _, c := range []struct {
		id, status, reason, channel string
	}{
		{a1, "completed", "", "webhook"},
		{a2, "not-done", "patient-objection", ""},
		{a3, "not-done", "patient-objection", "sms"},
	} {
		rs := f.reminders(c.id)
		if len(rs) != 1 || rs[0].Status != c.status || rs[0].reason() != c.reason || rs[0].channel() != c.channel {
			t.Errorf("reminders of %s: %+v, want %s %s by %q", c.id, rs, c.status, c.reason, c.channel)
		}
	}

	// p1 opts back in: their Consent becomes inactive; the 1 d reminder
	// goes by SMS again.
	consents := f.must(200, "GET", "/Consent?patient=Patient/p1", nil)
	consent := consents["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	consent["status"] = "inactive"
	if code, body := f.doAs(patientToken("p1"), "PUT", "/Consent/"+consent["id"].(string), consent); code != 200 {
		t.Fatalf("opting back in: %d %s", code, body)
	}
	f.clock.Set(start.Add(-23 * time.Hour))
	f.sweep()
	f.deliver()
	if sent := f.gw.Sent(); len(sent) != 1 || sent[0].Reference == "" {
		t.Errorf("after opting back in: sent %+v", sent)
	}

	// With authorisation on, a patient cancelling their own appointment
	// withdraws its pending reminder (a consequence of the cancellation).
	a4 := f.book("p1", "s4", start.Add(-2*time.Hour))
	if q, _ := f.sweep(); q != 1 {
		t.Fatalf("queued %d, want p1's new reminder", q)
	}
	appt := f.must(200, "GET", "/Appointment/"+a4, nil)
	appt["status"] = "cancelled"
	appt["cancelationReason"] = map[string]any{"text": "cannot make it"}
	if code, body := f.doAs(patientToken("p1"), "PUT", "/Appointment/"+a4, appt); code != 200 {
		t.Fatalf("the patient cancelling: %d %s", code, body)
	}
	f.deliver()
	if rs := f.reminders(a4); len(rs) != 1 || rs[0].Status != "not-done" || rs[0].reason() != "appointment-cancelled" {
		t.Errorf("reminders of the cancelled appointment: %+v", rs)
	}
	if sent := f.gw.Sent(); len(sent) != 1 {
		t.Errorf("sent %d SMS, want still 1", len(sent))
	}
}
