package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"encoding/json"
	"fmt"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// Advice and guidance: a GP asks a specialist service a question as a
// CommunicationRequest (requester the GP, recipient the HealthcareService,
// subject the patient); the conversation is a thread of Communications
// (basedOn the request, inResponseTo the previous message). The specialist
// may answer, or convert the request into a referral with $convert.

type commRequestView struct {
	Status    string         `json:"status"`
	Subject   r4.Reference   `json:"subject"`
	Requester r4.Reference   `json:"requester"`
	Recipient []r4.Reference `json:"recipient"`
	Priority  string         `json:"priority"`
}

// convertOp is CommunicationRequest/{id}/$convert.
func (s *Service) convertOp() *operation.Operation {
	return &operation.Operation{
		Name: "convert", Types: []string{"CommunicationRequest"}, Instance: true, Affects: true, Access: "update",
		Definition: conformance.OperationDefinition("CommunicationRequest-convert"),
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			priority, _ := req.Params.String("priority")
			if priority == "" {
				priority = "routine"
			}
			if priority != "routine" && priority != "urgent" {
				return nil, fhir.Errorf(fhir.Invalid, "value", "priority", "priority must be routine or urgent, not %q", priority)
			}
			var out *fhir.Resource
			err := s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
				cr, err := tx.Read(ctx, "CommunicationRequest", req.ID)
				if err != nil {
					return err
				}
				var v commRequestView
				if err := decode(cr.JSON, &v, "CommunicationRequest"); err != nil {
					return err
				}
				if v.Status != "active" {
					return fhir.Errorf(fhir.Unprocessable, "business-rule", "CommunicationRequest.status",
						"only an active advice request can become a referral; this one is %s", v.Status).WithDetails("ILLEGAL_TRANSITION")
				}
				service := ""
				for _, r := range v.Recipient {
					if t, _, ok := fhir.SplitReference(elem.Str(r.Reference)); ok && t == "HealthcareService" {
						service = elem.Str(r.Reference)
					}
				}
				if service == "" || elem.Str(v.Subject.Reference) == "" {
					return fhir.Errorf(fhir.Unprocessable, "required", "CommunicationRequest.recipient",
						"an advice request names the patient (subject) and the specialist HealthcareService (recipient) to become a referral")
				}
				hs, err := readRef(ctx, tx, service)
				if err != nil {
					return fhir.Errorf(fhir.Unprocessable, "not-found", "CommunicationRequest.recipient", "%s does not exist", service)
				}
				var hv serviceView
				if err := decode(hs.JSON, &hv, "HealthcareService"); err != nil {
					return err
				}
				p := r4.RequestPriorityRoutine
				if priority == "urgent" {
					p = r4.RequestPriorityUrgent
				}
				sr := r4.ServiceRequest{
					Status:         r4.RequestStatusActive,
					Intent:         r4.RequestIntentOrder,
					Priority:       &p,
					Subject:        r4.Reference{Reference: v.Subject.Reference, Display: v.Subject.Display},
					AuthoredOn:     elem.Opt(tx.Now().Format(fhir.InstantFormat)),
					Performer:      []r4.Reference{{Reference: elem.Opt(hs.Reference()), Display: elem.Opt(hv.Name)}},
					SupportingInfo: []r4.Reference{elem.Ref(cr.Reference())},
					Category:       []r4.CodeableConcept{{Coding: []r4.Coding{{System: elem.Opt(Base + "/CodeSystem/referral-source"), Code: elem.Opt("gp"), Display: elem.Opt("GP referral")}}}},
				}
				if elem.Str(v.Requester.Reference) != "" {
					sr.Requester = &r4.Reference{Reference: v.Requester.Reference, Display: v.Requester.Display}
				}
				if len(hv.Specialty) > 0 {
					sr.PerformerType = terms(hv.Specialty[0])
				}
				if len(hv.Type) > 0 {
					sr.Code = terms(hv.Type[0])
				}
				if out, err = create(ctx, tx, "ServiceRequest", sr); err != nil {
					return err
				}
				obj, err := fhir.ParseObject(cr.JSON)
				if err != nil {
					return err
				}
				obj.Set("status", "completed")
				_, _, err = tx.Put(ctx, "CommunicationRequest", cr.ID, obj, 0)
				return err
			})
			if err != nil {
				return nil, err
			}
			return &operation.Result{Status: 201, Body: out.JSON,
				Header: map[string][]string{"Location": {req.BaseURL + "/ServiceRequest/" + out.ID}}}, nil
		},
	}
}

// communicationRule keeps advice threads whole: a Communication basedOn a
// CommunicationRequest must name one that exists, and a reply
// (inResponseTo) must answer a message of the same thread.
func (s *Service) communicationRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var v struct {
		BasedOn      []r4.Reference `json:"basedOn"`
		InResponseTo []r4.Reference `json:"inResponseTo"`
	}
	if err := decode(c.New.Bytes(), &v, "Communication"); err != nil {
		return err
	}
	var thread []string
	for i, b := range v.BasedOn {
		if t, _, ok := fhir.SplitReference(elem.Str(b.Reference)); !ok || t != "CommunicationRequest" {
			continue
		}
		res, err := readRef(ctx, tx, elem.Str(b.Reference))
		if err != nil {
			return fhir.Errorf(fhir.Unprocessable, "not-found", fmt.Sprintf("Communication.basedOn[%d]", i), "%s does not exist", elem.Str(b.Reference))
		}
		thread = append(thread, res.Reference())
	}
	for i, r := range v.InResponseTo {
		prev, err := readRef(ctx, tx, elem.Str(r.Reference))
		if err != nil {
			return fhir.Errorf(fhir.Unprocessable, "not-found", fmt.Sprintf("Communication.inResponseTo[%d]", i), "%s does not exist", elem.Str(r.Reference))
		}
		var pv struct {
			BasedOn []r4.Reference `json:"basedOn"`
		}
		_ = json.Unmarshal(prev.JSON, &pv)
		for _, t := range thread {
			found := false
			for _, b := range pv.BasedOn {
				found = found || sameRef(elem.Str(b.Reference), t)
			}
			if !found {
				return fhir.Errorf(fhir.Unprocessable, "business-rule", fmt.Sprintf("Communication.inResponseTo[%d]", i),
					"%s belongs to another advice thread than %s", elem.Str(r.Reference), t)
			}
		}
	}
	return nil
}

// questionnaireResponseRule links booking-guidance answers and
// patient-experience feedback to their referral: a QuestionnaireResponse
// basedOn a ServiceRequest must name one that exists and answer an existing
// Questionnaire when it names one by id; patient-experience feedback is
// taken only after an appointment of the referral has taken place.
func (s *Service) questionnaireResponseRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var v struct {
		BasedOn       []r4.Reference `json:"basedOn"`
		Questionnaire string         `json:"questionnaire"`
	}
	if err := decode(c.New.Bytes(), &v, "QuestionnaireResponse"); err != nil {
		return err
	}
	linked := false
	var referrals []string
	for i, b := range v.BasedOn {
		if t, _, ok := fhir.SplitReference(elem.Str(b.Reference)); ok && t == "ServiceRequest" {
			linked = true
			referrals = append(referrals, elem.Str(b.Reference))
			if _, err := readRef(ctx, tx, elem.Str(b.Reference)); err != nil {
				return fhir.Errorf(fhir.Unprocessable, "not-found", fmt.Sprintf("QuestionnaireResponse.basedOn[%d]", i), "referral %s does not exist", elem.Str(b.Reference))
			}
		}
	}
	if linked && v.Questionnaire != "" {
		if t, _, ok := fhir.SplitReference(v.Questionnaire); ok && t == "Questionnaire" {
			if _, err := readRef(ctx, tx, v.Questionnaire); err != nil {
				found, ferr := find(ctx, tx, s.reg, "Questionnaire", "url="+v.Questionnaire)
				if ferr != nil || len(found) == 0 {
					return fhir.Errorf(fhir.Unprocessable, "not-found", "QuestionnaireResponse.questionnaire", "%s does not exist", v.Questionnaire)
				}
			}
		}
	}
	if c.Old == nil {
		return s.experienceCheck(ctx, tx, v.Questionnaire, referrals)
	}
	return nil
}

// terms copies the codings (system, code, display) and text of c, the
// members $convert has always carried over from the HealthcareService.
func terms(c r4.CodeableConcept) *r4.CodeableConcept {
	out := &r4.CodeableConcept{Text: c.Text}
	for _, x := range c.Coding {
		out.Coding = append(out.Coding, r4.Coding{System: x.System, Code: x.Code, Display: x.Display})
	}
	return out
}
