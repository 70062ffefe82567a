package referral_test

import (
	"strings"
	"testing"
)

// TestActionsCancelTheBooking: redirecting, rejecting or cancelling a
// booked referral cancels its appointment in the same transaction, which
// frees the slot (and the service's wait comes back).
func TestActionsCancelTheBooking(t *testing.T) {
	for _, tc := range []struct {
		action    string
		params    map[string]any
		wantState string
		wantWhy   string
	}{
		{"redirect", params("service", ref("HealthcareService/hs-derm-gpwsi"), "reason", "GPwSI can see this sooner"),
			"redirected", "referral redirected to HealthcareService/hs-derm-gpwsi: GPwSI can see this sooner"},
		{"reject", params("reason", "needs a dermoscopy photo first"), "rejected", "referral rejected: needs a dermoscopy photo first"},
		{"cancel", params(), "cancelled", "referral cancelled"},
	} {
		t.Run(tc.action, func(t *testing.T) {
			c := newClient(t)
			loadDirectory(c)
			slots := addSlots(c, "hs-derm-city", 10, 12)
			sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
			srRef := "ServiceRequest/" + sr["id"].(string)
			appt := book(c, srRef, "hs-derm-city", slots[0])
			if got := c.must(200, "GET", "/"+slots[0], nil)["status"]; got != "busy" {
				t.Fatalf("booked slot status = %v, want busy", got)
			}

			c.must(200, "POST", "/"+srRef+"/$"+tc.action, tc.params)

			a := c.must(200, "GET", "/"+appt, nil)
			if a["status"] != "cancelled" || get(a, "cancelationReason", "text") != tc.wantWhy {
				t.Errorf("appointment after $%s: status %v, reason %q; want cancelled, %q", tc.action, a["status"], get(a, "cancelationReason", "text"), tc.wantWhy)
			}
			if got := c.must(200, "GET", "/"+slots[0], nil)["status"]; got != "free" {
				t.Errorf("slot after $%s = %v, want free", tc.action, got)
			}
			if got := waitDays(c, "hs-derm-city"); got != float64(10) {
				t.Errorf("City wait after $%s = %v days, want 10 again", tc.action, got)
			}
			if got := state(task(c, srRef)); got != tc.wantState {
				t.Errorf("state after $%s = %q, want %s", tc.action, got, tc.wantState)
			}
			// One Provenance for the action, none for an appointment-driven move.
			var moves []string
			for _, p := range c.search("/Provenance?target=" + srRef + "&_sort=recorded") {
				moves = append(moves, get(p, "activity", "coding", 0, "code").(string))
			}
			if got, want := strings.Join(moves, ","), "awaiting-booking,booked,"+tc.wantState; got != want {
				t.Errorf("Provenance activities = %s, want %s", got, want)
			}
		})
	}
}

// TestRefusedActionKeepsTheBooking: a refused action cancels nothing.
func TestRefusedActionKeepsTheBooking(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	slots := addSlots(c, "hs-derm-city", 10)
	sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	srRef := "ServiceRequest/" + sr["id"].(string)
	appt := book(c, srRef, "hs-derm-city", slots[0])
	if status, _ := c.do("POST", "/"+srRef+"/$redirect", params("service", ref("HealthcareService/nope"))); status != 422 {
		t.Errorf("$redirect to an unknown service: %d, want 422", status)
	}
	if got := c.must(200, "GET", "/"+appt, nil)["status"]; got != "booked" {
		t.Errorf("appointment after a refused $redirect = %v, want booked", got)
	}
	if got := c.must(200, "GET", "/"+slots[0], nil)["status"]; got != "busy" {
		t.Errorf("slot after a refused $redirect = %v, want busy", got)
	}
}
