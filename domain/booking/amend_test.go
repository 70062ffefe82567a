package booking_test

import (
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
)

// TestAmendRecordedAppointment: the GP Connect amendment rules guard
// appointments that hold slots; an appointment recorded booked without
// slots (a booking made elsewhere) may be amended freely, but its status
// moves as any appointment's, it cannot gain slots by amendment, and once
// cancelled it is final.
func TestAmendRecordedAppointment(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	s.put(slotAt("a", "sc", tomorrow9(), 15*time.Minute))
	t0 := tomorrow9().Add(48 * time.Hour)
	rec := map[string]any{"resourceType": "Appointment", "status": "booked",
		"start": t0.Format(time.RFC3339), "end": t0.Add(30 * time.Minute).Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": ref("Patient/p1"), "status": "accepted"}}}
	id := must(t, "record", s.do("POST", "/Appointment", rec), 201).json()["id"].(string)
	path := "/Appointment/" + id
	slotted := must(t, "book", s.do("POST", "/Appointment", booked("p2", "a")), 201).json()

	later := t0.Add(24 * time.Hour)
	for _, tc := range []struct {
		name   string
		appt   map[string]any
		change func(a map[string]any)
		status int
		at     []string
	}{
		{"recorded: move it, add a participant, set priority", nil, func(a map[string]any) {
			a["start"], a["end"] = later.Format(time.RFC3339), later.Add(time.Hour).Format(time.RFC3339)
			a["priority"] = 2
			a["participant"] = append(a["participant"].([]any), map[string]any{"actor": map[string]any{"display": "Dr Who"}, "status": "accepted"})
		}, 200, nil},
		{"recorded: claim a slot by amendment", nil, func(a map[string]any) {
			a["slot"] = []any{ref("Slot/a")}
		}, 422, []string{"Appointment.slot"}},
		{"recorded: booked back to proposed", nil, func(a map[string]any) { a["status"] = "proposed" }, 422, []string{"Appointment.status"}},
		{"slotted: move it", slotted, func(a map[string]any) {
			a["start"], a["end"] = later.Format(time.RFC3339), later.Add(15*time.Minute).Format(time.RFC3339)
		}, 422, []string{"Appointment.start", "Appointment.end"}},
		{"slotted: set priority", slotted, func(a map[string]any) { a["priority"] = 2 }, 422, []string{"Appointment.priority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aid := id
			if tc.appt != nil {
				aid = tc.appt["id"].(string)
			}
			a := s.read("Appointment", aid)
			tc.change(a)
			r := s.do("PUT", "/Appointment/"+aid, a)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tc.status, r.body)
			}
			for _, at := range tc.at {
				if !slices.Contains(r.expressions(), at) {
					t.Errorf("expressions %v, want %s", r.expressions(), at)
				}
			}
		})
	}
	if got := s.read("Appointment", id)["start"]; got != later.Format(time.RFC3339) {
		t.Errorf("recorded appointment start %v, want %s", got, later.Format(time.RFC3339))
	}
	if st := s.slotStatus("a"); st != "busy" {
		t.Errorf("Slot/a is %s, want busy (its booking's)", st)
	}
	// Cancelled: final.
	a := s.read("Appointment", id)
	a["status"], a["cancelationReason"] = "cancelled", map[string]any{"text": "moved elsewhere"}
	must(t, "cancel", s.do("PUT", path, a), 200)
	a["description"] = "after all"
	if r := s.do("PUT", path, a); r.status != 422 || r.detail() != booking.ErrNotAmendable {
		t.Errorf("changing a cancelled recorded appointment: %d %s, want 422 %s", r.status, r.detail(), booking.ErrNotAmendable)
	}
	s.check()
}
