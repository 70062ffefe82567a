package booking

import (
	"context"
	"net/http"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// Bookings another system confirms. For some services Signpost is not the
// booking system of record: a hospital PAS is (adapters/pas in
// pas-confirmed mode), and a booking of their slots stands only once it
// accepts it. The system registers the services it confirms
// (ConfirmedBy); a write that would book their slots then books them
// pending instead: the Appointment pending with ExtAwaitingConfirmation
// naming the system, its slots busy-tentative, until the system's own
// write books it (its acceptance) or a cancellation frees them (its
// refusal, no answer, or the hold expiring: the hold-expires instant
// bounds the wait even when nobody is left to decide).

// ExtAwaitingConfirmation (valueString, server-owned) marks a pending
// Appointment whose booking waits for another system of record to confirm
// it; the value names the system (ConfirmedBy's by).
const ExtAwaitingConfirmation = "https://signpost.example/fhir/StructureDefinition/awaiting-confirmation"

// AsksFunc reports whether the write c, which would book slots of a
// service the system confirms, must wait for the system's answer; tx is
// its transaction, to read what the answer depends on. It answers false
// for the system's own writes (its acceptance, a booking made in it),
// which book at once, and for writes the system hears of afterwards
// instead (a reschedule of one of its appointments).
type AsksFunc func(ctx context.Context, tx *write.Tx, c *write.Change) bool

// confirmer is a system of record other than Signpost.
type confirmer struct {
	by   string
	asks AsksFunc
}

// ConfirmedBy makes the system by (an adapter instance's name) the one
// that confirms bookings of the slots of HealthcareService/service: a
// write that would book them (status booked, on create or confirming a
// hold) and for which asks reports true books them pending instead,
// marked ExtAwaitingConfirmation, until a write asks does not ask for
// (the system's acceptance) books it. A client cannot book an
// appointment that awaits confirmation; it may cancel it. Call it during
// start-up only; a second system for one service panics.
func (b *Service) ConfirmedBy(service, by string, asks AsksFunc) {
	if b.confirmers == nil {
		b.confirmers = map[string]confirmer{}
	}
	if cur, dup := b.confirmers[service]; dup {
		panic("booking: HealthcareService/" + service + " is confirmed by " + cur.by + " already, not also by " + by)
	}
	b.confirmers[service] = confirmer{by: by, asks: asks}
}

// AwaitsConfirmation returns the system that must still confirm the
// booking of an Appointment (its JSON), or "" when it awaits none.
func AwaitsConfirmation(appointmentJSON []byte) string {
	a, err := decode[appointment](appointmentJSON)
	if err != nil || a.Status != "pending" {
		return ""
	}
	if ext := a.ext(ExtAwaitingConfirmation); ext != nil {
		return elem.Str(ext.ValueString)
	}
	return ""
}

// confirmerOf returns the system that confirms bookings of the slots of
// Schedule ref (the first of its actors that one confirms), or nil.
func (b *Service) confirmerOf(ctx context.Context, r store.Reader, ref string) (*confirmer, error) {
	if len(b.confirmers) == 0 {
		return nil, nil
	}
	id, ok := refID(ref, "Schedule")
	if !ok {
		return nil, nil
	}
	res, err := r.Read(ctx, "Schedule", id)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	sc, err := b.schedules.Get(res.JSON)
	if err != nil {
		return nil, err
	}
	for _, actor := range sc.Actor {
		if hid, ok := refID(elem.Str(actor.Reference), "HealthcareService"); ok {
			if cf, ok := b.confirmers[hid]; ok {
				return &cf, nil
			}
		}
	}
	return nil, nil
}

// confirmerOfSlots is confirmerOf for the schedule of an appointment's
// first slot.
func (b *Service) confirmerOfSlots(ctx context.Context, r store.Reader, a *appointment) (*confirmer, error) {
	if len(b.confirmers) == 0 {
		return nil, nil
	}
	ids, err := a.slotIDs()
	if err != nil || len(ids) == 0 {
		return nil, nil
	}
	res, err := r.Read(ctx, "Slot", ids[0])
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	s, err := decode[slot](res.JSON)
	if err != nil {
		return nil, err
	}
	return b.confirmerOf(ctx, r, elem.Str(s.Schedule.Reference))
}

// awaitConfirmation turns the booking c into a wait for cf's answer: the
// appointment becomes pending, marked as awaiting cf; claim and confirm
// then hold its slots busy-tentative with a fresh hold-expires.
func awaitConfirmation(c *write.Change, a *appointment, cf *confirmer) error {
	c.New.Set("status", "pending")
	a.Status = "pending"
	return setExtension(c.New, r4.Extension{Url: ExtAwaitingConfirmation, ValueString: elem.Opt(cf.by)})
}

// newlyAwaiting reports whether the write c left its appointment awaiting
// confirmation when it did not before: its answer is not final (the
// other system's decides it), so no Idempotency-Key remembers it.
func newlyAwaiting(c *write.Change) bool {
	if c.New == nil || AwaitsConfirmation(c.New.Bytes()) == "" {
		return false
	}
	return c.Old == nil || AwaitsConfirmation(c.Old.JSON) == ""
}

// Acceptance is a confirming system's yes to a booking that awaits it.
type Acceptance struct {
	ID       string       // the Appointment
	By       string       // the confirming system (ConfirmedBy's by)
	System   string       // an identifier system of the system's own id of the appointment
	Value    string       // that id; "" when the system gave none
	Created  bool         // the booking request created the appointment (its answer was 201)
	Claim    *write.Claim // the booking request's Idempotency-Key, if any
	Describe string       // the system, as a refusal names it ("the PAS", "the practice")
}

// Accept books, in tx, the appointment that awaits ac.By's confirmation:
// status booked (the booking rules make its slots busy) with the system's
// id as an identifier, and the booking request's Idempotency-Key
// remembers the booked appointment. An appointment that no longer awaits
// ac.By (cancelled meanwhile) is a conflict.
func Accept(ctx context.Context, tx *write.Tx, ac Acceptance) (*fhir.Resource, error) {
	cur, err := tx.Read(ctx, "Appointment", ac.ID)
	if err != nil {
		return nil, err
	}
	if AwaitsConfirmation(cur.JSON) != ac.By {
		return nil, fhir.Errorf(fhir.Conflict, "conflict", "", "Appointment/%s no longer awaits %s's confirmation (it was cancelled meanwhile)", ac.ID, ac.Describe)
	}
	obj, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return nil, err
	}
	obj.Set("status", "booked")
	if ac.Value != "" {
		if err := obj.SetIdentifier(ac.System, ac.Value); err != nil {
			return nil, err
		}
	}
	out, _, err := tx.Put(ctx, "Appointment", ac.ID, obj, cur.Version)
	if err != nil {
		return nil, err
	}
	code := http.StatusOK
	if ac.Created {
		code = http.StatusCreated
	}
	return out, tx.Remember(ctx, ac.Claim, write.Answer{Status: code, Type: out.Type, ID: out.ID, Version: out.Version})
}
