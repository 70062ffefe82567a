package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// appointmentView is the part of an Appointment the referral rules read.
// It stays a plain view of strings (inputRef, inputIdentifier,
// inputExtension) rather than samply's datatypes because prepareAppointment
// reads it from the client's JSON before validation: r4.Identifier (also
// inside r4.Reference) and the complex extension values read their
// code-typed members as enums that refuse unknown codes, so a resource the
// validator would reject with a precise issue would instead fail to decode
// and skip the UBRN linking whose errors the client sees today.
type appointmentView struct {
	Status      string            `json:"status"`
	Start       string            `json:"start"`
	BasedOn     []inputRef        `json:"basedOn"`
	Identifier  []inputIdentifier `json:"identifier"`
	Slot        []inputRef        `json:"slot"`
	Participant []struct {
		Actor inputRef `json:"actor"`
	} `json:"participant"`
	Extension []inputExtension `json:"extension"`
}

// inputRef is a reference as a client sent it (see appointmentView).
type inputRef struct {
	Reference string `json:"reference,omitempty"`
}

// inputIdentifier is an identifier as a client sent it (see appointmentView).
type inputIdentifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

// inputExtension is an extension as a client sent it, with the one value
// the rules read (see appointmentView).
type inputExtension struct {
	URL         string  `json:"url"`
	ValueString *string `json:"valueString,omitempty"`
}

// books reports whether the appointment, in its status, is a booking the
// referral's state follows (and its fit is checked for).
func (a *appointmentView) books() bool {
	switch a.Status {
	case "booked", "pending", "arrived", "checked-in":
		return true
	}
	return false
}

func (a *appointmentView) referrals() []string {
	var out []string
	for _, b := range a.BasedOn {
		if typ, _, ok := fhir.SplitReference(b.Reference); ok && typ == "ServiceRequest" {
			out = append(out, canonicalRef(b.Reference))
		}
	}
	return out
}

func (a *appointmentView) breachReason() string {
	for _, e := range a.Extension {
		if e.URL == BreachReasonExtension && e.ValueString != nil {
			return *e.ValueString
		}
	}
	return ""
}

// appointmentRule links appointments to their referral (Appointment.basedOn
// a ServiceRequest, found from a UBRN identifier or a UBRN patient's token
// when missing): the booking must fit the referral (fit.go), the
// appointment carries the referral's UBRN and patient, and the referral's
// state follows it: booked when an appointment is booked (the service
// booked becomes the referral's performer and its Task's owner, so its
// provider can act on it), completed when it is fulfilled, back to
// awaiting booking when a booked appointment is cancelled or missed.
func (s *Service) appointmentRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
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
	if _, err := s.linkReferral(ctx, tx, c.New, &a, c.Old == nil); err != nil {
		return err
	}
	var services []string
	for _, ref := range a.referrals() {
		// A referral the caller names and cannot read does not exist for
		// it: nothing of it (its UBRN, its state) reaches the appointment
		// or the answer. One the appointment was already based on is not
		// the caller's naming (a cancellation by the referral's workflow).
		read := s.readAs
		if c.Old != nil && slices.Contains(old.referrals(), ref) {
			read = func(ctx context.Context, tx store.Reader, ref string) (*fhir.Resource, error) {
				return readRef(ctx, tx, ref)
			}
		}
		sr, err := read(ctx, tx, ref)
		if err != nil {
			return fhir.Errorf(fhir.Unprocessable, "not-found", "Appointment.basedOn", "%s does not exist", ref)
		}
		var r requestView
		if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
			return err
		}
		if u := r.ubrn(); u != "" && !hasIdentifier(a.Identifier, UBRNSystem, u) {
			if err := addIdentifier(c.New, r4.Identifier{System: elem.Opt(UBRNSystem), Value: elem.Opt(u)}); err != nil {
				return err
			}
		}
		breach := ""
		if a.books() {
			if services == nil {
				if services, err = s.appointmentServices(ctx, tx, &a); err != nil {
					return err
				}
			}
			// Judged when it becomes a booking of the referral, or its time
			// or services change; a status change of the booking is not.
			recheck := c.Old == nil || !old.books() || old.Start != a.Start || !slices.Contains(old.referrals(), ref)
			if !recheck {
				was, err := s.appointmentServices(ctx, tx, &old)
				if err != nil {
					return err
				}
				recheck = !slices.Equal(services, was)
			}
			if recheck {
				if breach, err = s.checkFit(ctx, tx, c, &a, sr, services); err != nil {
					return err
				}
			}
		}
		if a.Status == old.Status && breach == "" {
			continue
		}
		task, tv, err := s.referralTaskView(ctx, tx, sr.Reference())
		if err != nil {
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
		if breach != "" {
			why = strings.TrimPrefix(why+"; two-week wait breached: "+breach, "; ")
		}
		// The referral follows its appointment: granted to whoever may
		// read the referral (its patient, their call centre, the referrer,
		// the provider that owns its Task), not only to those who may
		// write the Task or the referral themselves.
		follows := func(ref string) context.Context {
			typ, id, _ := fhir.SplitReference(ref)
			return write.AsConsequence(ctx, write.Consequence{Type: typ, ID: id, Grant: write.ToReadersOf,
				On: []string{sr.Reference(), task.Reference()}, Of: "Appointment/" + c.ID})
		}
		owner := ""
		for _, p := range a.Participant {
			if t, _, ok := fhir.SplitReference(p.Actor.Reference); ok && t == "HealthcareService" {
				owner = p.Actor.Reference
			}
		}
		patch := func(obj *fhir.Object) {
			if owner != "" && to == Booked {
				obj.Set("owner", elem.Ref(owner))
			}
			if breach != "" {
				_ = obj.SetExtensions(BreachExtension, breachExtension(breach, "Appointment/"+c.ID, a.Start))
			}
		}
		if to == "" || to == cur {
			if breach == "" {
				continue
			}
			// No move: the breach is recorded on the Task all the same.
			obj, err := fhir.ParseObject(task.JSON)
			if err != nil {
				return err
			}
			patch(obj)
			if _, _, err := tx.PutWith(follows(task.Reference()), "Task", task.ID, obj, 0, own); err != nil {
				return fmt.Errorf("Appointment/%s: %w", c.ID, err)
			}
			continue
		}
		if !CanMove(cur, to) {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.status",
				"referral %s is %s: an appointment cannot make it %s", sr.Reference(), cur, to).WithDetails("ILLEGAL_TRANSITION")
		}
		if _, err := s.moveTask(follows(task.Reference()), tx, task, to, why, patch); err != nil {
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

// prepareAppointment fills, before validation, what an appointment takes
// from its referral: the referral itself (linkReferral) and, for a
// booking, the referral's patient as a participant when none is named.
func (s *Service) prepareAppointment(ctx context.Context, rd store.Reader, obj *fhir.Object) (bool, error) {
	var a appointmentView
	if err := json.Unmarshal(obj.Bytes(), &a); err != nil {
		return false, nil // validation reports it
	}
	linked, err := s.linkReferral(ctx, rd, obj, &a, !obj.Has("id"))
	if err != nil || !a.books() {
		return linked, err
	}
	for _, p := range a.Participant {
		if typ, _, ok := fhir.SplitReference(p.Actor.Reference); ok && typ == "Patient" {
			return linked, nil
		}
	}
	for _, ref := range a.referrals() {
		sr, err := readRef(ctx, rd, ref)
		if err != nil {
			continue // the rule reports it
		}
		var r requestView
		if decode(sr.JSON, &r, "ServiceRequest") == nil && elem.Str(r.Subject.Reference) != "" {
			addParticipant(obj, canonicalRef(elem.Str(r.Subject.Reference)))
			return true, nil
		}
	}
	return linked, nil
}

// addParticipant adds the actor ref, accepted, to an appointment.
func addParticipant(obj *fhir.Object, ref string) {
	var parts []json.RawMessage
	if raw := obj.Get("participant"); raw != nil {
		_ = json.Unmarshal(raw, &parts)
	}
	obj.Set("participant", append(parts, mustJSON(map[string]any{"actor": elem.Ref(ref), "status": "accepted"})))
}

// linkReferral makes an appointment that names a referral only by its UBRN
// identifier, or that a UBRN patient creates (isNew) without naming one,
// based on that referral (Appointment.basedOn), so that the rule judges
// it. It reports whether it changed obj.
func (s *Service) linkReferral(ctx context.Context, rd store.Reader, obj *fhir.Object, a *appointmentView, isNew bool) (bool, error) {
	if len(a.referrals()) > 0 {
		return false, nil
	}
	ref := ""
	for i, id := range a.Identifier {
		if id.System != UBRNSystem {
			continue
		}
		found, err := find(ctx, rd, s.reg, "ServiceRequest", "identifier="+UBRNSystem+"|"+id.Value)
		if err != nil {
			return false, err
		}
		if len(found) == 1 { // one the caller cannot read is not there for it
			if _, err := s.repo.ReadAs(ctx, rd, "ServiceRequest", found[0].ID); fhir.KindOf(err) == fhir.NotFound {
				found = nil
			} else if err != nil {
				return false, err
			}
		}
		if len(found) != 1 {
			return false, fhir.Errorf(fhir.Unprocessable, "not-found", fmt.Sprintf("Appointment.identifier[%d]", i),
				"no referral has the UBRN %s", id.Value)
		}
		ref = found[0].Reference()
		break
	}
	if ref == "" && isNew {
		if p, ok := auth.FromContext(ctx); ok && p.Referral() != "" {
			ref = "ServiceRequest/" + p.Referral()
		}
	}
	if ref == "" {
		return false, nil
	}
	var based []json.RawMessage
	if raw := obj.Get("basedOn"); raw != nil {
		if err := json.Unmarshal(raw, &based); err != nil {
			return false, fhir.Errorf(fhir.Invalid, "structure", "Appointment.basedOn", "basedOn must be an array")
		}
	}
	obj.Set("basedOn", append(based, mustJSON(elem.Ref(ref))))
	a.BasedOn = append(a.BasedOn, inputRef{Reference: ref})
	return true, nil
}

// checkFit applies the booking-fits-referral rule to a booking for the
// referral sr at services, and fills the appointment's patient from the
// referral. It returns the breach reason when a two-week wait is breached
// with one.
func (s *Service) checkFit(ctx context.Context, tx *write.Tx, c *write.Change, a *appointmentView, sr *fhir.Resource, services []string) (string, error) {
	f, err := s.fitOf(ctx, tx, sr)
	if err != nil {
		return "", err
	}
	if err := f.checkServices(ctx, tx, services); err != nil {
		return "", err
	}
	patient := canonicalRef(elem.Str(f.r.Subject.Reference))
	hasPatient := false
	for i, p := range a.Participant {
		if typ, _, ok := fhir.SplitReference(p.Actor.Reference); ok && typ == "Patient" {
			if canonicalRef(p.Actor.Reference) != patient {
				return "", fhir.Errorf(fhir.Unprocessable, "business-rule", fmt.Sprintf("Appointment.participant[%d].actor", i),
					"the appointment's patient is not the patient of referral %s", f.ubrnLabel())
			}
			hasPatient = true
		}
	}
	if !hasPatient && patient != "" {
		addParticipant(c.New, patient)
	}
	start, err := time.Parse(time.RFC3339Nano, a.Start)
	if err != nil {
		return "", nil // the booking rules require a valid start of a slot booking
	}
	breach := a.breachReason()
	isBreach, err := f.checkStart(start, breach)
	if err != nil || !isBreach {
		return "", err
	}
	return breach, nil
}

// appointmentServices returns the HealthcareServices an appointment is
// with: its participants, and its slots' schedule actors, sorted.
func (s *Service) appointmentServices(ctx context.Context, tx store.Reader, a *appointmentView) ([]string, error) {
	set := map[string]bool{}
	for _, p := range a.Participant {
		if typ, _, ok := fhir.SplitReference(p.Actor.Reference); ok && typ == "HealthcareService" {
			set[canonicalRef(p.Actor.Reference)] = true
		}
	}
	schedules := map[string]bool{}
	for _, sl := range a.Slot {
		res, err := readRef(ctx, tx, sl.Reference)
		if gone(err) {
			continue // the booking rules report a missing slot
		} else if err != nil {
			return nil, err
		}
		var v struct {
			Schedule r4.Reference `json:"schedule"`
		}
		_ = json.Unmarshal(res.JSON, &v)
		if elem.Str(v.Schedule.Reference) == "" || schedules[elem.Str(v.Schedule.Reference)] {
			continue
		}
		schedules[elem.Str(v.Schedule.Reference)] = true
		sc, err := readRef(ctx, tx, elem.Str(v.Schedule.Reference))
		if gone(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		var scv struct {
			Actor []r4.Reference `json:"actor"`
		}
		_ = json.Unmarshal(sc.JSON, &scv)
		for _, act := range scv.Actor {
			if typ, _, ok := fhir.SplitReference(elem.Str(act.Reference)); ok && typ == "HealthcareService" {
				set[canonicalRef(elem.Str(act.Reference))] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// breachExtension records on a Task that appointment was booked outside
// the referral's two-week wait, and why.
func breachExtension(reason, appointment, start string) r4.Extension {
	return r4.Extension{Url: BreachExtension, Extension: []r4.Extension{
		{Url: "reason", ValueString: &reason},
		{Url: "appointment", ValueReference: &r4.Reference{Reference: elem.Opt(appointment)}},
		{Url: "start", ValueDateTime: &start},
	}}
}

func hasIdentifier(ids []inputIdentifier, system, value string) bool {
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
func (s *Service) cancelAppointments(ctx context.Context, tx *write.Tx, ref, reason string) ([]string, error) {
	return s.cancelAppointmentsFor(ctx, tx, ref, r4.CodeableConcept{Text: elem.Opt(reason)})
}

// byProvider is the cancellation reason of appointments the provider's
// decision cancels ($reject, $redirect): the provider's (prov).
func byProvider(reason string) r4.CodeableConcept {
	return r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(CancellationReasonSystem), Code: elem.Opt("prov"), Display: elem.Opt("Provider")}}, Text: elem.Opt(reason)}
}

// cancelAppointmentsFor is cancelAppointments with a coded reason.
func (s *Service) cancelAppointmentsFor(ctx context.Context, tx *write.Tx, ref string, reason r4.CodeableConcept) ([]string, error) {
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
		obj.Set("cancelationReason", reason)
		if _, _, err := tx.Put(ctx, "Appointment", a.ID, obj, a.Version); err != nil {
			return nil, fmt.Errorf("cancelling %s: %w", a.Reference(), err)
		}
		out = append(out, a.Reference())
	}
	return out, nil
}

// setPerformer makes service the referral's performer, unless it is
// already its only one.
func (s *Service) setPerformer(ctx context.Context, tx *write.Tx, sr *fhir.Resource, service string) error {
	cur, err := tx.Read(ctx, sr.Type, sr.ID) // the Task's move may have changed it
	if err != nil {
		return err
	}
	var r requestView
	if err := decode(cur.JSON, &r, "ServiceRequest"); err != nil {
		return err
	}
	if len(r.Performer) == 1 && sameRef(elem.Str(r.Performer[0].Reference), service) {
		return nil
	}
	obj, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return err
	}
	obj.Set("performer", []r4.Reference{elem.Ref(service)})
	_, _, err = tx.PutWith(ctx, cur.Type, cur.ID, obj, 0, own)
	return err
}

// gone reports whether err says a resource read is not there (never was,
// deleted, or not a valid reference).
func gone(err error) bool {
	k := fhir.KindOf(err)
	return err != nil && (k == fhir.NotFound || k == fhir.Gone || k == fhir.Invalid)
}
