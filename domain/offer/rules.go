package offer

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// asBooking is the write.PutOptions of the cancellation of the booking an
// accepted offer replaces: to booking's rules it is a move of the booking
// itself, as $reschedule's cancellation is, and so answers no request of
// its own (the acceptance's Idempotency-Key remembers the acceptance, not
// it).
var asBooking = write.PutOptions{By: "booking"}

// freedKey is the write.Tx.Local key of the slots a transaction freed.
type freedKey struct{}

// withdrawnKey is the write.Tx.Local key of the requests ("Task/id") a
// transaction withdraws: their offers' cancellation leaves them be.
type withdrawnKey struct{}

func withdrawn(tx *write.Tx) map[string]bool {
	return tx.Local(withdrawnKey{}, func() any { return map[string]bool{} }).(map[string]bool)
}

// slotRule notices a slot that becomes free (a booking cancelled, a hold
// or an offer released, a new free slot published), whoever writes it:
// once the transaction has committed, the slots it freed are offered
// (OfferSlots). The work is the server's own and never fails the write
// that freed them: a failure is logged.
func (o *Service) slotRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if o.cfg.Off || c.New == nil {
		return nil
	}
	nw, err := decode[slot](c.New.Bytes())
	if err != nil || nw.Status != "free" {
		return nil
	}
	if c.Old != nil {
		if old, err := decode[slot](c.Old.JSON); err == nil && old.Status == "free" && old.Start == nw.Start {
			return nil
		}
	}
	var first bool
	freed := tx.Local(freedKey{}, func() any { first = true; return &[]string{} }).(*[]string)
	*freed = append(*freed, c.ID)
	if first {
		tx.AfterCommit(func(context.Context) error {
			if _, err := o.OfferSlots(serverCtx(), *freed); err != nil {
				o.cfg.Logger.Error("offering freed slots", "slots", *freed, "error", err)
			}
			return nil
		})
	}
	return nil
}

// appointmentRule keeps offers consistent on every write of an
// Appointment: the offer Extension is server-owned; an offer created gets
// the offer's hold time; an offer booked (accepted) replaces the booking
// it was made for in the same transaction, is based on its referral and
// completes its request; an offer cancelled (declined, expired) sends its
// request back to waiting; a booking that ends ends its requests.
func (o *Service) appointmentRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var oldJSON []byte
	var old *appointment
	if c.Old != nil {
		oldJSON = c.Old.JSON
		var err error
		if old, err = decode[appointment](oldJSON); err != nil {
			return err
		}
	}
	if c.By != own.By {
		if err := c.New.KeepExtensions(oldJSON, Extension); err != nil {
			return err
		}
	}
	nw, err := decode[appointment](c.New.Bytes())
	if err != nil {
		return err
	}
	if c.Old == nil {
		if c.By == own.By && nw.offerOf() != nil {
			expires := tx.Now().Add(o.cfg.HoldFor).UTC().Format(time.RFC3339Nano)
			return setExt(c.New, r4.Extension{Url: booking.ExtHoldExpires, ValueInstant: &expires})
		}
		return nil
	}
	cause := write.Consequence{Grant: write.WithCause, Of: "Appointment/" + c.ID}
	if off := old.offerOf(); off != nil && old.Status == "pending" {
		switch {
		case nw.Status == "booked":
			return o.accept(ctx, tx, c, nw, off, cause)
		case !nw.live():
			return o.ended(ctx, tx, c.ID, off, cause)
		}
		return nil
	}
	if old.Status == "booked" && nw.Status != "booked" {
		// The booking a request was made for is no longer one to move.
		reqs, err := o.searchAll(ctx, tx, "Task", url.Values{"focus": {"Appointment/" + c.ID},
			"code": {CodeSystem + "|" + TaskCode}, "status": {"requested,in-progress"}})
		if err != nil {
			return err
		}
		for _, res := range reqs {
			if err := o.moveRequest(ctx, tx, res, "cancelled", "", "", "the appointment is "+nw.Status, cause); err != nil {
				return err
			}
		}
	}
	return nil
}

// accept makes the offer a booking: the booking it replaces is cancelled
// first (as $reschedule does, so that the referral's state moves off and
// back to booked), the offer is based on its referral and names the
// booking it replaces, the patient has accepted, and the request is done.
func (o *Service) accept(ctx context.Context, tx *write.Tx, c *write.Change, nw *appointment, off *offerExt, cause write.Consequence) error {
	if off.Request != "" {
		if id, ok := refID(off.Request, "Task"); ok {
			if res, err := tx.Read(ctx, "Task", id); err == nil {
				if t, err := decode[request](res.JSON); err == nil && t.active() {
					if err := o.moveRequest(ctx, tx, res, "completed", "accepted", "Appointment/"+c.ID, "", cause); err != nil {
						return err
					}
				}
			}
		}
	}
	if id, ok := refID(off.Replaces, "Appointment"); ok {
		res, err := tx.Read(ctx, "Appointment", id)
		if err == nil {
			a, err := decode[appointment](res.JSON)
			if err != nil {
				return err
			}
			if a.Status == "booked" && a.patient() == nw.patient() {
				obj, err := fhir.ParseObject(res.JSON)
				if err != nil {
					return err
				}
				obj.Set("status", "cancelled")
				obj.Set("cancelationReason", r4.CodeableConcept{Text: elem.Opt("Rescheduled to an earlier slot (offer accepted)")})
				cause.Type, cause.ID = "Appointment", id
				if _, _, err := tx.PutWith(write.AsConsequence(ctx, cause), "Appointment", id, obj, res.Version, asBooking); err != nil {
					return err
				}
			}
			if err := setExt(c.New, r4.Extension{Url: booking.ExtReplaces, ValueReference: &r4.Reference{Reference: elem.Opt("Appointment/" + id)}}); err != nil {
				return err
			}
		}
	}
	if nw.referral() == "" && off.Referral != "" {
		var based []json.RawMessage
		if raw := c.New.Get("basedOn"); raw != nil {
			_ = json.Unmarshal(raw, &based)
		}
		b, _ := json.Marshal(elem.Ref(off.Referral))
		c.New.Set("basedOn", append(based, b))
	}
	var parts []map[string]any
	if raw := c.New.Get("participant"); raw != nil && json.Unmarshal(raw, &parts) == nil {
		for _, p := range parts {
			if actor, _ := p["actor"].(map[string]any); actor != nil {
				if ref, _ := actor["reference"].(string); canonical(ref) == nw.patient() {
					p["status"] = "accepted"
				}
			}
		}
		c.New.Set("participant", parts)
	}
	return nil
}

// ended handles an offer that stops holding its slot unaccepted: its
// request waits again, and its announcement, if not yet sent, is stopped.
func (o *Service) ended(ctx context.Context, tx *write.Tx, apptID string, off *offerExt, cause write.Consequence) error {
	if id, ok := refID(off.Request, "Task"); ok && !withdrawn(tx)["Task/"+id] {
		if res, err := tx.Read(ctx, "Task", id); err == nil {
			t, err := decode[request](res.JSON)
			if err == nil && t.Status == "in-progress" {
				if err := o.moveRequest(ctx, tx, res, "requested", Waiting, "", "", cause); err != nil {
					return err
				}
			}
		}
	}
	if id, ok := refID(off.Communication, "Communication"); ok {
		if res, err := tx.Read(ctx, "Communication", id); err == nil {
			obj, err := fhir.ParseObject(res.JSON)
			if err != nil {
				return err
			}
			if st, _ := obj.String("status"); st == "preparation" {
				obj.Set("status", "stopped")
				cause.Type, cause.ID = "Communication", id
				if _, _, err := tx.PutWith(write.AsConsequence(ctx, cause), "Communication", id, obj, res.Version, own); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// moveRequest sets a request Task's status (and businessStatus, and the
// offer it names as output, when given; why as its statusReason).
func (o *Service) moveRequest(ctx context.Context, tx *write.Tx, res *fhir.Resource, status, business, offer, why string, cause write.Consequence) error {
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	obj.Set("status", status)
	if business != "" {
		obj.Set("businessStatus", r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(CodeSystem), Code: elem.Opt(business)}}})
	}
	if why != "" {
		obj.Set("statusReason", r4.CodeableConcept{Text: elem.Opt(why)})
	}
	if offer != "" {
		obj.Set("output", []any{map[string]any{
			"type":           r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(CodeSystem), Code: elem.Opt(Offered)}}},
			"valueReference": elem.Ref(offer)}})
	}
	obj.Set("lastModified", tx.Now().UTC().Format(time.RFC3339Nano))
	if cause.Grant != 0 {
		cause.Type, cause.ID = "Task", res.ID
		ctx = write.AsConsequence(ctx, cause)
	}
	_, _, err = tx.PutWith(ctx, "Task", res.ID, obj, res.Version, own)
	return err
}

// requestRule guards request Tasks: they are made by $request-earlier,
// and a client may only cancel one (status cancelled, with a
// statusReason or note), which also cancels the offer out for it.
func (o *Service) requestRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	var old, nw *request
	var err error
	if c.Old != nil {
		if old, err = decode[request](c.Old.JSON); err != nil {
			return err
		}
	}
	if c.New != nil {
		if nw, err = decode[request](c.New.Bytes()); err != nil {
			return err
		}
	}
	if !(old != nil && old.isRequest()) && !(nw != nil && nw.isRequest()) {
		return nil
	}
	if c.By == own.By || write.IsServer(ctx) {
		return nil
	}
	switch {
	case old == nil || !old.isRequest():
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.code",
			"requests for an earlier slot are made with Appointment/{id}/$request-earlier").WithDetails(ErrServerOwned)
	case nw == nil:
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task",
			"Task/%s is a request for an earlier slot: cancel it (status cancelled) rather than delete it", c.ID).WithDetails(ErrServerOwned)
	case !old.active() && !sameJSON(c.Old.JSON, c.New.Bytes(), "meta", "text", "note"):
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.status",
			"Task/%s is %s: it cannot change", c.ID, old.Status).WithDetails(ErrServerOwned)
	case nw.Status != old.Status && nw.Status != "cancelled":
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.status",
			"a request for an earlier slot can only be cancelled (status cancelled), not made %s", nw.Status).WithDetails(ErrServerOwned)
	case !sameJSON(c.Old.JSON, c.New.Bytes(), "meta", "text", "note", "status", "statusReason", "lastModified"):
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task",
			"only the status (to cancelled), statusReason and note of a request for an earlier slot can change").WithDetails(ErrServerOwned)
	}
	if nw.Status != "cancelled" || old.Status == "cancelled" {
		return nil
	}
	return o.withdrawOffer(ctx, tx, c.ID, elem.Str(old.For.Reference))
}

// withdrawOffer cancels the offer out for the request Task/id of
// patient, if any, as the request is withdrawn: its slot goes to the next
// patient. The request itself is the caller's to cancel.
func (o *Service) withdrawOffer(ctx context.Context, tx *write.Tx, id, patient string) error {
	withdrawn(tx)["Task/"+id] = true
	offers, err := o.searchAll(ctx, tx, "Appointment", url.Values{"patient": {patient}, "status": {"pending"}})
	if err != nil {
		return err
	}
	for _, res := range offers {
		a, err := decode[appointment](res.JSON)
		if err != nil {
			continue
		}
		if off := a.offerOf(); off != nil && canonical(off.Request) == "Task/"+id {
			obj, err := fhir.ParseObject(res.JSON)
			if err != nil {
				return err
			}
			obj.Set("status", "cancelled")
			obj.Set("cancelationReason", r4.CodeableConcept{Text: elem.Opt("Request for an earlier slot withdrawn")})
			cctx := write.AsConsequence(ctx, write.Consequence{Type: "Appointment", ID: res.ID, Grant: write.WithCause, Of: "Task/" + id})
			if _, _, err := tx.PutWith(cctx, "Appointment", res.ID, obj, res.Version, own); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameJSON reports whether two resources' JSON objects are equal but for
// the members named.
func sameJSON(a, b []byte, except ...string) bool {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, k := range append(except, "id") {
		delete(x, k)
		delete(y, k)
	}
	return reflect.DeepEqual(x, y)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
