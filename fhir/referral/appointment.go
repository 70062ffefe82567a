package referral

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/repo"
)

type appointmentView struct {
	Status      string       `json:"status"`
	BasedOn     []reference  `json:"basedOn"`
	Identifier  []identifier `json:"identifier"`
	Participant []struct {
		Actor reference `json:"actor"`
	} `json:"participant"`
}

// appointmentRule links appointments to their referral (Appointment.basedOn
// a ServiceRequest): the appointment carries the referral's UBRN, and the
// referral's state follows it: booked when an appointment is booked (the
// service booked becomes the referral's performer and its Task's owner, so
// its provider can act on it),
// completed when it is fulfilled, back to awaiting booking when a booked
// appointment is cancelled or missed.
func (s *Service) appointmentRule(ctx context.Context, tx *repo.Tx, c *repo.Change) error {
	if c.New == nil {
		return nil
	}
	var a, old appointmentView
	if err := decode(c.New.Bytes(), &a, "Appointment"); err != nil {
		return err
	}
	if c.Old != nil {
		_ = json.Unmarshal(c.Old.JSON, &old)
	}
	for _, b := range a.BasedOn {
		typ, _, ok := fhir.SplitReference(b.Reference)
		if !ok || typ != "ServiceRequest" {
			continue
		}
		// A referral the caller cannot read does not exist for it: nothing
		// of it (its UBRN, its state) reaches the appointment or the answer.
		sr, err := s.readAs(ctx, tx, b.Reference)
		if err != nil {
			return fhir.Errorf(fhir.Unprocessable, "not-found", "Appointment.basedOn", "%s does not exist", b.Reference)
		}
		var r requestView
		if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
			return err
		}
		if u := r.ubrn(); u != "" && !hasIdentifier(a.Identifier, UBRNSystem, u) {
			if err := addIdentifier(c.New, identifier{System: UBRNSystem, Value: u}); err != nil {
				return err
			}
		}
		if a.Status == old.Status {
			continue
		}
		task, err := s.referralTask(ctx, tx, sr.Reference())
		if err != nil {
			return err
		}
		var tv taskView
		if err := decode(task.JSON, &tv, "Task"); err != nil {
			return err
		}
		cur := tv.state()
		var to State
		why := ""
		switch a.Status {
		case "booked", "pending", "arrived", "checked-in":
			if cur != Accepted && cur != Booked {
				to, why = Booked, "appointment booked"
			}
		case "fulfilled":
			to, why = Completed, "appointment fulfilled"
		case "cancelled", "noshow":
			if cur == Booked {
				to, why = AwaitingBooking, "appointment "+a.Status
			}
		}
		if to == "" || to == cur {
			continue
		}
		if !CanMove(cur, to) {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.status",
				"referral %s is %s: an appointment cannot make it %s", sr.Reference(), cur, to).WithDetails("ILLEGAL_TRANSITION")
		}
		// The referral follows its appointment: granted to whoever may
		// read the referral (its patient, their call centre, the referrer,
		// the provider that owns its Task), not only to those who may
		// write the Task or the referral themselves.
		follows := func(ref string) context.Context {
			typ, id, _ := fhir.SplitReference(ref)
			return repo.AsConsequence(ctx, repo.Consequence{Type: typ, ID: id, Grant: repo.ToReadersOf,
				On: []string{sr.Reference(), task.Reference()}, Of: "Appointment/" + c.ID})
		}
		owner := ""
		for _, p := range a.Participant {
			if t, _, ok := fhir.SplitReference(p.Actor.Reference); ok && t == "HealthcareService" {
				owner = p.Actor.Reference
			}
		}
		if _, err := s.moveTask(follows(task.Reference()), tx, task, to, why, func(obj *fhir.Object) {
			if owner != "" && to == Booked {
				obj.Set("owner", reference{Reference: owner})
			}
		}); err != nil {
			return fmt.Errorf("Appointment/%s: %w", c.ID, err)
		}
		if owner != "" && to == Booked {
			if err := s.setPerformer(follows(sr.Reference()), tx, sr, owner); err != nil {
				return fmt.Errorf("Appointment/%s: %w", c.ID, err)
			}
		}
	}
	return nil
}

func hasIdentifier(ids []identifier, system, value string) bool {
	for _, id := range ids {
		if id.System == system && id.Value == value {
			return true
		}
	}
	return false
}

// liveAppointment lists the statuses of an appointment that still holds
// its slots.
var liveAppointment = "proposed,pending,booked,arrived,checked-in,waitlist"

// cancelAppointments cancels, inside tx, every appointment of the referral
// ref that still holds slots, with reason; the booking rules free their
// slots in the same transaction. It returns the appointments cancelled.
func (s *Service) cancelAppointments(ctx context.Context, tx *repo.Tx, ref, reason string) ([]string, error) {
	appts, err := find(ctx, tx, s.reg, "Appointment", "based-on="+ref+"&status="+liveAppointment)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range appts {
		obj, err := fhir.ParseObject(a.JSON)
		if err != nil {
			return nil, err
		}
		obj.Set("status", "cancelled")
		obj.Set("cancelationReason", concept{Text: reason})
		if _, _, err := tx.Put(ctx, "Appointment", a.ID, obj, a.Version); err != nil {
			return nil, fmt.Errorf("cancelling %s: %w", a.Reference(), err)
		}
		out = append(out, a.Reference())
	}
	return out, nil
}

// setPerformer makes service the referral's performer, unless it is
// already its only one.
func (s *Service) setPerformer(ctx context.Context, tx *repo.Tx, sr *fhir.Resource, service string) error {
	cur, err := tx.Read(ctx, sr.Type, sr.ID) // the Task's move may have changed it
	if err != nil {
		return err
	}
	var r requestView
	if err := decode(cur.JSON, &r, "ServiceRequest"); err != nil {
		return err
	}
	if len(r.Performer) == 1 && sameRef(r.Performer[0].Reference, service) {
		return nil
	}
	obj, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return err
	}
	obj.Set("performer", []reference{{Reference: service}})
	_, _, err = tx.Put(internal(ctx), cur.Type, cur.ID, obj, 0)
	return err
}
