package booking

import (
	"context"
	"slices"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// Signpost error codes of the clinical state rules
// (https://signpost.example/fhir/CodeSystem/error).
const (
	// ErrNotStarted: an appointment cannot be arrived, checked-in or
	// fulfilled before its start.
	ErrNotStarted = "APPOINTMENT_NOT_STARTED"
	// ErrNotEnded: an appointment cannot be a no-show before its end.
	ErrNotEnded = "APPOINTMENT_NOT_ENDED"
	// ErrPreviousAppointment: a follow-up's previousAppointment is not an
	// existing appointment of the same patient.
	ErrPreviousAppointment = "PREVIOUS_APPOINTMENT_INVALID"
)

// clinicalRule applies the clinical state rules to every write of an
// Appointment (POST, PUT, PATCH, Bundle entry, operation): what happened
// at an appointment cannot be recorded before it could have happened
// (checkStatusTime), and a follow-up names an appointment of its own
// patient (checkPrevious).
func (b *Service) clinicalRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	nw, err := decode[appointment](c.New.Bytes())
	if err != nil {
		return err
	}
	var old *appointment
	if c.Old != nil {
		if old, err = decode[appointment](c.Old.JSON); err != nil {
			return err
		}
	}
	if err := checkStatusTime(tx.Now(), old, nw); err != nil {
		return err
	}
	return checkPrevious(ctx, tx, c.ID, old, nw)
}

// checkStatusTime refuses an appointment that is arrived, checked-in or
// fulfilled before its start, or noshow before its end, as of now. It
// judges a status when it is new (a create, or a change of status) or when
// the times it depends on change; an appointment left as it was is not
// judged again. Missing or unreadable times are left to validation (app-3
// requires start and end for these statuses).
func checkStatusTime(now time.Time, old, nw *appointment) error {
	var edge, what, code string
	switch nw.Status {
	case "arrived", "checked-in", "fulfilled":
		edge, what, code = nw.Start, "start", ErrNotStarted
	case "noshow":
		edge, what, code = nw.End, "end", ErrNotEnded
	default:
		return nil
	}
	if old != nil && old.Status == nw.Status && old.Start == nw.Start && old.End == nw.End {
		return nil
	}
	t, ok := parseInstant(edge)
	if !ok || !now.Before(t) {
		return nil
	}
	return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.status",
		"an appointment cannot be %s before its %s (%s)", nw.Status, what, edge).WithDetails(code)
}

// checkPrevious checks a follow-up appointment: its previousAppointment
// extension (at most one, R5's cardinality) must reference an existing
// Appointment of this server whose patients include every patient of the
// follow-up. Every way of failing that gets the same answer, so the error
// tells nothing about an appointment of another patient (not even that it
// exists). It is judged when the extension or the patient changes.
func checkPrevious(ctx context.Context, tx *write.Tx, id string, old, nw *appointment) error {
	var at []int
	for i, e := range nw.Extension {
		if e.Url == ExtPreviousAppointment {
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return nil
	}
	if len(at) > 1 {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.extension["+itoa(at[1])+"]",
			"an appointment has at most one previousAppointment").WithDetails(ErrPreviousAppointment)
	}
	ext := nw.Extension[at[0]]
	if old != nil {
		if prev := old.ext(ExtPreviousAppointment); prev != nil && sameValueReference(prev, &ext) &&
			slices.Equal(old.patients(), nw.patients()) {
			return nil
		}
	}
	invalid := fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.extension["+itoa(at[0])+"].valueReference",
		"previousAppointment must reference an existing Appointment of this appointment's patient").WithDetails(ErrPreviousAppointment)
	pats := nw.patients()
	if ext.ValueReference == nil || len(pats) == 0 {
		return invalid
	}
	prevID, ok := refID(elem.Str(ext.ValueReference.Reference), "Appointment")
	if !ok || prevID == id {
		return invalid
	}
	res, err := tx.Read(ctx, "Appointment", prevID)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return invalid
	} else if err != nil {
		return err
	}
	prev, err := decode[appointment](res.JSON)
	if err != nil {
		return invalid
	}
	theirs := prev.patients()
	for _, p := range pats {
		if !slices.Contains(theirs, p) {
			return invalid
		}
	}
	return nil
}

// patients returns the ids of the appointment's Patient participants,
// sorted.
func (a *appointment) patients() []string {
	var out []string
	for _, p := range a.Participant {
		if p.Actor == nil {
			continue
		}
		if id, ok := refID(elem.Str(p.Actor.Reference), "Patient"); ok && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func sameValueReference(a, b *r4.Extension) bool {
	switch {
	case a.ValueReference == nil || b.ValueReference == nil:
		return a.ValueReference == b.ValueReference
	default:
		return elem.Str(a.ValueReference.Reference) == elem.Str(b.ValueReference.Reference)
	}
}
