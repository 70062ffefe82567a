package pas

// Bookings the PAS made that Signpost cannot mirror. The PAS is the
// system of record of its clinics: when it books a patient whom the trust
// may not book for in Signpost (one it has no relationship with there, so
// the organisation rules refuse the Appointment, as they would refuse the
// trust's API client), the time is taken all the same. Refusing the
// message alone would leave its slots free in Signpost, offered to
// patients and bookable by anyone: a double booking waiting to happen. So
// an S12 refused for a reason of access takes its time out of what
// Signpost offers instead: the slots that tile it become busy with the
// booking tag externally-busy (as the slot feed marks a slot the PAS
// booked) and the filler id as an identifier, and the PAS gets AA with a
// warning (ERR severity W) saying the appointment is not mirrored. A later
// S15 or S17 for that filler id frees the time again (releaseTime). The
// patient's details stay in the PAS.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// unmirrored is an S12 whose Appointment the organisation rules refuse:
// the time to block instead, and why.
type unmirrored struct {
	schedule, filler string
	t                timing
	cause            error
}

func (u *unmirrored) Error() string { return u.cause.Error() }
func (u *unmirrored) Unwrap() error { return u.cause }

// notMirrored returns the refusal of an S12's Appointment (err, a write
// made for the field at path): an unmirrored booking when the
// organisation rules refused it, else the refusal as at gives it.
func notMirrored(path string, err error, schedule, filler string, t timing) error {
	if k := fhir.KindOf(err); k == fhir.Forbidden || k == fhir.Unauthorized {
		return &unmirrored{schedule: schedule, filler: filler, t: t, cause: at(path, err)}
	}
	return at(path, err)
}

// blockTime applies an unmirrored S12 in a transaction of its own: its
// slots busy, its answer recorded in the inbox. It returns the answer, or
// nil when the time could not be blocked (the message is then refused as
// the cause says).
func (a *Adapter) blockTime(ctx context.Context, msg *hl7v2.Message, in store.Inbound, u *unmirrored) []byte {
	text := fmt.Sprintf("the appointment is not mirrored in Signpost (%s); its time is marked busy there, so it is not offered",
		refusalOf(u.cause, hl7v2.OutcomeReject).text)
	answer := a.ack(msg, &refusal{outcome: hl7v2.OutcomeAccept, text: text,
		issue: &hl7v2.Issue{Code: hl7v2.CodeInternal, Severity: hl7v2.SeverityWarning, Text: text}})
	var blocked []string
	err := a.env.Writes.Update(a.env.Context(ctx), func(ctx context.Context, tx *write.Tx) error {
		slots, err := a.slotsFor(ctx, tx, u.schedule, u.t)
		if err != nil {
			return err
		}
		for _, s := range slots {
			if err := a.markBusy(ctx, tx, s.id, u.filler, true); err != nil {
				return err
			}
			blocked = append(blocked, "Slot/"+s.id)
		}
		rec := in
		rec.Answer = answer
		return tx.Tx.(store.InboxTx).RecordReceived(ctx, rec)
	})
	if err != nil {
		a.env.Logger.Warn("pas inbound: the time of a booking Signpost cannot mirror could not be blocked", "filler", u.filler, "err", err)
		return nil
	}
	a.env.Logger.Warn("pas inbound: a booking the PAS made is not mirrored; its time is blocked", "filler", u.filler, "slots", blocked, "cause", u.cause)
	return answer
}

// releaseTime frees the slots blockTime blocked for filler, in tx. It
// returns what it did for MSA-3, or "" when no slot is blocked for it.
func (a *Adapter) releaseTime(ctx context.Context, tx *write.Tx, filler string) (string, error) {
	if filler == "" {
		return "", nil
	}
	page, err := tx.Search(ctx, &search.Query{Type: "Slot", Count: 100, Filter: []search.Expr{
		search.TokenIn{Param: "identifier", System: FillerSystem(a.env.Name), HasSystem: true, Codes: []string{filler}}}})
	if err != nil || len(page.Resources) == 0 {
		return "", err
	}
	for _, res := range page.Resources {
		if err := a.markBusy(ctx, tx, res.ID, filler, false); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("freed the time of filler id %s, a booking Signpost did not mirror (%d slots)", filler, len(page.Resources)), nil
}

// markBusy makes Slot/id busy with the externally-busy tag and the filler
// id (busy), or free without them.
func (a *Adapter) markBusy(ctx context.Context, tx *write.Tx, id, filler string, busy bool) error {
	res, err := tx.Read(ctx, "Slot", id)
	if err != nil {
		return err
	}
	var old slotView
	if err := json.Unmarshal(res.JSON, &old); err != nil {
		return err
	}
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	mine := func(i r4.Identifier) bool {
		return elem.Str(i.System) == FillerSystem(a.env.Name) && elem.Str(i.Value) == filler
	}
	ids := slices.DeleteFunc(slices.Clone(old.Identifier), mine)
	status := "free"
	if busy {
		ids = append(ids, r4.Identifier{System: elem.Opt(FillerSystem(a.env.Name)), Value: elem.Opt(filler)})
		status = "busy"
	}
	if len(ids) > 0 {
		obj.Set("identifier", ids)
	} else {
		obj.Delete("identifier")
	}
	obj.Set("status", status)
	if err := setBusyTag(obj, &old, busy); err != nil {
		return err
	}
	_, _, err = tx.Put(ctx, "Slot", id, obj, res.Version)
	return err
}

// asUnmirrored reports whether err is an unmirrored S12.
func asUnmirrored(err error) (*unmirrored, bool) {
	var u *unmirrored
	ok := errors.As(err, &u)
	return u, ok
}
