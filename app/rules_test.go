package app_test

import (
	"slices"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// TestRuleOrder pins which rules run on each type's writes, and in which
// order, with authorisation on (app.RuleOrder declares it; the packages
// register under its names). A change here is a change of behaviour.
func TestRuleOrder(t *testing.T) {
	a, _ := apptest.New(t, app.Config{Auth: true})
	want := map[string][]string{
		"Appointment":           {"access", "subscription", "booking.clinical", "booking.appointment", "offer.appointment", "referral.guidance", "referral.appointment", "reminder.appointment", "adapters"},
		"AppointmentResponse":   {"access", "subscription", "booking.response"},
		"Slot":                  {"access", "subscription", "booking.slot", "directory.slot", "offer.slot"},
		"Schedule":              {"access", "subscription", "booking.schedule", "directory.schedule"},
		"HealthcareService":     {"access", "subscription", "directory.service"},
		"Patient":               {"access", "subscription", "referral.patient"},
		"ServiceRequest":        {"access", "subscription", "referral.service-request", "referral.category", "adapters"},
		"Task":                  {"access", "subscription", "referral.task", "offer.request", "adapters"},
		"DocumentReference":     {"access", "subscription", "referral.document-reference"},
		"Binary":                {"access", "subscription", "referral.binary"},
		"QuestionnaireResponse": {"access", "subscription", "referral.questionnaire-response"},
		"Communication":         {"access", "subscription", "referral.communication"},
		"Organization":          {"access", "subscription"},
	}
	for typ, w := range want {
		if got := a.Writes.RuleOrder(typ); !slices.Equal(got, w) {
			t.Errorf("rules on %s: got %q, want %q", typ, got, w)
		}
	}
	// Every type the table names has its rules registered: nothing is
	// declared that no package provides.
	for typ, names := range app.RuleOrder().Types {
		if got := a.Writes.RuleOrder(typ); !slices.Equal(got[2:], names) {
			t.Errorf("declared on %s: %q, registered %q", typ, names, got)
		}
	}
	if got, w := a.Writes.PrepareOrder("Appointment"), []string{"booking.slots", "referral.appointment"}; !slices.Equal(got, w) {
		t.Errorf("prepare steps of Appointment: got %q, want %q", got, w)
	}
	// An open server runs the same domain rules, without authorisation.
	open, _ := apptest.New(t, app.Config{})
	if got, w := open.Writes.RuleOrder("Slot"), []string{"subscription", "booking.slot", "directory.slot", "offer.slot"}; !slices.Equal(got, w) {
		t.Errorf("open server, rules on Slot: got %q, want %q", got, w)
	}
}
