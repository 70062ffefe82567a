package gpconnect

// Bookings of the practice's slots: the practice is the system of record,
// and a booking made through Signpost (POST Appointment, $book, a
// transaction Bundle of one entry; every path the booking domain books
// through) stands only once the practice has booked it. The flow is the
// hospital PAS adapter's pas-confirmed one (adapters/pas/confirm.go), on
// the same domain hook (booking.Service.ConfirmedBy):
//
//  1. In the booking's transaction the booking domain holds it pending
//     (awaiting the instance's confirmation, its slots busy-tentative);
//     watchBooking notes it and, just before the commit, reads what the
//     practice needs (the practice's slot, the patient's NHS number, the
//     principal who asked).
//  2. After the commit, still inside the client's request, the patient is
//     found at the practice (GET Patient?identifier=nhs-number|N). A
//     patient not registered there is refused (422 PATIENT_NOT_REGISTERED)
//     unless the practice accepts temporary patients, who are then
//     registered there ($gpc.registerpatient). Then the practice is asked
//     to book (STU3 POST Appointment), each exchange within
//     Settings.Timeout.
//  3. Booked (201): a second transaction, acting as the instance, books
//     the Signpost appointment with the practice's appointment id as an
//     identifier (AppointmentSystem); the client is answered the booked
//     Appointment and an Idempotency-Key remembers that answer.
//  4. Refused or failed: a second transaction cancels the Signpost
//     appointment (its slots freed) and moves a referral it was booked for
//     to the service's slot-issues worklist. The practice's 409
//     DUPLICATE_REJECTED is 409 SLOT_NOT_AVAILABLE; another error of the
//     practice 502 GP_PRACTICE_RESPONDED_WITH_ERROR; no answer in time
//     504 GP_PRACTICE_NOT_RESPONDING. After a timeout, or when the
//     practice booked but Signpost could not keep the booking (cancelled
//     meanwhile, its hold expired, the store failing), a cancellation at
//     the practice is queued in the outbox in the same transaction: it
//     finds the practice's appointment if its id is not known, and
//     cancels it, retried until the practice answers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// The error codes (CodeSystem error) of a booking the practice did not
// make.
const (
	ErrPracticeRespondedWithError = "GP_PRACTICE_RESPONDED_WITH_ERROR" // 502
	ErrPracticeNotResponding      = "GP_PRACTICE_NOT_RESPONDING"       // 504
	ErrPatientNotRegistered       = "PATIENT_NOT_REGISTERED"           // 422
	// ErrPracticeConfirmsAlone: a transaction Bundle of several entries
	// would book a slot of a GP practice (422, nothing written).
	ErrPracticeConfirmsAlone = "GP_PRACTICE_CONFIRMS_ALONE"
)

// confirmBookings makes the instance the one that confirms bookings of
// its services' slots (booking.Service.ConfirmedBy).
func (a *Adapter) confirmBookings() error {
	if err := a.env.ConfirmBookings(a.set.Services, a.asks); err != nil {
		return fmt.Errorf("a gpconnect instance %w", err)
	}
	return nil
}

// asks is the instance's booking.AsksFunc: every booking of its services'
// slots waits for the practice, except the instance's own writes (the
// practice's acceptance) and the server's own work.
func (a *Adapter) asks(ctx context.Context, _ *write.Tx, c *write.Change) bool {
	return !a.env.FromSelf(ctx) && !write.IsServer(ctx) && c.New != nil
}

// gpBooking is one booking the practice is asked to make.
type gpBooking struct {
	id      string
	created bool         // the booking's transaction created the appointment (201)
	claim   *write.Claim // its Idempotency-Key, if any
	who     *auth.Principal
	appt    []byte // the Signpost Appointment as committed (pending)
	patient []byte // its patient, R4
	nhs     string // the patient's NHS number
	slot    string // the practice's slot id
	sched   string // the practice's schedule id
	start   string // the slot's start and end
	end     string
	service string // the HealthcareService the slot's schedule is bound to
	// locations are the Locations of the slot's schedule (Signpost
	// references): the appointment's location at the practice.
	locations []string
	// orgName and orgPhone are the booking organisation's (the
	// organisation of who, as Signpost's directory has it).
	orgName, orgPhone string
}

// watchBooking notes, in tx, an appointment newly awaiting the
// instance's confirmation and schedules, once per transaction, the
// reading of what the practice needs (just before the commit) and the
// exchanges with the practice (after it).
func (a *Adapter) watchBooking(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if tx.Options().Entries > 1 {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "",
			"Appointment/%s books a slot of GP practice %s, which books it after the commit: a refusal could undo the booking but not the other entries of this transaction Bundle; send the booking on its own", c.ID, a.set.ODSCode).
			WithDetails(ErrPracticeConfirmsAlone)
	}
	created := c.Old == nil
	tx.BeforeCommit(func(ctx context.Context) error {
		b, err := a.gather(ctx, tx, c.ID)
		if err != nil {
			return err
		}
		b.created, b.claim = created, tx.Claim()
		tx.AfterCommit(func(ctx context.Context) error { return a.confirm(ctx, tx, b) })
		return nil
	})
	return nil
}

// gather reads in tx what asking the practice to book Appointment/id
// needs. A slot the practice did not publish, or a patient without an
// NHS number, cannot be booked there (422, nothing written).
func (a *Adapter) gather(ctx context.Context, tx *write.Tx, id string) (*gpBooking, error) {
	res, err := tx.Read(ctx, "Appointment", id)
	if err != nil {
		return nil, err
	}
	var v struct {
		Slot        []r4.Reference `json:"slot"`
		Participant []struct {
			Actor *r4.Reference `json:"actor"`
		} `json:"participant"`
	}
	if err := json.Unmarshal(res.JSON, &v); err != nil {
		return nil, err
	}
	b := &gpBooking{id: id, appt: res.JSON}
	b.who, _ = auth.FromContext(ctx)
	if err := a.bookingOrganisation(ctx, tx, b); err != nil {
		return nil, err
	}
	if len(v.Slot) != 1 {
		return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.slot",
			"an appointment at GP practice %s books exactly one of its slots (this one books %d)", a.set.ODSCode, len(v.Slot))
	}
	_, slotID, _ := fhir.SplitReference(elem.Str(v.Slot[0].Reference))
	slot, err := tx.Read(ctx, "Slot", slotID)
	if err != nil {
		return nil, err
	}
	var s struct {
		Identifier []r4.Identifier `json:"identifier"`
		Schedule   r4.Reference    `json:"schedule"`
		Start, End string
	}
	if err := json.Unmarshal(slot.JSON, &s); err != nil {
		return nil, err
	}
	b.slot, b.start, b.end = a.practiceID(s.Identifier, SlotSystem), s.Start, s.End
	if b.slot == "" {
		return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.slot[0]",
			"Slot/%s is not a slot GP practice %s published: only the practice's own slots can be booked there", slotID, a.set.ODSCode)
	}
	if _, schedID, ok := fhir.SplitReference(elem.Str(s.Schedule.Reference)); ok {
		if sc, err := readOrNil(ctx, tx, "Schedule", schedID); err != nil {
			return nil, err
		} else if sc != nil {
			var sv struct {
				Identifier []r4.Identifier `json:"identifier"`
				Actor      []r4.Reference  `json:"actor"`
			}
			_ = json.Unmarshal(sc.JSON, &sv)
			b.sched = a.practiceID(sv.Identifier, ScheduleSystem)
			for _, act := range sv.Actor {
				typ, aid, ok := fhir.SplitReference(elem.Str(act.Reference))
				switch {
				case ok && typ == "HealthcareService" && a.services[aid]:
					b.service = aid
				case ok && typ == "Location":
					b.locations = append(b.locations, elem.Str(act.Reference))
				}
			}
		}
	}
	for _, p := range v.Participant {
		if p.Actor == nil {
			continue
		}
		if typ, pid, ok := fhir.SplitReference(elem.Str(p.Actor.Reference)); ok && typ == "Patient" {
			pat, err := tx.Read(ctx, "Patient", pid)
			if err != nil {
				return nil, err
			}
			b.patient = pat.JSON
			var pv struct {
				Identifier []r4.Identifier `json:"identifier"`
			}
			_ = json.Unmarshal(pat.JSON, &pv)
			for _, idf := range pv.Identifier {
				if elem.Str(idf.System) == booking.NHSNumberSystem {
					b.nhs = elem.Str(idf.Value)
				}
			}
			if b.nhs == "" {
				return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.participant",
					"Patient/%s has no NHS number, which GP practice %s needs to find the patient", pid, a.set.ODSCode).WithDetails(ErrPatientNotRegistered)
			}
			return b, nil
		}
	}
	return nil, fhir.Errorf(fhir.Unprocessable, "required", "Appointment.participant",
		"an appointment at GP practice %s needs its patient as a participant", a.set.ODSCode)
}

// bookingOrganisation finds in the directory the organisation of the
// principal who asked (by ODS code), for its name and telephone number,
// which GP Connect requires of the booking organisation; without one
// there, Settings.ContactTelephone.
func (a *Adapter) bookingOrganisation(ctx context.Context, tx *write.Tx, b *gpBooking) error {
	b.orgPhone = a.set.ContactTelephone
	if b.who == nil || b.who.Organization == "" {
		return nil
	}
	b.orgName = b.who.Organization
	page, err := tx.Search(ctx, &search.Query{Type: "Organization", Count: 1, Filter: []search.Expr{
		search.TokenIn{Param: "identifier", System: stu3.ODSOrganizationSystem, HasSystem: true, Codes: []string{b.who.Organization}}}})
	if err != nil || len(page.Resources) == 0 {
		return err
	}
	var o struct {
		Name    string `json:"name"`
		Telecom []struct {
			System, Value string
		} `json:"telecom"`
	}
	_ = json.Unmarshal(page.Resources[0].JSON, &o)
	if o.Name != "" {
		b.orgName = o.Name
	}
	for _, t := range o.Telecom {
		if t.System == "phone" && t.Value != "" {
			b.orgPhone = t.Value
			break
		}
	}
	return nil
}

// practiceID is the practice's id in the identifiers of system the
// instance gave (its ODS code, a slash, the id), or "".
func (a *Adapter) practiceID(ids []r4.Identifier, system string) string {
	prefix := a.set.ODSCode + "/"
	for _, id := range ids {
		if elem.Str(id.System) == system && strings.HasPrefix(elem.Str(id.Value), prefix) {
			return strings.TrimPrefix(elem.Str(id.Value), prefix)
		}
	}
	return ""
}

// confirm is the AfterCommit work of a booking awaiting the practice: it
// asks the practice and settles the booking as it answers. Its error is
// the client's answer.
func (a *Adapter) confirm(ctx context.Context, tx *write.Tx, b *gpBooking) error {
	ctx = context.WithoutCancel(ctx) // the practice's answer is settled even when the client has gone
	var undo *message                // the cancellation at the practice that reconciles a failure
	patient, err := a.findPatient(ctx, b)
	var practiceAppt string
	if err == nil {
		practiceAppt, err = a.bookAtPractice(ctx, b, patient)
		if fhir.KindOf(err) == fhir.GatewayTimeout {
			// The practice may have booked it: find it and cancel it.
			undo = a.cancelMessage(b.who, "", patient, b, "Not confirmed: the practice did not answer in time")
		}
	}
	if err == nil {
		res, berr := a.book(ctx, b, practiceAppt)
		if berr == nil {
			tx.Supersede(res)
			return nil
		}
		a.failed(fmt.Sprintf("GP practice %s booked Appointment/%s (its appointment %s), which could not be booked here: %v", a.set.ODSCode, b.id, practiceAppt, berr))
		undo = a.cancelMessage(b.who, practiceAppt, patient, b, "Booked in error: the booking could not be completed")
		err = berr
		if fhir.KindOf(err) == fhir.Conflict {
			err = fhir.Errorf(fhir.Conflict, "conflict", "", "Appointment/%s was cancelled while GP practice %s booked it: the practice is told to cancel it too", b.id, a.set.ODSCode)
		}
	}
	if rerr := a.refuse(ctx, b, err, undo); rerr != nil {
		a.failed(fmt.Sprintf("undoing Appointment/%s after GP practice %s did not book it: %v", b.id, a.set.ODSCode, rerr))
		return errors.Join(err, rerr)
	}
	return err
}

// findPatient finds the patient at the practice by NHS number and returns
// the practice's id of them. A patient not registered there is refused
// (422) unless the practice accepts temporary patients: they are then
// registered there.
func (a *Adapter) findPatient(ctx context.Context, b *gpBooking) (string, error) {
	resp, err := a.exchange(ctx, request{interaction: stu3.InteractionFindPatient, method: http.MethodGet, path: "Patient",
		query: url.Values{"identifier": {booking.NHSNumberSystem + "|" + b.nhs}}, who: b.who}, "finding the patient")
	if err != nil {
		return "", err
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(resp.body, &bundle); err != nil {
		a.asked(fmt.Sprintf("finding the patient: the practice's answer cannot be read: %v", err))
		return "", badGateway("its answer to finding the patient cannot be read")
	}
	for _, e := range bundle.Entry {
		if e.Resource.ResourceType == "Patient" && e.Resource.ID != "" {
			return e.Resource.ID, nil
		}
	}
	if !a.set.TemporaryPatients {
		return "", fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.participant",
			"the patient (NHS number %s) is not registered at GP practice %s, which does not accept temporary patients: book with the patient's own practice", b.nhs, a.set.ODSCode).
			WithDetails(ErrPatientNotRegistered)
	}
	return a.registerPatient(ctx, b)
}

// exchange makes r within Settings.Timeout and returns a 2xx answer; any
// other outcome is the client's error (502; 504 when the practice did not
// answer in time, after which it may have acted all the same; 409
// SLOT_NOT_AVAILABLE for the practice's DUPLICATE_REJECTED).
func (a *Adapter) exchange(ctx context.Context, r request, what string) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, a.set.Timeout.Or(DefaultTimeout))
	defer cancel()
	resp, err := a.client.do(ctx, r)
	if err != nil {
		a.asked(what + ": " + err.Error())
		return nil, fhir.Errorf(fhir.GatewayTimeout, "timeout", "",
			"GP practice %s did not answer in time (%s, %v): the booking is cancelled; try again later or book another slot", a.set.ODSCode, what, err).
			WithDetails(ErrPracticeNotResponding)
	}
	if resp.status/100 == 2 {
		a.asked("")
		return resp, nil
	}
	pe := practiceError(resp)
	a.asked("")
	a.failed(fmt.Sprintf("%s: %v", what, pe))
	if duplicate(pe) {
		return nil, fhir.Errorf(fhir.Conflict, "conflict", "Appointment.slot",
			"GP practice %s has booked the slot already (%s): book another slot", a.set.ODSCode, pe.Code).
			WithDetails(booking.ErrSlotNotAvailable)
	}
	return nil, badGateway(fmt.Sprintf("%s: %v", what, pe))
}

// bookAtPractice asks the practice to book b for its patient (the
// practice's id patient) and returns the practice's appointment id.
func (a *Adapter) bookAtPractice(ctx context.Context, b *gpBooking, patient string) (string, error) {
	appt, err := a.bookingAppointment(b, patient)
	if err != nil {
		a.failed(fmt.Sprintf("Appointment/%s cannot be mapped for GP practice %s: %v", b.id, a.set.ODSCode, err))
		return "", fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment",
			"Appointment/%s cannot be booked at GP practice %s: %v", b.id, a.set.ODSCode, err)
	}
	resp, err := a.exchange(ctx, request{interaction: stu3.InteractionBookAppointment, method: http.MethodPost, path: "Appointment", body: appt, who: b.who}, "booking the appointment")
	if err != nil {
		return "", err
	}
	var got struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if json.Unmarshal(resp.body, &got) != nil || got.ResourceType != "Appointment" || got.ID == "" {
		a.failed(fmt.Sprintf("booking Appointment/%s: the practice's answer names no appointment", b.id))
		// It said it booked, but not what: found by slot and cancelled.
		return "", fhir.Errorf(fhir.GatewayTimeout, "timeout", "", "GP practice %s answered the booking with no appointment Signpost can read: the booking is cancelled; try again later", a.set.ODSCode).
			WithDetails(ErrPracticeNotResponding)
	}
	return got.ID, nil
}

// registerPatient registers b's patient at the practice as a temporary
// patient (GP Connect's $gpc.registerpatient) and returns the practice's
// id of them.
func (a *Adapter) registerPatient(ctx context.Context, b *gpBooking) (string, error) {
	pat, err := a.temporaryPatient(b)
	if err != nil {
		return "", fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.participant",
			"the patient cannot be registered at GP practice %s: %v", a.set.ODSCode, err)
	}
	raw, err := json.Marshal(pat)
	if err != nil {
		return "", err
	}
	params := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "registerPatient", "resource": json.RawMessage(raw)}}}
	resp, err := a.exchange(ctx, request{interaction: stu3.InteractionRegisterPatient, method: http.MethodPost, path: "Patient/$gpc.registerpatient", body: params, who: b.who}, "registering the temporary patient")
	if err != nil {
		return "", err
	}
	var got struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(resp.body, &got)
	if got.ResourceType == "Patient" && got.ID != "" {
		return got.ID, nil
	}
	for _, e := range got.Entry {
		if e.Resource.ResourceType == "Patient" && e.Resource.ID != "" {
			return e.Resource.ID, nil
		}
	}
	a.failed("registering the temporary patient: the practice's answer names no patient")
	return "", badGateway("its answer to registering the patient names no patient")
}

// badGateway is the client's error for a practice's refusal.
func badGateway(text string) error {
	return fhir.Errorf(fhir.BadGateway, "exception", "", "the GP practice did not make the booking: %s; the booking is cancelled", text).
		WithDetails(ErrPracticeRespondedWithError)
}

// book is the practice's acceptance: in a transaction of its own, acting
// as the instance, the appointment becomes booked (the booking domain
// makes its slot busy) with the practice's appointment id, and the
// booking request's Idempotency-Key remembers the booked appointment.
func (a *Adapter) book(ctx context.Context, b *gpBooking, practiceAppt string) (*fhir.Resource, error) {
	var out *fhir.Resource
	err := a.env.Writes.Update(a.env.Context(ctx), func(ctx context.Context, tx *write.Tx) error {
		var err error
		out, err = booking.Accept(ctx, tx, booking.Acceptance{ID: b.id, By: a.env.Name, System: AppointmentSystem,
			Value: a.localValue(practiceAppt), Created: b.created, Claim: b.claim, Describe: "the practice"})
		return err
	})
	return out, err
}

// refuse undoes a booking the practice did not make (why says how): in a
// transaction of its own, acting as the instance, the appointment is
// cancelled (the booking domain frees its slot), undo (when not nil) is
// queued for the practice, and each referral the appointment was booked
// for becomes a slot issue of the practice's service.
func (a *Adapter) refuse(ctx context.Context, b *gpBooking, why error, undo *message) error {
	reason := "Not booked by GP practice " + a.set.ODSCode
	if e := fhir.AsError(why); e != nil && len(e.Issues) > 0 {
		reason += ": " + e.Issues[0].Diagnostics
	}
	err := a.env.Writes.Update(a.env.Context(ctx), func(ctx context.Context, tx *write.Tx) error {
		if undo != nil {
			if err := a.enqueue(ctx, tx, b.id, undo); err != nil {
				return err
			}
		}
		cur, err := readOrNil(ctx, tx, "Appointment", b.id)
		if err != nil || cur == nil || !booking.HoldsSlots(cur.JSON) {
			return err
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
		if b.service == "" || a.env.Referral == nil {
			return nil
		}
		var v struct {
			BasedOn []r4.Reference `json:"basedOn"`
		}
		_ = json.Unmarshal(res.JSON, &v)
		for _, ref := range v.BasedOn {
			if typ, _, ok := fhir.SplitReference(elem.Str(ref.Reference)); ok && typ == "ServiceRequest" {
				_, err := a.env.Referral.RaiseSlotIssue(ctx, tx, elem.Str(ref.Reference), "HealthcareService/"+b.service, reason)
				if k := fhir.KindOf(err); k == fhir.Unprocessable || k == fhir.NotFound {
					a.env.Logger.Info("no slot issue for the refused booking's referral", "appointment", b.id, "referral", elem.Str(ref.Reference), "reason", err)
				} else if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && undo != nil {
		a.Wake()
	}
	return err
}
