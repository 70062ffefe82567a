package pas

// The request profile (mode pas-confirmed): the PAS is the system of
// record of its services' slots, and a booking of them stands only once
// the PAS accepts it.
//
//  1. In the booking's transaction, the booking domain holds it pending
//     (booking.Service.ConfirmedBy, registered by confirmBookings): the
//     Appointment pending and marked awaiting-confirmation by the
//     instance, its slots busy-tentative. watchRequest builds SRM^S01
//     from what the transaction wrote, just before it commits.
//  2. After the commit (write.Tx.AfterCommit), still inside the client's
//     request, SRM^S01 goes to the PAS on a connection of its own and its
//     answer is awaited up to Settings.ConfirmTimeout.
//  3. AA (an SRR^S01 or an application ACK): a second transaction books
//     the appointment (its slots busy) and keeps the PAS's filler id
//     (SCH-2 of an SRR); the client is answered the booked Appointment
//     (write.Tx.Supersede), and an Idempotency-Key remembers that answer.
//  4. AE or AR (502 PAS_RESPONDED_WITH_ERROR), or no answer in time or no
//     connection (504 PAS_NOT_RESPONDING): a second transaction cancels
//     the appointment (its slots freed), queues a compensating SRM^S04
//     through the outbox (so that a PAS that booked it after all, a late
//     AA, cancels it again), and moves a referral the appointment was
//     booked for to the provider's slot-issues worklist. No
//     Idempotency-Key remembers the error: the client may retry.
//
// Should Signpost stop between 1 and 3, the appointment's hold expires
// and the booking domain cancels it (booking.Service.Sweep); that
// cancellation is a client-side change like any other, and watchRequest
// queues SRM^S04 for it.
//
// Other changes made in Signpost to appointments of the PAS's services go
// through the outbox and are not waited for: a cancellation (or delete)
// as SRM^S04, a reschedule ($reschedule: the cancellation and the new
// booking in one transaction) as one SRM^S03 about the new appointment.
// The instance's own writes (the PAS's answers, bookings the PAS sent)
// are never sent back to it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// The error codes (CodeSystem error) of a booking the PAS did not accept.
const (
	ErrPASRespondedWithError = "PAS_RESPONDED_WITH_ERROR" // AE or AR: 502
	ErrPASNotResponding      = "PAS_NOT_RESPONDING"       // no answer in time: 504
	// ErrPASConfirmsAlone: a transaction Bundle of several entries would
	// book a slot the PAS confirms (422, nothing written).
	ErrPASConfirmsAlone = "PAS_CONFIRMS_ALONE"
)

// defaultConfirmTimeout bounds the wait for the PAS's answer when
// Settings.ConfirmTimeout is not set.
const defaultConfirmTimeout = 10 * time.Second

// confirmBookings makes the instance the one that confirms bookings of
// its services' slots (booking.Service.ConfirmedBy). New calls it in mode
// pas-confirmed.
func (a *Adapter) confirmBookings() error {
	if err := a.env.ConfirmBookings(a.set.Services, a.asks); err != nil {
		return fmt.Errorf("settings.mode: pas-confirmed %w", err)
	}
	return nil
}

// asks is the instance's booking.AsksFunc: a booking of its services'
// slots waits for the PAS, except the instance's own writes (the PAS's
// acceptance, a booking the PAS made), the server's own work (demo data)
// and a reschedule of one of the PAS's appointments, which the PAS is
// told of through the outbox (SRM^S03). An appointment moved in from
// another service is a new booking to the PAS, and waits for it.
func (a *Adapter) asks(ctx context.Context, tx *write.Tx, c *write.Change) bool {
	if a.env.FromSelf(ctx) || write.IsServer(ctx) || c.New == nil {
		return false
	}
	prevID := replacesOf(c.New.Bytes())
	if prevID == "" {
		return true
	}
	prev, err := readOrNil(ctx, tx, "Appointment", prevID)
	if err != nil || prev == nil {
		return true // nothing the PAS knows is moved: a booking of its own
	}
	var v struct {
		Slot []r4.Reference `json:"slot"`
	}
	if json.Unmarshal(prev.JSON, &v) != nil {
		return true
	}
	mine, err := a.ownsAppointment(ctx, tx, v.Slot, prev, nil)
	return err != nil || !mine
}

// replacesOf returns the id of the appointment an Appointment (its JSON)
// replaces (a reschedule's booking: booking.ExtReplaces), or "".
func replacesOf(appointmentJSON []byte) string {
	var v struct {
		Extension []r4.Extension `json:"extension"`
	}
	if json.Unmarshal(appointmentJSON, &v) != nil {
		return ""
	}
	return replaced(v.Extension)
}

// requests is what one transaction asks of the PAS, gathered by
// watchRequest over its writes and sent just before it commits.
type requests struct {
	booked    []string                  // appointments newly awaiting the instance's confirmation
	created   map[string]bool           // … of which the transaction created these
	cancelled []string                  // appointments cancelled or deleted, in order
	last      map[string]*fhir.Resource // a deleted appointment's last version
	moved     []string                  // new appointments replacing another (reschedules)
}

// requestsKey keys an instance's requests in a transaction (write.Tx.Local).
type requestsKey struct{ instance string }

// watchRequest is the request profile's part of Watch: it notes the
// transaction's changes to appointments that ask something of the PAS
// and, the first time, schedules their messages for just before the
// commit (sendRequests). A referral's moves are told to the PAS as in the
// notify profile (watchTask: REF^I13).
func (a *Adapter) watchRequest(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.Type == "Task" && a.dispatcher != nil {
		return a.watchTask(ctx, tx, c)
	}
	if c.Type != "Appointment" || a.env.FromSelf(ctx) {
		return nil
	}
	var rq *requests
	first := false
	rq = tx.Local(requestsKey{a.env.Name}, func() any {
		first = true
		return &requests{created: map[string]bool{}, last: map[string]*fhir.Resource{}}
	}).(*requests)
	if first {
		tx.BeforeCommit(func(ctx context.Context) error { return a.sendRequests(ctx, tx, rq) })
	}
	wasLive := c.Old != nil && booking.HoldsSlots(c.Old.JSON)
	// The PAS knows a live appointment unless it is a hold nobody booked.
	known := wasLive && (!pending(c.Old.JSON) || booking.AwaitsConfirmation(c.Old.JSON) != "")
	switch {
	case c.New == nil:
		if known {
			rq.cancelled = append(rq.cancelled, c.ID)
			rq.last[c.ID] = c.Old
		}
	case booking.AwaitsConfirmation(c.New.Bytes()) == a.env.Name:
		if c.Old == nil || booking.AwaitsConfirmation(c.Old.JSON) == "" {
			rq.booked = append(rq.booked, c.ID)
			rq.created[c.ID] = c.Old == nil
		}
	case known && !booking.HoldsSlots(c.New.Bytes()):
		rq.cancelled = append(rq.cancelled, c.ID)
	case !wasLive && booking.HoldsSlots(c.New.Bytes()) && replacesOf(c.New.Bytes()) != "":
		rq.moved = append(rq.moved, c.ID)
	}
	return nil
}

// sendRequests runs just before the transaction commits: it queues
// SRM^S03 for each reschedule and SRM^S04 for each other cancellation of
// an appointment of the PAS's services, and builds SRM^S01 for each
// booking awaiting the instance, to send once the transaction commits.
func (a *Adapter) sendRequests(ctx context.Context, tx *write.Tx, rq *requests) error {
	queued := false
	moved := map[string]bool{} // appointments a reschedule of this transaction replaced
	for _, id := range rq.moved {
		s, err := a.subject(ctx, tx, id, nil)
		if err != nil {
			return err
		}
		if s == nil {
			continue
		}
		moved[replacesOf(s.Appointment.JSON)] = true
		if err := a.queue(ctx, tx, EventRequestModify, s); err != nil {
			return err
		}
		queued = true
	}
	for _, id := range rq.cancelled {
		if moved[id] {
			continue
		}
		s, err := a.subject(ctx, tx, id, rq.last[id])
		if err != nil {
			return err
		}
		if s == nil {
			continue
		}
		if err := a.queue(ctx, tx, EventRequestCancel, s); err != nil {
			return err
		}
		queued = true
	}
	if queued {
		tx.AfterCommit(func(context.Context) error { a.Wake(); return nil })
	}
	if len(rq.booked) > 0 && tx.Options().Entries > 1 {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "",
			"Appointment/%s books a slot the hospital PAS must confirm, which it does after the commit: a refusal could undo the booking but not the other entries of this transaction Bundle; send the booking on its own", rq.booked[0]).
			WithDetails(ErrPASConfirmsAlone)
	}
	for _, id := range rq.booked {
		s, err := a.subject(ctx, tx, id, nil)
		if err != nil {
			return err
		}
		if s == nil {
			continue
		}
		msg, err := a.builder().SRM(EventRequestBooking, s)
		if err != nil {
			return fmt.Errorf("SRM^S01 for Appointment/%s: %w", id, err)
		}
		b := &pasBooking{id: id, created: rq.created[id], claim: tx.Claim(), msg: msg}
		tx.AfterCommit(func(ctx context.Context) error { return a.confirm(ctx, tx, b) })
	}
	return nil
}

// subject reads, in tx, what a message about Appointment/id needs; last
// is its version to use when it was deleted. It returns nil when the
// appointment is not of the PAS's services.
func (a *Adapter) subject(ctx context.Context, tx *write.Tx, id string, last *fhir.Resource) (*Subject, error) {
	res := last
	if res == nil {
		var err error
		if res, err = tx.Read(ctx, "Appointment", id); err != nil {
			return nil, err
		}
	}
	s, err := LoadSubject(ctx, tx, res)
	if err != nil {
		return nil, err
	}
	if s.Service == nil || !a.services[s.Service.ID] {
		return nil, nil
	}
	if s.PlacerID, err = a.placer(ctx, tx, res.ID, replacesOf(res.JSON)); err != nil {
		return nil, err
	}
	return s, nil
}

// queue queues the SRM of event about s in tx's outbox, ordered with the
// other messages of the appointment's chain of reschedules (keyed by its
// placer id, as the notify profile's). It is built when it is sent, from
// s's version of the appointment (deferred.go).
func (a *Adapter) queue(ctx context.Context, tx *write.Tx, event string, s *Subject) error {
	ob, ok := tx.Tx.(store.OutboxTx)
	if !ok {
		return fmt.Errorf("adapter %s: the store's transactions keep no outbox", a.env.Name)
	}
	return a.enqueueEvent(ctx, ob, queuedEvent{Event: event, Appointment: s.Appointment.ID, Version: s.Appointment.Version,
		Placer: s.placer(), At: tx.Now()})
}

// pasBooking is one booking the PAS is asked to confirm.
type pasBooking struct {
	id      string
	created bool           // the booking's transaction created the appointment (201)
	claim   *write.Claim   // its Idempotency-Key, if any
	msg     *hl7v2.Message // SRM^S01
}

// answer is what the PAS said to SRM^S01.
type answer struct {
	accepted bool
	filler   string // SCH-2.1 of an SRR, the PAS's id of the appointment
	err      error  // the client's error when not accepted (502, 504)
}

// confirm is the AfterCommit work of a booking awaiting the PAS: it asks
// the PAS and settles the booking as it answers. Its error is the
// client's answer.
func (a *Adapter) confirm(ctx context.Context, tx *write.Tx, b *pasBooking) error {
	ctx = context.WithoutCancel(ctx) // the PAS's answer is settled even when the client has gone
	ans := a.ask(ctx, b.msg)
	if ans.accepted {
		res, err := a.book(ctx, b, ans.filler)
		if err == nil {
			tx.Supersede(res)
			return nil
		}
		a.failed(fmt.Sprintf("the PAS accepted Appointment/%s, which could not be booked here: %v", b.id, err))
		ans.err = err // cancelled meanwhile, or its hold expired: the PAS is told to cancel it
	}
	if err := a.refuse(ctx, b, ans.err); err != nil {
		a.failed(fmt.Sprintf("undoing Appointment/%s after the PAS did not accept it: %v", b.id, err))
		return errors.Join(ans.err, err)
	}
	return ans.err
}

// ask sends msg to the PAS on a connection of its own and reads the
// answer, waiting up to Settings.ConfirmTimeout in all.
func (a *Adapter) ask(ctx context.Context, msg *hl7v2.Message) answer {
	timeout := a.set.ConfirmTimeout.Or(defaultConfirmTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &mllp.Client{Addr: a.set.Send, TLSConfig: a.tls, DialTimeout: timeout, AckTimeout: timeout}
	defer c.Close()
	raw, err := c.Send(ctx, msg.Encode())
	if err != nil {
		a.asked(fmt.Sprintf("SRM^S01 %s: %v", msg.ControlID(), err))
		return answer{err: fhir.Errorf(fhir.GatewayTimeout, "timeout", "",
			"the PAS did not answer the booking request within %s (%v): the booking is cancelled; try again later or book another slot", timeout, err).
			WithDetails(ErrPASNotResponding)}
	}
	return a.readAnswer(msg, raw)
}

// readAnswer reads the PAS's answer to SRM^S01: an SRR^S01 or an ACK
// whose MSA-2 echoes the request's control id. Only AA accepts it.
func (a *Adapter) readAnswer(msg *hl7v2.Message, raw []byte) answer {
	// An answer that cannot be read, or answers another message, is a
	// failed exchange (the instance is degraded); a readable AE or AR is
	// the PAS deciding, an exchange that worked (its reason is still
	// the instance's last error).
	refusal := func(text string) answer {
		return answer{err: fhir.Errorf(fhir.BadGateway, "exception", "",
			"the PAS did not accept the booking: %s; the booking is cancelled", text).WithDetails(ErrPASRespondedWithError)}
	}
	refused := func(format string, args ...any) answer {
		text := fmt.Sprintf(format, args...)
		a.asked(fmt.Sprintf("SRM^S01 %s: %s", msg.ControlID(), text))
		return refusal(text)
	}
	ack, err := hl7v2.Parse(raw)
	if err != nil {
		return refused("its answer cannot be read (%v)", err)
	}
	if ack.Segment("MSA", 1) == nil {
		return refused("its answer has no MSA segment")
	}
	code, echo := ack.Get("MSA-1"), ack.Get("MSA-2")
	if echo != msg.ControlID() {
		return refused("its answer (%s) is to control id %q, not %q", code, echo, msg.ControlID())
	}
	if code != "AA" {
		var why []string
		if t := ack.Get("MSA-3"); t != "" {
			why = append(why, t)
		}
		for _, e := range ack.All("ERR") {
			if t := e.Get("ERR-8", ack.Delimiters); t != "" {
				why = append(why, t)
			} else if t := e.Get("ERR-3.2", ack.Delimiters); t != "" {
				why = append(why, t)
			}
		}
		text := fmt.Sprintf("it answered %s", code)
		if len(why) > 0 {
			text += " (" + strings.Join(slices.Compact(why), "; ") + ")"
		}
		a.failed(fmt.Sprintf("SRM^S01 %s: %s", msg.ControlID(), text))
		a.asked("")
		return refusal(text)
	}
	a.asked("")
	return answer{accepted: true, filler: ack.Get("SCH-2.1")}
}

// book is the PAS's acceptance: in a transaction of its own, acting as
// the instance, the appointment becomes booked (the booking domain makes
// its slots busy) with the PAS's filler id, and the booking request's
// Idempotency-Key remembers the booked appointment.
func (a *Adapter) book(ctx context.Context, b *pasBooking, filler string) (*fhir.Resource, error) {
	var out *fhir.Resource
	err := a.env.Writes.Update(a.env.Context(ctx), func(ctx context.Context, tx *write.Tx) error {
		var err error
		out, err = booking.Accept(ctx, tx, booking.Acceptance{ID: b.id, By: a.env.Name, System: FillerSystem(a.env.Name),
			Value: filler, Created: b.created, Claim: b.claim, Describe: "the PAS"})
		return err
	})
	return out, err
}

// refuse undoes a booking the PAS did not accept (why says how): in a
// transaction of its own, acting as the instance, the appointment is
// cancelled (the booking domain frees its slots), SRM^S04 is queued for
// the PAS, and each referral the appointment was booked for becomes a
// slot issue of the PAS's service. An appointment no longer live was
// cancelled meanwhile, and the PAS told then.
func (a *Adapter) refuse(ctx context.Context, b *pasBooking, why error) error {
	reason := "Not confirmed by the hospital PAS"
	if e := fhir.AsError(why); len(e.Issues) > 0 {
		reason += ": " + e.Issues[0].Diagnostics
	}
	queued := false
	err := a.env.Writes.Update(a.env.Context(ctx), func(ctx context.Context, tx *write.Tx) error {
		queued = false
		cur, err := tx.Read(ctx, "Appointment", b.id)
		if fhir.KindOf(err) == fhir.Gone {
			return nil
		} else if err != nil {
			return err
		}
		if !booking.HoldsSlots(cur.JSON) {
			return nil
		}
		obj, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return err
		}
		obj.Set("status", "cancelled")
		obj.Set("cancelationReason", r4.CodeableConcept{Text: elem.Opt(reason)})
		res, _, err := tx.Put(ctx, "Appointment", b.id, obj, cur.Version)
		if err != nil {
			return err
		}
		s, err := LoadSubject(ctx, tx, res)
		if err != nil {
			return err
		}
		if s.PlacerID, err = a.placer(ctx, tx, res.ID, replacesOf(res.JSON)); err != nil {
			return err
		}
		if err := a.queue(ctx, tx, EventRequestCancel, s); err != nil {
			return err
		}
		queued = true
		if s.Service == nil {
			return nil
		}
		var v struct {
			BasedOn []r4.Reference `json:"basedOn"`
		}
		_ = json.Unmarshal(res.JSON, &v)
		for _, ref := range v.BasedOn {
			if typ, _, ok := fhir.SplitReference(elem.Str(ref.Reference)); ok && typ == "ServiceRequest" {
				_, err := a.env.Referral.RaiseSlotIssue(ctx, tx, elem.Str(ref.Reference), s.Service.Reference(), reason)
				if k := fhir.KindOf(err); k == fhir.Unprocessable || k == fhir.NotFound {
					// Past booking (accepted, say) or gone: the cancellation stands alone.
					a.env.Logger.Info("no slot issue for the refused booking's referral", "appointment", b.id, "referral", elem.Str(ref.Reference), "reason", err)
				} else if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if queued && err == nil {
		a.Wake()
	}
	return err
}

// pending reports whether an Appointment (its JSON) is pending.
func pending(appointmentJSON []byte) bool {
	var v struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(appointmentJSON, &v)
	return v.Status == "pending"
}
