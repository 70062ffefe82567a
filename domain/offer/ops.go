package offer

import (
	"context"
	"net/http"
	"net/url"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
)

func (o *Service) requestOp() *operation.Operation {
	return &operation.Operation{Name: "request-earlier", Types: []string{"Appointment"}, Instance: true, Affects: true,
		Access: "update", Definition: conformance.OperationDefinition("Appointment-request-earlier"), Handle: o.requestEarlier}
}

func (o *Service) declineOp() *operation.Operation {
	return &operation.Operation{Name: "decline-offer", Types: []string{"Appointment"}, Instance: true, Affects: true,
		Access: "update", Definition: conformance.OperationDefinition("Appointment-decline-offer"), Handle: o.decline}
}

// window reads an optional date or dateTime input.
func (o *Service) window(p *operation.Parameters, name string) (string, error) {
	v, ok := p.String(name)
	if !ok || v == "" {
		return "", nil
	}
	if _, _, err := search.DateRange(v, o.cfg.Location); err != nil {
		return "", fhir.Errorf(fhir.Invalid, "invalid", name, "%s %q is not a date or dateTime", name, v)
	}
	return v, nil
}

// requestEarlier is Appointment/{id}/$request-earlier: the patient of a
// booked appointment (or someone who may change it for them) asks for an
// earlier slot. The request is a Task (code earlier-slot, focus the
// appointment, for its patient, basedOn its referral, restriction.period
// the window, reasonCode the reason). Asking again while a request is
// active answers that request, its window and reason updated when they
// differ; nothing else changes.
func (o *Service) requestEarlier(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	earliest, err := o.window(req.Params, "earliest")
	if err != nil {
		return nil, err
	}
	latest, err := o.window(req.Params, "latest")
	if err != nil {
		return nil, err
	}
	reason, _ := req.Params.String("reason")
	withdraw := false
	if v, ok := req.Params.String("withdraw"); ok {
		if v != "true" && v != "false" {
			return nil, fhir.Errorf(fhir.Invalid, "invalid", "withdraw", "withdraw must be true or false, not %q", v)
		}
		withdraw = v == "true"
	}
	var body []byte
	status := http.StatusOK
	err = o.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		status = http.StatusOK
		cur, err := o.repo.ReadAs(ctx, tx, "Appointment", req.ID)
		if err != nil {
			return err
		}
		a, err := decode[appointment](cur.JSON)
		if err != nil {
			return err
		}
		if withdraw {
			body, err = o.withdraw(ctx, tx, req.ID, reason)
			return err
		}
		if a.Status != "booked" {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.status",
				"Appointment/%s is %s: only a booked appointment can be moved earlier", req.ID, a.Status).WithDetails(ErrNotBooked)
		}
		if at, ok := a.start(); !ok || !at.After(tx.Now()) {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.start",
				"Appointment/%s has started: it cannot be moved earlier", req.ID).WithDetails(ErrNotBooked)
		}
		if a.referral() == "" || a.patient() == "" {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.basedOn",
				"Appointment/%s is based on no referral: earlier slots are offered to a referral's patient as its referral allows", req.ID).WithDetails(ErrNoReferral)
		}
		period := map[string]any{}
		if earliest != "" {
			period["start"] = earliest
		}
		if latest != "" {
			period["end"] = latest
		}
		existing, err := o.searchAll(ctx, tx, "Task", url.Values{"focus": {"Appointment/" + req.ID},
			"code": {CodeSystem + "|" + TaskCode}, "status": {"requested,in-progress"}})
		if err != nil {
			return err
		}
		var obj *fhir.Object
		id, ver := write.NewID(), int64(0)
		if len(existing) > 0 {
			res := existing[0]
			if obj, err = fhir.ParseObject(res.JSON); err != nil {
				return err
			}
			id, ver = res.ID, res.Version
		} else {
			status = http.StatusCreated
			obj, _ = fhir.ParseObject(mustJSON(map[string]any{
				"resourceType": "Task", "status": "requested", "intent": "order",
				"code": map[string]any{"coding": []any{map[string]any{"system": CodeSystem, "code": TaskCode,
					"display": "Earlier appointment wanted"}}},
				"businessStatus": r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(CodeSystem), Code: elem.Opt(Waiting)}}},
				"focus":          elem.Ref("Appointment/" + req.ID),
				"for":            elem.Ref(a.patient()),
				"basedOn":        []any{elem.Ref(a.referral())},
				"authoredOn":     tx.Now().UTC().Format(time.RFC3339Nano),
			}))
		}
		before := obj.Clone()
		if len(period) > 0 {
			obj.Set("restriction", map[string]any{"period": period})
		} else {
			obj.Delete("restriction")
		}
		if reason != "" {
			obj.Set("reasonCode", r4.CodeableConcept{Text: &reason})
		} else {
			obj.Delete("reasonCode")
		}
		if ver != 0 && sameJSON(before.Bytes(), obj.Bytes()) {
			body = existing[0].JSON // asked again: nothing changes
			return nil
		}
		obj.Set("lastModified", tx.Now().UTC().Format(time.RFC3339Nano))
		// Whoever may change the appointment may ask to move it.
		cctx := write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: id, Grant: write.ToWritersOf,
			On: []string{"Appointment/" + req.ID}, Of: "$request-earlier Appointment/" + req.ID})
		res, _, err := tx.PutWith(cctx, "Task", id, obj, ver, own)
		if err != nil {
			return err
		}
		body = res.JSON
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &operation.Result{Status: status, Body: body}, nil
}

// withdraw withdraws the active request for Appointment/id: the request
// is cancelled (why its statusReason), and its open offer with it. With
// none active, it answers the last request withdrawn (asked again), or
// 404 when there never was one.
func (o *Service) withdraw(ctx context.Context, tx *write.Tx, id, why string) ([]byte, error) {
	all, err := o.searchAll(ctx, tx, "Task", url.Values{"focus": {"Appointment/" + id}, "code": {CodeSystem + "|" + TaskCode}})
	if err != nil {
		return nil, err
	}
	var last *fhir.Resource
	for _, res := range all {
		t, err := decode[request](res.JSON)
		if err != nil {
			continue
		}
		if !t.active() {
			if t.Status == "cancelled" && (last == nil || res.LastUpdated.After(last.LastUpdated)) {
				last = res
			}
			continue
		}
		if why == "" {
			why = "withdrawn"
		}
		if err := o.withdrawOffer(ctx, tx, res.ID, elem.Str(t.For.Reference)); err != nil {
			return nil, err
		}
		cause := write.Consequence{Grant: write.ToWritersOf, On: []string{"Appointment/" + id}, Of: "$request-earlier Appointment/" + id}
		if err := o.moveRequest(ctx, tx, res, "cancelled", "", "", why, cause); err != nil {
			return nil, err
		}
		cur, err := tx.Read(ctx, "Task", res.ID)
		if err != nil {
			return nil, err
		}
		return cur.JSON, nil
	}
	if last == nil {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "withdraw", "Appointment/%s has no request for an earlier slot to withdraw", id)
	}
	return last.JSON, nil
}

// decline is Appointment/{id}/$decline-offer: the patient (or someone who
// may change the offer for them) turns an offer down. It is cancelled,
// which frees its slot for the next patient; their request goes on
// waiting. It answers the cancelled offer.
func (o *Service) decline(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	reason := "Earlier-slot offer declined"
	if s, ok := req.Params.String("reason"); ok && s != "" {
		reason = s
	}
	var body []byte
	err := o.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		cur, err := o.repo.ReadAs(ctx, tx, "Appointment", req.ID)
		if err != nil {
			return err
		}
		a, err := decode[appointment](cur.JSON)
		if err != nil {
			return err
		}
		if a.offerOf() == nil || a.Status != "pending" {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment",
				"Appointment/%s is not an open earlier-slot offer (it is %s)", req.ID, a.Status).WithDetails(ErrNotOffer)
		}
		obj, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return err
		}
		obj.Set("status", "cancelled")
		obj.Set("cancelationReason", r4.CodeableConcept{Text: &reason})
		res, _, err := tx.Put(ctx, "Appointment", req.ID, obj, cur.Version)
		if err != nil {
			return err
		}
		body = res.JSON
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &operation.Result{Body: body}, nil
}
