package booking_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
)

// TestRaceForOneSlot: 64 clients book the same slot at once; exactly one
// wins, the rest get 409 SLOT_NOT_AVAILABLE, and one appointment exists.
func TestRaceForOneSlot(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	s.put(slotAt("only", "sc", tomorrow9(), 15*time.Minute))
	const n = 64
	statuses := make([]*response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = s.do("POST", "/Appointment", booked("p1", "only"))
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, r := range statuses {
		count[r.status]++
		if r.status == http.StatusConflict && r.detail() != booking.ErrSlotNotAvailable {
			t.Errorf("409 details = %q, want %s", r.detail(), booking.ErrSlotNotAvailable)
		}
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses = %v, want one 201 and %d × 409", count, n-1)
	}
	if n := s.count("/Appointment?slot=Slot/only"); n != 1 {
		t.Errorf("appointments for the slot: %d, want 1", n)
	}
	if st := s.slotStatus("only"); st != "busy" {
		t.Errorf("slot status %q, want busy", st)
	}
	s.check()
}

// TestBookingRules: each broken rule gives its own OperationOutcome.
func TestBookingRules(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	past := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	s.put(service("indirect", booking.IndirectlyBookable), schedule("sc-indirect", "indirect"),
		schedule("sc2", "hs"),
		schedule("sc-horizon", "hs", `,"planningHorizon":{"start":"`+t0.Format(time.RFC3339)+`","end":"`+t0.Add(time.Hour).Format(time.RFC3339)+`"}`),
		slotAt("a", "sc", t0, 15*time.Minute), slotAt("b", "sc", t0.Add(15*time.Minute), 15*time.Minute),
		slotAt("gap", "sc", t0.Add(45*time.Minute), 15*time.Minute), slotAt("other", "sc2", t0.Add(15*time.Minute), 15*time.Minute),
		slotAt("old", "sc", past, 15*time.Minute), slotAt("ind", "sc-indirect", t0, 15*time.Minute),
		slotAt("taken", "sc", t0.Add(3*time.Hour), 15*time.Minute))
	// The write path refuses a free slot outside its schedule's horizon
	// (TestPlanningHorizon); an imported one must still not be bookable.
	s.putStored(slotAt("late", "sc-horizon", t0.Add(2*time.Hour), 15*time.Minute))
	must(t, "booking taken", s.do("POST", "/Appointment", booked("p2", "taken")), 201)

	noPatient := booked("p1", "a")
	noPatient["participant"] = []map[string]any{{"actor": map[string]string{"reference": "Practitioner/x"}, "status": "accepted"}}
	wrongStart := booked("p1", "a")
	wrongStart["start"] = t0.Add(time.Minute).Format(time.RFC3339)
	wrongStart["end"] = t0.Add(15 * time.Minute).Format(time.RFC3339)
	tests := []struct {
		name       string
		body       map[string]any
		status     int
		expression string
		detail     string
	}{
		{"missing slot", booked("p1", "nope"), 422, "Appointment.slot[0]", ""},
		{"taken slot", booked("p1", "taken"), 409, "Appointment.slot[0]", booking.ErrSlotNotAvailable},
		{"not contiguous", booked("p1", "a", "gap"), 422, "Appointment.slot", ""},
		{"two schedules", booked("p1", "a", "other"), 422, "Appointment.slot[1]", ""},
		{"in the past", booked("p1", "old"), 422, "Appointment.start", ""},
		{"no patient", noPatient, 422, "Appointment.participant", ""},
		{"start not the slot's", wrongStart, 422, "Appointment.start", ""},
		{"indirectly bookable", booked("p1", "ind"), 422, "Appointment.slot", booking.ErrNotBookable},
		{"outside planning horizon", booked("p1", "late"), 422, "Appointment.slot", booking.ErrSlotNotAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("POST", "/Appointment", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tt.status, r.body)
			}
			if got := r.expressions(); !slices.Contains(got, tt.expression) {
				t.Errorf("expressions %v, want %s", got, tt.expression)
			}
			if tt.detail != "" && r.detail() != tt.detail {
				t.Errorf("details %q, want %q", r.detail(), tt.detail)
			}
		})
	}
	for _, id := range []string{"a", "b", "gap", "other", "old", "ind", "late"} {
		if st := s.slotStatus(id); st != "free" {
			t.Errorf("after refused bookings Slot/%s is %s, want free", id, st)
		}
	}

	// Two contiguous slots, start and end filled from them.
	r := must(t, "two slots", s.do("POST", "/Appointment", booked("p1", "a", "b")), 201)
	got := r.json()
	if got["start"] != t0.Format(time.RFC3339) || got["end"] != t0.Add(30*time.Minute).Format(time.RFC3339) {
		t.Errorf("start, end = %v, %v; want the slots' bounds", got["start"], got["end"])
	}
	if s.slotStatus("a") != "busy" || s.slotStatus("b") != "busy" {
		t.Errorf("slots a, b = %s, %s; want busy", s.slotStatus("a"), s.slotStatus("b"))
	}
	// The slot stored as an import would is the checker's one finding.
	s.check("Slot/late: is free outside the planning horizon of Schedule/sc-horizon []")
}

// TestSlotConsistency: held slots and their schedules are protected;
// AppointmentResponse sets the participant's status.
func TestSlotConsistency(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	s.put(slotAt("a", "sc", tomorrow9(), 15*time.Minute))
	appt := must(t, "book", s.do("POST", "/Appointment", booked("p1", "a")), 201).json()
	id := appt["id"].(string)

	slotJSON := s.read("Slot", "a")
	slotJSON["status"] = "free"
	r := s.do("PUT", "/Slot/a", slotJSON)
	if r.status != 409 || r.detail() != booking.ErrSlotInUse {
		t.Errorf("freeing a booked slot: %d %s, want 409 %s\n%s", r.status, r.detail(), booking.ErrSlotInUse, r.body)
	}
	if r := s.do("DELETE", "/Slot/a", nil); r.status != 409 {
		t.Errorf("deleting a booked slot: %d, want 409\n%s", r.status, r.body)
	}
	if r := s.do("DELETE", "/Schedule/sc", nil); r.status != 409 {
		t.Errorf("deleting a schedule in use: %d, want 409\n%s", r.status, r.body)
	}
	slotJSON["status"] = "busy"
	slotJSON["comment"] = "a note"
	must(t, "a harmless slot update", s.do("PUT", "/Slot/a", slotJSON), 200)

	resp := map[string]any{"resourceType": "AppointmentResponse", "appointment": map[string]string{"reference": "Appointment/" + id},
		"actor": map[string]string{"reference": "Patient/p1"}, "participantStatus": "declined"}
	must(t, "AppointmentResponse", s.do("POST", "/AppointmentResponse", resp), 201)
	parts := s.read("Appointment", id)["participant"].([]any)
	if st := parts[0].(map[string]any)["status"]; st != "declined" {
		t.Errorf("participant status %v, want declined", st)
	}
	resp["actor"] = map[string]string{"reference": "Patient/p2"}
	if r := s.do("POST", "/AppointmentResponse", resp); r.status != 422 {
		t.Errorf("a response from a non-participant: %d, want 422", r.status)
	}
	s.check()
}

// TestAmendAndCancel: only the amendable elements of a booked appointment
// change; cancelling frees the slot and is harmless twice; a cancelled
// appointment is final.
func TestAmendAndCancel(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	s.put(slotAt("a", "sc", tomorrow9(), 15*time.Minute))
	appt := must(t, "book", s.do("POST", "/Appointment", booked("p1", "a")), 201).json()
	id := appt["id"].(string)
	path := "/Appointment/" + id

	appt["comment"] = "bring your glasses"
	appt["description"] = "eye test"
	must(t, "amend comment", s.do("PUT", path, appt), 200)
	appt = s.read("Appointment", id)
	appt["priority"] = 1
	appt["minutesDuration"] = 20
	r := s.do("PUT", path, appt)
	if r.status != 422 || !slices.Contains(r.expressions(), "Appointment.priority") || !slices.Contains(r.expressions(), "Appointment.minutesDuration") {
		t.Errorf("amending priority and minutesDuration: %d %v, want 422 naming both\n%s", r.status, r.expressions(), r.body)
	}
	patch := `[{"op":"replace","path":"/start","value":"` + tomorrow9().Add(time.Hour).Format(time.RFC3339) + `"},` +
		`{"op":"replace","path":"/end","value":"` + tomorrow9().Add(75*time.Minute).Format(time.RFC3339) + `"}]`
	r = s.do("PATCH", path, patch, "Content-Type", "application/json-patch+json")
	if r.status != 422 || !slices.Contains(r.expressions(), "Appointment.start") {
		t.Errorf("PATCH start: %d %v, want 422 naming Appointment.start\n%s", r.status, r.expressions(), r.body)
	}
	appt = s.read("Appointment", id)
	appt["status"] = "cancelled"
	if r := s.do("PUT", path, appt); r.status != 422 || !slices.Contains(r.expressions(), "Appointment.cancelationReason") {
		t.Errorf("cancel without reason: %d %v, want 422\n%s", r.status, r.expressions(), r.body)
	}
	appt["cancelationReason"] = map[string]any{"text": "patient request"}
	must(t, "cancel", s.do("PUT", path, appt), 200)
	if st := s.slotStatus("a"); st != "free" {
		t.Errorf("after cancel the slot is %s, want free", st)
	}
	must(t, "cancel again", s.do("PUT", path, appt), 200)
	appt["comment"] = "changed my mind"
	if r := s.do("PUT", path, appt); r.status != 422 || r.detail() != booking.ErrNotAmendable {
		t.Errorf("changing a cancelled appointment: %d %s, want 422 %s", r.status, r.detail(), booking.ErrNotAmendable)
	}
	// The slot is free again for someone else.
	must(t, "rebook", s.do("POST", "/Appointment", booked("p2", "a")), 201)
	s.check()
}

// TestIdempotencyKey: a retried booking is answered from memory; a key
// reused for another request is refused; keys are per client.
func TestIdempotencyKey(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	s.put(slotAt("a", "sc", t0, 15*time.Minute), slotAt("b", "sc", t0.Add(time.Hour), 15*time.Minute))
	first := must(t, "first", s.do("POST", "/Appointment", booked("p1", "a"), "Idempotency-Key", "k1"), 201)
	again := must(t, "retry", s.do("POST", "/Appointment", booked("p1", "a"), "Idempotency-Key", "k1"), 201)
	if again.json()["id"] != first.json()["id"] || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry answered %v (replayed %q), want the first answer %v", again.json()["id"], again.header.Get("Idempotent-Replayed"), first.json()["id"])
	}
	if r := s.do("POST", "/Appointment", booked("p1", "b"), "Idempotency-Key", "k1"); r.status != 422 || r.detail() != booking.ErrIdempotencyKeyReuse {
		t.Errorf("same key, other body: %d %s, want 422 %s", r.status, r.detail(), booking.ErrIdempotencyKeyReuse)
	}
	other := bearer("other-client")
	if r := s.do("POST", "/Appointment", booked("p1", "a"), "Idempotency-Key", "k1", "Authorization", other); r.status != 409 {
		t.Errorf("same key from another client: %d, want 409 (it acts, and the slot is taken)\n%s", r.status, r.body)
	}
	if n := s.count("/Appointment?slot=Slot/a"); n != 1 {
		t.Errorf("appointments for Slot/a: %d, want 1", n)
	}
}

// bearer returns an Authorization header with an unsigned JWT for sub.
func bearer(sub string) string {
	enc := func(s string) string { return b64(s) }
	return "Bearer " + enc(`{"alg":"none"}`) + "." + enc(fmt.Sprintf(`{"sub":%q}`, sub)) + ".sig"
}
