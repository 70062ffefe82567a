package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"fmt"
	"strings"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

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
	op := &operation.Operation{
		Name: name, Types: []string{"ServiceRequest"}, Instance: true, Affects: true, Access: "update",
		Definition: conformance.OperationDefinition("ServiceRequest-" + name),
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			reason, _ := req.Params.String("reason")
			if act.needReason && reason == "" {
				return nil, fhir.Errorf(fhir.Invalid, "required", "reason", "$%s needs a reason", name)
			}
			service, _ := req.Params.String("service")
			raise := name == "defer" && isNoSlots(reason)
			if act.needService && service == "" && !raise {
				return nil, fhir.Errorf(fhir.Invalid, "required", "service", "$%s needs the service (a HealthcareService r4.Reference)", name)
			}
			var out *fhir.Resource
			err := s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
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
				task, tv, err := s.referralTaskView(ctx, tx, sr.Reference())
				if err != nil {
					return err
				}
				if raise && tv.state() == SlotIssue {
					out = task // raised already: a second raise changes nothing
					return nil
				}
				if raise && service == "" {
					if service, err = s.slotIssueService(ctx, tx, sr); err != nil {
						return err
					}
				}
				if cur := tv.state(); cur == act.to || !CanMove(cur, act.to) {
					return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.businessStatus",
						"referral %s is %s: it cannot be moved to %s", sr.Reference(), cur, act.to).WithDetails("ILLEGAL_TRANSITION")
				}
				// The Task is the referral's workflow: whoever may update
				// the referral may move it with the operation, and whoever
				// may read it may raise a slot issue.
				grant := write.ToWritersOf
				if raise {
					grant = write.ToReadersOf
				}
				moved := write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: task.ID, Grant: grant,
					On: []string{sr.Reference()}, Of: "$" + name + " " + sr.Reference()})
				out, err = s.moveTask(moved, tx, task, act.to, reason, func(obj *fhir.Object) {
					if name == "redirect" {
						_ = obj.SetExtensions(RedirectedExtension, r4.Extension{Url: RedirectedExtension, ValueReference: &r4.Reference{Reference: elem.Opt(service)}})
					}
					switch {
					case act.ownerIsTarget:
						obj.Set("owner", elem.Ref(service))
					case act.ownerIsSender && elem.Str(r.Requester.Reference) != "":
						obj.Set("owner", r4.Reference{Reference: r.Requester.Reference, Display: r.Requester.Display})
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
					cancel := r4.CodeableConcept{Text: elem.Opt(why)}
					if name == "reject" || name == "redirect" {
						cancel = byProvider(why)
					}
					if _, err := s.cancelAppointmentsFor(ctx, tx, sr.Reference(), cancel); err != nil {
						return err
					}
				}
				if name == "redirect" {
					obj, err := fhir.ParseObject(sr.JSON)
					if err != nil {
						return err
					}
					obj.Set("performer", []r4.Reference{elem.Ref(service)})
					if _, _, err := tx.PutWith(ctx, "ServiceRequest", sr.ID, obj, 0, own); err != nil {
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
	if name == "defer" {
		// Raising an appointment slot issue is open to whoever may read
		// the referral: its patient (a UBRN token), a call centre, the
		// referrer. Any other deferral needs update.
		op.AccessFor = func(p *operation.Parameters) string {
			if reason, _ := p.String("reason"); isNoSlots(reason) {
				return "read"
			}
			return "update"
		}
	}
	return op
}

// isNoSlots reports whether a $defer reason raises an appointment slot
// issue: the patient found no free slot.
func isNoSlots(reason string) bool {
	r := strings.ToLower(strings.TrimSpace(reason))
	return r == "no slots" || r == "no-slots"
}

// slotIssueService is the service an appointment slot issue goes to when
// the raise names none: the referral's chosen service (performer), else
// the first of its saved shortlist, else the best suited directly
// bookable service.
func (s *Service) slotIssueService(ctx context.Context, tx *write.Tx, sr *fhir.Resource) (string, error) {
	f, err := s.fitOf(ctx, tx, sr)
	if err != nil {
		return "", err
	}
	for _, p := range f.r.Performer {
		if typ, _, ok := fhir.SplitReference(elem.Str(p.Reference)); ok && typ == "HealthcareService" {
			return canonicalRef(elem.Str(p.Reference)), nil
		}
	}
	if len(f.shortlist) > 0 {
		return f.shortlist[0], nil
	}
	cands, _, err := s.Shortlist(ctx, tx, sr, nil)
	if err != nil {
		return "", err
	}
	for _, c := range cands {
		if len(c.Excluded) == 0 && c.Bookability != directory.IndirectlyBookable {
			return c.Service, nil
		}
	}
	return "", fhir.Errorf(fhir.Unprocessable, "business-rule", "service",
		"no service suits referral %s, so the slot issue has no provider to go to: name the service", f.ubrnLabel()).WithDetails(ErrNotSuitable)
}
