package pas_test

import (
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// TestInboundUnmirrored: the PAS books a patient the trust may not book
// for in Signpost (no relationship there). No Appointment is made, but
// the time is taken out of what Signpost offers: its slot becomes busy
// (externally-busy, the filler id on it), so no client can book it, and
// the PAS hears AA with a warning. A resent copy is answered the same
// without applying again; the PAS cancelling that booking (S15) frees
// the time, and a client can book it again.
func TestInboundUnmirrored(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	f.giveSpecialty()
	stranger := nhsNo(505) // a patient of another practice, unknown to the trust
	apptest.Seed(t, f.App, map[string]any{"resourceType": "Patient", "id": "pat-stranger",
		"name":                []any{map[string]any{"family": "Stranger"}},
		"generalPractitioner": []any{map[string]any{"reference": "Organization/gp-a"}},
		"identifier":          []any{map[string]any{"system": referral.NHSNumberSystem, "value": stranger}}})
	msg := siu("S12", "NOREL-1", "F-NOREL", pidOf(stranger, "RH8P000"), clinic, f.SlotStart(4), 15)

	for _, copy := range []string{"first", "resent"} {
		ack := f.send(msg)
		expectAck(t, ack, "AA")
		if got := ack.Get("ERR-4"); got != "W" {
			t.Errorf("%s: ERR-4 %q, want W (a warning); acknowledgement:\n%s", copy, got, ack)
		}
		if text := ack.Get("MSA-3"); !strings.Contains(text, "not mirrored") {
			t.Errorf("%s: MSA-3 %q does not say the appointment is not mirrored", copy, text)
		}
	}
	if got := f.byFiller("F-NOREL"); len(got) != 0 {
		t.Fatalf("an appointment was made for a patient the trust may not book for: %v", got)
	}
	slot := f.Read("Slot", "slot-4")
	tags, _ := slot["meta"].(map[string]any)["tag"].([]any)
	if slot["status"] != "busy" || len(tags) != 1 || tags[0].(map[string]any)["code"] != booking.TagExternallyBusy {
		t.Fatalf("slot-4 is not externally busy: %v", slot)
	}
	if ids := f.storeSearch("Slot", "identifier", pas.FillerSystem(instance)+"|F-NOREL"); len(ids) != 1 {
		t.Fatalf("slot-4 does not carry the filler id: %v", ids)
	}

	// A client cannot book the blocked slot.
	gp := f.Token(devserver.ClientGPSystem, apptest.SystemScopes)
	book := f.appointment(4, f.referral())
	if status, out := f.Do(gp, "POST", "/Appointment", book); status != 409 {
		t.Fatalf("booking the blocked slot: %d, want 409: %v", status, out)
	}

	// The PAS cancels its booking: the time is free again, and bookable.
	ack := f.send(siuRef("S15", "NOREL-CANC", "F-NOREL"))
	expectAck(t, ack, "AA")
	slot = f.Read("Slot", "slot-4")
	if slot["status"] != "free" || slot["meta"] != nil && slot["meta"].(map[string]any)["tag"] != nil || slot["identifier"] != nil {
		t.Fatalf("slot-4 after the PAS cancelled: %v", slot)
	}
	if status, out := f.Do(gp, "POST", "/Appointment", book); status != 201 {
		t.Fatalf("booking the freed slot: %d, want 201: %v", status, out)
	}
}
