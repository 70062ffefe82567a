package booking

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// Validator checks a resource's JSON against the FHIR definitions; $book
// uses it on an appointment-resource, which no REST route validated.
type Validator interface {
	Validate(raw []byte) []fhir.Issue
}

func (b *Service) holdOp() *operation.Operation {
	return &operation.Operation{Name: "hold", Types: []string{"Appointment"}, TypeLevel: true, Affects: true,
		Access: "create", Definition: conformance.OperationDefinition("Appointment-hold"), Handle: b.hold}
}

func (b *Service) bookOp() *operation.Operation {
	return &operation.Operation{Name: "book", Types: []string{"Appointment"}, TypeLevel: true, Affects: true,
		Access: "create", Definition: conformance.OperationDefinition("Appointment-book"), Handle: b.book}
}

func (b *Service) rescheduleOp() *operation.Operation {
	return &operation.Operation{Name: "reschedule", Types: []string{"Appointment"}, Instance: true, Affects: true,
		Access: "update", Definition: conformance.OperationDefinition("Appointment-reschedule"), Handle: b.reschedule}
}

// hold is Appointment/$hold: the proposal's slots become busy-tentative
// under a new pending Appointment, until Config.HoldFor has passed.
func (b *Service) hold(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	ref, ok := req.Params.String("appointment-reference")
	if !ok {
		return nil, fhir.Errorf(fhir.Invalid, "required", "appointment-reference", "$hold needs appointment-reference: a proposal from $find")
	}
	id, ok := refID(ref, "Appointment")
	if !ok {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "appointment-reference", "%q is not an Appointment reference", ref)
	}
	p, err := b.verify(ctx, id, b.now())
	if err != nil {
		return nil, err
	}
	return b.write(ctx, req, true, func(ctx context.Context, tx *write.Tx) ([]*fhir.Resource, error) {
		obj, err := b.fromProposal(ctx, tx, p, "pending")
		if err != nil {
			return nil, err
		}
		if err := withBreachReason(obj, req.Params); err != nil {
			return nil, err
		}
		res, err := tx.Create(ctx, "Appointment", obj)
		return []*fhir.Resource{res}, err
	})
}

// book is Appointment/$book: it confirms a hold (appointment-reference to
// a pending Appointment), books a proposal (appointment-reference to a
// $find result) or books appointment-resource, with patient-resource
// naming the patient and comment added.
func (b *Service) book(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	pt, err := b.patientParam(ctx, req.Params)
	if err != nil {
		return nil, err
	}
	patientRef := pt.ref
	comment, _ := req.Params.String("comment")
	if x, ok := req.Params.Get("appointment-resource"); ok {
		return b.bookResource(ctx, req, x.Resource, pt, comment)
	}
	ref, ok := req.Params.String("appointment-reference")
	if !ok {
		return nil, fhir.Errorf(fhir.Invalid, "required", "appointment-reference",
			"$book needs appointment-reference (a hold or a proposal) or appointment-resource")
	}
	id, ok := refID(ref, "Appointment")
	if !ok {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "appointment-reference", "%q is not an Appointment reference", ref)
	}
	// An appointment the caller cannot read is answered as one that does
	// not exist: a proposal is tried.
	if _, err := b.repo.ReadAs(ctx, b.repo.Store(), "Appointment", id); fhir.KindOf(err) == fhir.NotFound {
		p, err := b.verify(ctx, id, b.now())
		if err != nil {
			return nil, err
		}
		return b.write(ctx, req, true, func(ctx context.Context, tx *write.Tx) ([]*fhir.Resource, error) {
			created, err := pt.register(ctx, tx)
			if err != nil {
				return nil, err
			}
			obj, err := b.fromProposal(ctx, tx, p, "booked")
			if err != nil {
				return nil, err
			}
			if err := withPatient(obj, patientRef, comment); err != nil {
				return nil, err
			}
			if err := withBreachReason(obj, req.Params); err != nil {
				return nil, err
			}
			res, err := tx.Create(ctx, "Appointment", obj)
			return append([]*fhir.Resource{res}, created...), err
		})
	}
	return b.write(ctx, req, false, func(ctx context.Context, tx *write.Tx) ([]*fhir.Resource, error) {
		created, err := pt.register(ctx, tx)
		if err != nil {
			return nil, err
		}
		cur, err := b.repo.ReadAs(ctx, tx, "Appointment", id)
		if err != nil {
			return nil, err
		}
		a, err := decode[appointment](cur.JSON)
		if err != nil {
			return nil, err
		}
		if a.Status != "pending" {
			return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "appointment-reference",
				"Appointment/%s is %s, not a hold (pending)", id, a.Status)
		}
		obj, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return nil, err
		}
		obj.Set("status", "booked")
		if err := withPatient(obj, patientRef, comment); err != nil {
			return nil, err
		}
		if err := withBreachReason(obj, req.Params); err != nil {
			return nil, err
		}
		res, _, err := tx.Put(ctx, "Appointment", id, obj, cur.Version)
		return append([]*fhir.Resource{res}, created...), err
	})
}

func (b *Service) bookResource(ctx context.Context, req *operation.Request, raw json.RawMessage, pt *patientInput, comment string) (*operation.Result, error) {
	patientRef := pt.ref
	obj, err := fhir.ParseObject(raw)
	if err != nil || raw == nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "appointment-resource", "appointment-resource must be an Appointment resource")
	}
	if rt, _ := obj.String("resourceType"); rt != "Appointment" {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "appointment-resource", "appointment-resource must be an Appointment, not %q", rt)
	}
	if st, _ := obj.String("status"); st != "pending" && st != "proposed" {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "appointment-resource", "appointment-resource must have status pending (or proposed), not %q", st)
	}
	obj.Delete("id")
	obj.Delete("meta")
	obj.Set("status", "booked")
	if err := withPatient(obj, patientRef, comment); err != nil {
		return nil, err
	}
	if err := withBreachReason(obj, req.Params); err != nil {
		return nil, err
	}
	if _, err := b.prepareAppointment(ctx, b.repo.Store(), obj); err != nil {
		return nil, err
	}
	if b.cfg.Validator != nil {
		var issues []fhir.Issue
		for _, is := range b.cfg.Validator.Validate(obj.Bytes()) {
			if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
				is.Expression = append([]string{"appointment-resource"}, is.Expression...)
				issues = append(issues, is)
			}
		}
		if len(issues) > 0 {
			return nil, &fhir.Error{Kind: fhir.Invalid, Op: "$book", Issues: issues}
		}
	}
	return b.write(ctx, req, true, func(ctx context.Context, tx *write.Tx) ([]*fhir.Resource, error) {
		created, err := pt.register(ctx, tx)
		if err != nil {
			return nil, err
		}
		res, err := tx.Create(ctx, "Appointment", obj)
		return append([]*fhir.Resource{res}, created...), err
	})
}

// patientInput is the patient $book books for.
type patientInput struct {
	ref string       // "Patient/id"; "" when $book names no patient
	new *fhir.Object // a Patient to register under ref in the booking's transaction
}

// register writes the new patient, if any, in tx: the Patient rules run
// (NHS number check digit, one Patient per NHS number). It returns the
// Patient written.
func (pt *patientInput) register(ctx context.Context, tx *write.Tx) ([]*fhir.Resource, error) {
	if pt.new == nil {
		return nil, nil
	}
	_, id, _ := strings.Cut(pt.ref, "/")
	res, created, err := tx.Put(ctx, "Patient", id, pt.new, 0)
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, fhir.Errorf(fhir.Conflict, "conflict", "patient-resource", "Patient/%s appeared while it was registered; retry", id)
	}
	return []*fhir.Resource{res}, nil
}

// patientParam reads patient-reference (a Patient of this server) or
// patient-resource. A patient-resource names a Patient of this server by its
// id, or else by its NHS number; a patient known by neither is new, and is
// registered in the booking's transaction, validated like any Patient: IHE
// ITI Scheduling lets $find and $book carry a patient not yet on the server
// and says its record is created just before booking. The result's ref is
// "" when neither parameter is present.
func (b *Service) patientParam(ctx context.Context, p *operation.Parameters) (*patientInput, error) {
	x, ok := p.Get("patient-resource")
	if !ok {
		if ref, ok := p.String("patient-reference"); ok {
			if id, ok := refID(ref, "Patient"); ok {
				return &patientInput{ref: "Patient/" + id}, nil
			}
			return nil, fhir.Errorf(fhir.Invalid, "invalid", "patient-reference", "%q is not a Patient reference", ref)
		}
		return &patientInput{}, nil
	}
	var pt struct {
		ResourceType, ID string
		Identifier       []struct{ System, Value string }
	}
	if x.Resource == nil || json.Unmarshal(x.Resource, &pt) != nil || pt.ResourceType != "Patient" {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "patient-resource", "patient-resource must be a Patient resource")
	}
	r := b.repo.Store()
	if fhir.ValidID(pt.ID) {
		if _, err := b.repo.ReadAs(ctx, r, "Patient", pt.ID); err == nil {
			return &patientInput{ref: "Patient/" + pt.ID}, nil
		} else if k := fhir.KindOf(err); k != fhir.NotFound && k != fhir.Gone {
			return nil, err
		}
	}
	for _, id := range pt.Identifier {
		if id.System != NHSNumberSystem || id.Value == "" {
			continue
		}
		found, err := b.search1(ctx, r, "Patient", url.Values{"identifier": {NHSNumberSystem + "|" + id.Value}})
		if err != nil {
			return nil, err
		}
		if found != nil {
			if _, err := b.repo.ReadAs(ctx, r, "Patient", found.ID); err == nil { // else as if unknown
				return &patientInput{ref: "Patient/" + found.ID}, nil
			}
		}
	}
	obj, err := fhir.ParseObject(x.Resource)
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "patient-resource", "patient-resource cannot be read: %v", err)
	}
	obj.Delete("id")
	obj.Delete("meta")
	if b.cfg.Validator != nil {
		var issues []fhir.Issue
		for _, is := range b.cfg.Validator.Validate(obj.Bytes()) {
			if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
				is.Expression = append([]string{"patient-resource"}, is.Expression...)
				issues = append(issues, is)
			}
		}
		if len(issues) > 0 {
			return nil, &fhir.Error{Kind: fhir.Invalid, Op: "$book", Issues: issues}
		}
	}
	return &patientInput{ref: "Patient/" + write.NewID(), new: obj}, nil
}

// withPatient makes patientRef a participant (when not one already) and
// sets comment (when given).
func withPatient(obj *fhir.Object, patientRef, comment string) error {
	if comment != "" {
		obj.Set("comment", comment)
	}
	if patientRef == "" {
		return nil
	}
	var parts []json.RawMessage
	if raw := obj.Get("participant"); raw != nil {
		if err := json.Unmarshal(raw, &parts); err != nil {
			return fhir.Errorf(fhir.Invalid, "structure", "Appointment.participant", "participant must be an array")
		}
	}
	for _, raw := range parts {
		var p participant
		if json.Unmarshal(raw, &p) == nil && p.Actor != nil {
			if _, ok := refID(elem.Str(p.Actor.Reference), "Patient"); ok {
				if sameRef(elem.Str(p.Actor.Reference), patientRef) {
					return nil
				}
				return fhir.Errorf(fhir.Unprocessable, "business-rule", "patient-resource",
					"the appointment is for %s, not %s", elem.Str(p.Actor.Reference), patientRef)
			}
		}
	}
	pref := elem.Ref(patientRef)
	b, _ := json.Marshal(r4.AppointmentParticipant{Actor: &pref, Status: r4.ParticipationStatusAccepted})
	obj.Set("participant", append([]json.RawMessage{b}, parts...))
	return nil
}

// withBreachReason records the breach-reason input, if any, on the
// appointment booked (ExtBreachReason): a two-week-wait referral's booking
// past its wait is refused without one.
func withBreachReason(obj *fhir.Object, p *operation.Parameters) error {
	reason, _ := p.String("breach-reason")
	if strings.TrimSpace(reason) == "" {
		return nil
	}
	return setExtension(obj, r4.Extension{Url: ExtBreachReason, ValueString: &reason})
}

// fromProposal builds the Appointment a proposal stands for, in status.
func (b *Service) fromProposal(ctx context.Context, tx *write.Tx, p proposal, status string) (*fhir.Object, error) {
	obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Appointment"}`))
	obj.Set("status", status)
	var refs []r4.Reference
	var first, last *slot
	var sc *schedule
	for _, id := range p.Slots {
		res, err := tx.Read(ctx, "Slot", id)
		if err != nil {
			return nil, b.refused(tx, fhir.Errorf(fhir.Conflict, "conflict", "appointment-reference", "Slot/%s of the proposal no longer exists", id).
				WithDetails(ErrSlotNotAvailable))
		}
		s, err := decode[slot](res.JSON)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = s
			var raw struct {
				ServiceType json.RawMessage `json:"serviceType"`
				Specialty   json.RawMessage `json:"specialty"`
			}
			json.Unmarshal(res.JSON, &raw)
			if raw.ServiceType != nil {
				obj.Set("serviceType", raw.ServiceType)
			}
			if raw.Specialty != nil {
				obj.Set("specialty", raw.Specialty)
			}
			if sid, ok := refID(elem.Str(s.Schedule.Reference), "Schedule"); ok {
				if sres, err := tx.Read(ctx, "Schedule", sid); err == nil {
					sc, _ = decode[schedule](sres.JSON)
				}
			}
		}
		last = s
		refs = append(refs, elem.Ref("Slot/"+id))
	}
	obj.Set("start", first.Start)
	obj.Set("end", last.End)
	obj.Set("slot", refs)
	if p.Referral != "" {
		obj.Set("basedOn", []r4.Reference{elem.Ref("ServiceRequest/" + p.Referral)})
	}
	var parts []r4.AppointmentParticipant
	if p.Patient != "" {
		pref := elem.Ref("Patient/" + p.Patient)
		parts = append(parts, r4.AppointmentParticipant{Actor: &pref, Status: r4.ParticipationStatusAccepted})
	}
	if sc != nil {
		for _, a := range sc.Actor {
			ref := elem.Ref(elem.Str(a.Reference))
			parts = append(parts, r4.AppointmentParticipant{Actor: &ref, Status: r4.ParticipationStatusAccepted})
		}
	}
	if len(parts) > 0 {
		obj.Set("participant", parts)
	}
	return obj, nil
}

// reschedule is Appointment/{id}/$reschedule: in one transaction the
// appointment is cancelled and a copy booked into the new slots, pointing
// at it with the R5 replaces extension.
func (b *Service) reschedule(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	var refs []r4.Reference
	for i, x := range req.Params.All("slot") {
		s, _ := x.String()
		id, ok := refID(s, "Slot")
		if !ok {
			return nil, fhir.Errorf(fhir.Invalid, "invalid", "slot["+itoa(i)+"]", "%q is not a Slot reference", s)
		}
		refs = append(refs, elem.Ref("Slot/"+id))
	}
	if len(refs) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "required", "slot", "$reschedule needs one or more slot references")
	}
	reason := "Rescheduled"
	if s, ok := req.Params.String("reason"); ok && s != "" {
		reason = s
	}
	return b.write(ctx, req, false, func(ctx context.Context, tx *write.Tx) ([]*fhir.Resource, error) {
		cur, err := tx.Read(ctx, "Appointment", req.ID)
		if err != nil {
			return nil, err
		}
		a, err := decode[appointment](cur.JSON)
		if err != nil {
			return nil, err
		}
		if a.Status != "booked" {
			return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.status",
				"only a booked appointment can be rescheduled; Appointment/%s is %s", req.ID, a.Status)
		}
		old, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return nil, err
		}
		old.Set("status", "cancelled")
		old.Set("cancelationReason", r4.CodeableConcept{Text: &reason})
		oldRes, _, err := tx.Put(ctx, "Appointment", req.ID, old, cur.Version)
		if err != nil {
			return nil, err
		}
		nw, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return nil, err
		}
		for _, k := range []string{"id", "meta", "start", "end", "minutesDuration", "created"} {
			nw.Delete(k)
		}
		nw.Set("slot", refs)
		removeExtension(nw, ExtHoldExpires)
		removeExtension(nw, ExtBreachReason) // a breach is justified for the booking it was given for
		if err := withBreachReason(nw, req.Params); err != nil {
			return nil, err
		}
		if err := setExtension(nw, r4.Extension{Url: ExtReplaces, ValueReference: &r4.Reference{Reference: elem.Opt("Appointment/" + req.ID)}}); err != nil {
			return nil, err
		}
		if _, err := b.prepareAppointment(ctx, tx, nw); err != nil {
			return nil, err
		}
		if !nw.Has("start") {
			return nil, fhir.Errorf(fhir.Unprocessable, "not-found", "slot", "the new slots do not exist or have no start and end")
		}
		res, err := tx.Create(ctx, "Appointment", nw)
		if err != nil {
			return nil, err
		}
		return []*fhir.Resource{res, oldRes}, nil
	})
}

// write runs fn in one transaction and answers a searchset Bundle of the
// resources it returns (the first a match, the rest includes); an
// Idempotency-Key's record is stored in the same transaction. With
// precheck (a new booking or hold, which collides with others for the
// same slots), fn runs first on the committed state, so that a slot
// already taken is refused without waiting for the store's writer
// (write.TxOptions.Precheck).
//
// A booking another system must confirm (ConfirmedBy) is answered as that
// system's answer left it (write.Tx.Latest): booked when it accepted, an
// error when it did not; its key remembers that answer, stored once it is
// known, and nothing when it is an error.
func (b *Service) write(ctx context.Context, req *operation.Request, precheck bool, fn func(ctx context.Context, tx *write.Tx) ([]*fhir.Resource, error)) (*operation.Result, error) {
	var body []byte
	var out []*fhir.Resource
	var wtx *write.Tx // the attempt that committed
	waits := false    // a resource written awaits another system's answer
	err := b.repo.UpdateWith(ctx, write.TxOptions{Precheck: precheck}, func(ctx context.Context, tx *write.Tx) error {
		var err error
		wtx, waits = tx, false
		if out, err = fn(ctx, tx); err != nil {
			return err
		}
		for _, res := range out {
			waits = waits || (res.Type == "Appointment" && AwaitsConfirmation(res.JSON) != "")
		}
		body = resultBundle(req.BaseURL, out)
		if waits {
			return nil
		}
		return tx.Remember(ctx, claimOf(req), write.Answer{Status: http.StatusOK, Body: body})
	})
	if err != nil || !waits {
		return &operation.Result{Body: body}, err
	}
	for i, res := range out {
		out[i] = wtx.Latest(res)
	}
	body = resultBundle(req.BaseURL, out)
	if claim := claimOf(req); claim != nil {
		if err := b.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
			return tx.Remember(ctx, claim, write.Answer{Status: http.StatusOK, Body: body})
		}); err != nil {
			return nil, err
		}
	}
	return &operation.Result{Body: body}, nil
}

// bundleEntry is one entry of a searchset Bundle.
type bundleEntry struct {
	FullURL  string
	Resource json.RawMessage
	Mode     string
}

// resultBundle is the answer of an operation that wrote out: the first a
// match, the rest includes.
func resultBundle(base string, out []*fhir.Resource) []byte {
	var entries []bundleEntry
	for i, res := range out {
		mode := "match"
		if i > 0 {
			mode = "include"
		}
		entries = append(entries, bundleEntry{FullURL: base + "/" + res.Type + "/" + res.ID, Resource: res.JSON, Mode: mode})
	}
	return searchset(entries)
}

func searchset(entries []bundleEntry) []byte {
	type search struct {
		Mode string `json:"mode"`
	}
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   search          `json:"search"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Total        int     `json:"total"`
		Entry        []entry `json:"entry,omitempty"`
	}{ResourceType: "Bundle", Type: "searchset"}
	for _, e := range entries {
		if e.Mode == "match" {
			out.Total++
		}
		out.Entry = append(out.Entry, entry{e.FullURL, e.Resource, search{e.Mode}})
	}
	b, _ := json.Marshal(out)
	return b
}

// Sweep releases the holds that have expired: each such pending
// Appointment is cancelled ("hold expired"), which frees its slots. It
// returns how many it released.
func (b *Service) Sweep(ctx context.Context) (int, error) {
	b.sweeping.Lock()
	defer b.sweeping.Unlock()
	pending, err := b.searchAll(ctx, b.repo.Store(), "Appointment", map[string][]string{"status": {"pending"}}, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, res := range pending {
		if a, err := decode[appointment](res.JSON); err != nil || !expired(a, b.now()) {
			continue
		}
		released := false
		err := b.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
			released = false
			cur, err := tx.Read(ctx, "Appointment", res.ID)
			if err != nil {
				return nil // deleted since
			}
			a, err := decode[appointment](cur.JSON)
			if err != nil || a.Status != "pending" || !expired(a, tx.Now()) {
				return nil
			}
			obj, err := fhir.ParseObject(cur.JSON)
			if err != nil {
				return err
			}
			obj.Set("status", "cancelled")
			obj.Set("cancelationReason", r4.CodeableConcept{Text: elem.Opt("Hold expired")})
			_, _, err = tx.Put(ctx, "Appointment", res.ID, obj, cur.Version)
			released = err == nil
			return err
		})
		if err != nil {
			return n, err
		}
		if released {
			n++
			b.cfg.Observer.Released(1)
		}
	}
	return n, nil
}

func expired(a *appointment, now time.Time) bool {
	ext := a.ext(ExtHoldExpires)
	if a.Status != "pending" || ext == nil {
		return false
	}
	t, ok := parseInstant(elem.Str(ext.ValueInstant))
	return ok && !now.Before(t)
}
