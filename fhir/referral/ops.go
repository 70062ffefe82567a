package referral

import (
	"context"
	"fmt"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/repo"
)

// definition returns Signpost's OperationDefinition with id, or nil.
func definition(id string) []byte {
	for _, raw := range conformance.Definitions("OperationDefinition") {
		var head struct {
			ID string `json:"id"`
		}
		if decode(raw, &head, "OperationDefinition") == nil && head.ID == id {
			return raw
		}
	}
	return nil
}

// action describes one provider or referrer action on a referral.
type action struct {
	to            State
	needReason    bool
	needService   bool
	ownerIsTarget bool // the Task's owner becomes the service named
	ownerIsSender bool // the Task goes back to the referrer
	// cancelsBooking: the referral leaves the service it is booked with,
	// so its appointments are cancelled (their slots freed) in the same
	// transaction.
	cancelsBooking bool
}

var actions = map[string]action{
	"accept":   {to: Accepted},
	"reject":   {to: Rejected, needReason: true, ownerIsSender: true, cancelsBooking: true},
	"redirect": {to: Redirected, needService: true, ownerIsTarget: true, cancelsBooking: true},
	"defer":    {to: SlotIssue, needReason: true, needService: true, ownerIsTarget: true},
	"cancel":   {to: Cancelled, cancelsBooking: true},
}

// transitionOp is ServiceRequest/{id}/$<name>: it moves the referral's
// Task (the Task rule refuses illegal moves with 422 and writes the
// Provenance) and answers the updated Task.
func (s *Service) transitionOp(name string) *operation.Operation {
	act := actions[name]
	return &operation.Operation{
		Name: name, Types: []string{"ServiceRequest"}, Instance: true, Affects: true, Access: "update",
		Definition: definition("ServiceRequest-" + name),
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			reason, _ := req.Params.String("reason")
			if act.needReason && reason == "" {
				return nil, fhir.Errorf(fhir.Invalid, "required", "reason", "$%s needs a reason", name)
			}
			service, _ := req.Params.String("service")
			if act.needService && service == "" {
				return nil, fhir.Errorf(fhir.Invalid, "required", "service", "$%s needs the service (a HealthcareService reference)", name)
			}
			var out *fhir.Resource
			err := s.repo.Update(ctx, func(ctx context.Context, tx *repo.Tx) error {
				sr, err := tx.Read(ctx, "ServiceRequest", req.ID)
				if err != nil {
					return err
				}
				var r requestView
				if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
					return err
				}
				if service != "" {
					if typ, _, ok := fhir.SplitReference(service); !ok || typ != "HealthcareService" {
						return fhir.Errorf(fhir.Invalid, "value", "service", "service must reference a HealthcareService, not %q", service)
					}
					hs, err := readRef(ctx, tx, service)
					if err != nil {
						return fhir.Errorf(fhir.Unprocessable, "not-found", "service", "%s does not exist", service)
					}
					service = hs.Reference()
				}
				task, err := s.referralTask(ctx, tx, sr.Reference())
				if err != nil {
					return err
				}
				var tv taskView
				if err := decode(task.JSON, &tv, "Task"); err != nil {
					return err
				}
				if cur := tv.state(); cur == act.to || !CanMove(cur, act.to) {
					return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.businessStatus",
						"referral %s is %s: it cannot be moved to %s", sr.Reference(), cur, act.to).WithDetails("ILLEGAL_TRANSITION")
				}
				// The Task is the referral's workflow: whoever may update
				// the referral may move it with the operation.
				moved := repo.AsConsequence(ctx, repo.Consequence{Type: "Task", ID: task.ID, Grant: repo.ToWritersOf,
					On: []string{sr.Reference()}, Of: "$" + name + " " + sr.Reference()})
				out, err = s.moveTask(moved, tx, task, act.to, reason, func(obj *fhir.Object) {
					switch {
					case act.ownerIsTarget:
						obj.Set("owner", reference{Reference: service})
					case act.ownerIsSender && r.Requester.Reference != "":
						obj.Set("owner", r.Requester)
					}
				})
				if err != nil {
					return err
				}
				if act.cancelsBooking {
					why := "referral " + string(act.to)
					if service != "" {
						why += " to " + service
					}
					if reason != "" {
						why += ": " + reason
					}
					if _, err := s.cancelAppointments(ctx, tx, sr.Reference(), why); err != nil {
						return err
					}
				}
				if name == "redirect" {
					obj, err := fhir.ParseObject(sr.JSON)
					if err != nil {
						return err
					}
					obj.Set("performer", []reference{{Reference: service}})
					if _, _, err := tx.Put(internal(ctx), "ServiceRequest", sr.ID, obj, 0); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				if e := fhir.AsError(err); e.Kind != fhir.Other {
					e.Op = fmt.Sprintf("$%s ServiceRequest/%s", name, req.ID)
				}
				return nil, err
			}
			return &operation.Result{Body: out.JSON}, nil
		},
	}
}
