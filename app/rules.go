package app

import "github.com/signpost-fhir/signpost/domain/write"

// RuleOrder declares which write rules run on the writes of each resource
// type, and in which order, and likewise the Prepare steps: the one place
// that says so (write.Order). Each
// package registers its rules under these names (write.Path.AddRule); a
// rule registered under a name not declared here stops the server at
// start-up.
func RuleOrder() write.Order {
	return write.Order{
		// Authorisation first (api): a caller who may not make a write
		// learns nothing from the domain's answer to it. Not registered on
		// an open server. Then subscriptions (domain/subscription): a
		// client's Subscription is checked and completed; any other write
		// is noted, and matched against the live subscriptions once the
		// transaction's writes are done (so its place among a type's own
		// rules does not matter).
		Every: []string{"access", "subscription"},
		Types: map[string][]string{
			"Appointment": {
				"booking.clinical",     // a refused status says why before any move it would make
				"booking.appointment",  // claims and frees slots; records an Idempotency-Key's answer
				"offer.appointment",    // an accepted earlier-slot offer replaces its booking: before the referral follows
				"referral.guidance",    // booking guidance answered before a booking
				"referral.appointment", // the referral's workflow follows its bookings
				"reminder.appointment", // a cancelled or moved appointment's pending reminders are withdrawn
				"adapters",             // other systems hear of the change (outbox), once the domain has settled it
			},
			"AppointmentResponse": {"booking.response"},
			"Slot": {
				"booking.slot",   // the status a slot may take
				"directory.slot", // waiting times from the slot's final status: after booking's
				"offer.slot",     // a slot freed is offered to the patients waiting, once committed
			},
			"Schedule":              {"booking.schedule", "directory.schedule"},
			"HealthcareService":     {"directory.service"},
			"Patient":               {"referral.patient"},
			"ServiceRequest":        {"referral.service-request", "referral.category", "adapters"},
			"Task":                  {"referral.task", "offer.request", "adapters"},
			"DocumentReference":     {"referral.document-reference"},
			"Binary":                {"referral.binary"},
			"QuestionnaireResponse": {"referral.questionnaire-response"},
			"Communication":         {"referral.communication"},
		},
		// The steps that fill server-owned elements of an Appointment a
		// client sends, before it is validated.
		Prepare: map[string][]string{
			"Appointment": {
				"booking.slots",        // start and end from its slots
				"referral.appointment", // the referral, and its patient as a participant
			},
		},
	}
}
