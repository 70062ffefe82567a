package subscription

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/conformance"
)

// TestTopicsPublished: each topic the package detects is published as a
// SubscriptionTopic with its url and focus type, and nothing else is.
func TestTopicsPublished(t *testing.T) {
	published := map[string]string{}
	for _, raw := range conformance.Definitions("SubscriptionTopic") {
		var st struct {
			ID, URL         string
			ResourceTrigger []struct{ Resource string }
		}
		if err := json.Unmarshal(raw, &st); err != nil || len(st.ResourceTrigger) != 1 {
			t.Fatalf("SubscriptionTopic %s: %v", raw[:80], err)
		}
		if st.URL != TopicBase+st.ID {
			t.Errorf("SubscriptionTopic/%s has url %s, want %s", st.ID, st.URL, TopicBase+st.ID)
		}
		published[st.URL] = strings.TrimPrefix(st.ResourceTrigger[0].Resource, "http://hl7.org/fhir/StructureDefinition/")
	}
	if len(published) != len(Topics) {
		t.Errorf("%d topics published, %d detected", len(published), len(Topics))
	}
	for url, topic := range Topics {
		if published[url] != topic.Resource {
			t.Errorf("topic %s on %s is published on %q", url, topic.Resource, published[url])
		}
	}
}

// TestTriggers: each topic's trigger on the writes Signpost makes.
func TestTriggers(t *testing.T) {
	appt := func(status, start string, slots ...string) string {
		var refs []string
		for _, s := range slots {
			refs = append(refs, `{"reference":"Slot/`+s+`"}`)
		}
		return `{"resourceType":"Appointment","status":"` + status + `","start":"` + start + `","slot":[` + strings.Join(refs, ",") + `]}`
	}
	replacing := `{"resourceType":"Appointment","status":"booked","start":"b","slot":[{"reference":"Slot/2"}],` +
		`"extension":[{"url":"http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.replaces","valueReference":{"reference":"Appointment/old"}}]}`
	slot := func(status string) string { return `{"resourceType":"Slot","status":"` + status + `"}` }
	task := func(state string) string {
		return `{"resourceType":"Task","businessStatus":{"coding":[{"system":"https://signpost.example/fhir/CodeSystem/referral-state","code":"` + state + `"}]}}`
	}
	for _, tc := range []struct {
		topic, name, old, new string
		want                  bool
	}{
		{"appointment-booked", "created booked", "", appt("booked", "a", "1"), true},
		{"appointment-booked", "hold booked", appt("pending", "a", "1"), appt("booked", "a", "1"), true},
		{"appointment-booked", "a hold", "", appt("pending", "a", "1"), false},
		{"appointment-booked", "updated while booked", appt("booked", "a", "1"), appt("booked", "a", "1"), false},
		{"appointment-booked", "a reschedule", "", replacing, false},
		{"appointment-cancelled", "cancelled", appt("booked", "a", "1"), appt("cancelled", "a", "1"), true},
		{"appointment-cancelled", "hold released", appt("pending", "a", "1"), appt("cancelled", "a", "1"), true},
		{"appointment-cancelled", "created cancelled", "", appt("cancelled", "a", "1"), false},
		{"appointment-cancelled", "still cancelled", appt("cancelled", "a", "1"), appt("cancelled", "a", "1"), false},
		{"appointment-rescheduled", "$reschedule", "", replacing, true},
		{"appointment-rescheduled", "moved in place", appt("booked", "a", "1"), appt("booked", "b", "2"), true},
		{"appointment-rescheduled", "unchanged", appt("booked", "a", "1"), appt("booked", "a", "1"), false},
		{"appointment-rescheduled", "a new booking", "", appt("booked", "a", "1"), false},
		{"appointment-rescheduled", "cancelled", appt("booked", "a", "1"), appt("cancelled", "a", "1"), false},
		{"slot-freed", "freed", slot("busy"), slot("free"), true},
		{"slot-freed", "hold released", slot("busy-tentative"), slot("free"), true},
		{"slot-freed", "created free", "", slot("free"), false},
		{"slot-freed", "taken", slot("free"), slot("busy"), false},
		{"referral-state-changed", "referred", "", task("awaiting-booking"), true},
		{"referral-state-changed", "booked", task("awaiting-booking"), task("booked"), true},
		{"referral-state-changed", "unchanged", task("booked"), task("booked"), false},
		{"referral-state-changed", "another Task", "", `{"resourceType":"Task","status":"requested"}`, false},
	} {
		var old []byte
		if tc.old != "" {
			old = []byte(tc.old)
		}
		if got := Topics[TopicBase+tc.topic].Trigger(old, []byte(tc.new)); got != tc.want {
			t.Errorf("%s, %s: %v, want %v", tc.topic, tc.name, got, tc.want)
		}
	}
}
