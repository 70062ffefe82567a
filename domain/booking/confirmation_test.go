package booking_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

// confirmerKey marks the context of the other system's own writes.
type confirmerKey struct{}

// TestConfirmedBy: bookings of a service another system confirms wait for
// it. A client's booking (created booked, or a hold booked) is written
// pending, awaiting the system, its slot busy-tentative with a hold
// expiry, and no Idempotency-Key remembers it; a client cannot book it
// meanwhile but may cancel it; the system's own write books it (slot
// busy, the marks gone). Other services' bookings book at once, and a
// client cannot set the mark itself.
func TestConfirmedBy(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	s.put(service("hs-other"), schedule("sc-other", "hs-other"),
		slotAt("s1", "sc", t0, 15*time.Minute), slotAt("s2", "sc", t0.Add(time.Hour), 15*time.Minute),
		slotAt("s3", "sc", t0.Add(2*time.Hour), 15*time.Minute), slotAt("o1", "sc-other", t0, 15*time.Minute))
	asked := 0
	s.app.Booking.ConfirmedBy("hs", "pas-x", func(ctx context.Context, _ *write.Tx, c *write.Change) bool {
		if ctx.Value(confirmerKey{}) != nil {
			return false
		}
		asked++
		return true
	})
	awaiting := func(what string, a map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(a)
		if a["status"] != "pending" || booking.AwaitsConfirmation(raw) != "pas-x" || !hasExt(a, booking.ExtHoldExpires) {
			t.Errorf("%s: %v, want pending, awaiting pas-x, with a hold expiry", what, a)
		}
	}

	// A booking waits, and its key is not remembered.
	r := must(t, "booking", s.do("POST", "/Appointment", booked("p1", "s1"), "Idempotency-Key", "k1"), 201)
	a := r.json()
	awaiting("a booking", a)
	if got := s.slotStatus("s1"); got != "busy-tentative" {
		t.Errorf("s1 is %s while the booking waits, want busy-tentative", got)
	}
	if r := s.do("POST", "/Appointment", booked("p1", "s1"), "Idempotency-Key", "k1"); r.status != http.StatusConflict || r.detail() != booking.ErrSlotNotAvailable {
		t.Errorf("the same key again: %d %s, want no replay but 409 %s (the slot is held)", r.status, r.body, booking.ErrSlotNotAvailable)
	}
	// A client cannot book it.
	id := a["id"].(string)
	a["status"] = "booked"
	if r := s.do("PUT", "/Appointment/"+id, a); r.status != http.StatusConflict {
		t.Errorf("a client booking it: %d %s, want 409", r.status, r.body)
	}
	// The system's own write books it.
	confirmed := s.write(context.WithValue(context.Background(), confirmerKey{}, true), id, func(obj *fhir.Object) { obj.Set("status", "booked") })
	if confirmed["status"] != "booked" || hasExt(confirmed, booking.ExtAwaitingConfirmation) || hasExt(confirmed, booking.ExtHoldExpires) {
		t.Errorf("confirmed: %v, want booked without the marks", confirmed)
	}
	if got := s.slotStatus("s1"); got != "busy" {
		t.Errorf("s1 is %s once confirmed, want busy", got)
	}

	// A hold is not asked; booking it is.
	before := asked
	h := booked("p1", "s2")
	h["status"] = "pending"
	hold := must(t, "a hold", s.do("POST", "/Appointment", h), 201).json()
	if asked != before || hasExt(hold, booking.ExtAwaitingConfirmation) {
		t.Errorf("a hold was asked (%d) or marked: %v", asked-before, hold)
	}
	r = must(t, "booking the hold", s.do("POST", "/Appointment/$book", map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "appointment-reference", "valueReference": map[string]any{"reference": "Appointment/" + hold["id"].(string)}},
		map[string]any{"name": "patient-reference", "valueReference": map[string]any{"reference": "Patient/p1"}}}}), 200)
	var b struct {
		Entry []struct{ Resource map[string]any }
	}
	json.Unmarshal(r.body, &b)
	awaiting("a hold booked", b.Entry[0].Resource)
	// A client may cancel a booking that waits: its slot is freed.
	c := b.Entry[0].Resource
	c["status"], c["cancelationReason"] = "cancelled", map[string]any{"text": "changed my mind"}
	cancelled := must(t, "cancelling", s.do("PUT", "/Appointment/"+c["id"].(string), c), 200).json()
	if hasExt(cancelled, booking.ExtAwaitingConfirmation) || s.slotStatus("s2") != "free" {
		t.Errorf("cancelled: %v, slot s2 %s; want no mark and the slot free", cancelled, s.slotStatus("s2"))
	}

	// Another service books at once; a client's mark is dropped.
	other := booked("p1", "o1")
	other["extension"] = []any{map[string]any{"url": booking.ExtAwaitingConfirmation, "valueString": "me"}}
	o := must(t, "another service", s.do("POST", "/Appointment", other), 201).json()
	if o["status"] != "booked" || hasExt(o, booking.ExtAwaitingConfirmation) || s.slotStatus("o1") != "busy" {
		t.Errorf("another service's booking: %v, slot %s; want booked, unmarked, busy", o, s.slotStatus("o1"))
	}
	o["extension"] = other["extension"]
	if amended := must(t, "amending", s.do("PUT", "/Appointment/"+o["id"].(string), o), 200).json(); hasExt(amended, booking.ExtAwaitingConfirmation) {
		t.Errorf("a client's amendment set the mark: %v", amended)
	}
	s.check()
}

// write changes Appointment/id with edit through the write path, in ctx,
// and returns the result.
func (s *server) write(ctx context.Context, id string, edit func(*fhir.Object)) map[string]any {
	s.t.Helper()
	err := s.app.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		cur, err := tx.Read(ctx, "Appointment", id)
		if err != nil {
			return err
		}
		obj, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return err
		}
		edit(obj)
		_, _, err = tx.Put(ctx, "Appointment", id, obj, cur.Version)
		return err
	})
	if err != nil {
		s.t.Fatalf("writing Appointment/%s: %v", id, err)
	}
	return s.read("Appointment", id)
}

// hasExt reports whether a resource carries an extension with url.
func hasExt(r map[string]any, url string) bool {
	exts, _ := r["extension"].([]any)
	for _, e := range exts {
		if m, _ := e.(map[string]any); m["url"] == url {
			return true
		}
	}
	return false
}
