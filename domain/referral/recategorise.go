package referral

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// Re-categorising a referral: its specialty (performerType) or service
// type (code) changes only through ServiceRequest/{id}/$recategorise,
// which the provider that owns the referral's Task or the referrer invokes;
// it moves the workflow to a service suitable for the new category (or
// back to the referrer), cancels the bookings made under the old one,
// clears the saved shortlist and writes a Provenance. A plain write that
// changes either element is refused (categoryRule).

// Signpost error codes of re-categorisation.
const (
	// ErrUseRecategorise: a PUT or PATCH changed an existing referral's
	// performerType or code.
	ErrUseRecategorise = "USE_RECATEGORISE"
)

// ActivitySystem codes the activities of referral Provenance records that
// are not workflow states (those use StateSystem).
const ActivitySystem = Base + "/CodeSystem/referral-activity"

// Recategorised is the Provenance activity of a re-categorisation.
const Recategorised = "recategorised"

// categoryElements are the elements that make a referral's category.
var categoryElements = []string{"performerType", "code"}

// categoryRule refuses a client's write that changes the performerType or
// code of an existing referral: that is $recategorise's job, which keeps
// the workflow, the bookings and the shortlist in step with the category.
func (s *Service) categoryRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.Old == nil || c.New == nil || isOwn(c) {
		return nil
	}
	old, err := fhir.ParseObject(c.Old.JSON)
	if err != nil {
		return err
	}
	var issues []fhir.Issue
	for _, k := range categoryElements {
		if !sameJSON(old.Get(k), c.New.Get(k)) {
			issues = append(issues, fhir.Issue{Code: "business-rule", Details: ErrUseRecategorise, Expression: []string{"ServiceRequest." + k},
				Diagnostics: fmt.Sprintf("ServiceRequest.%s of an existing referral changes only through ServiceRequest/%s/$recategorise, which moves its workflow to a suitable service", k, c.ID)})
		}
	}
	if len(issues) > 0 {
		return &fhir.Error{Kind: fhir.Unprocessable, Issues: issues}
	}
	return nil
}

// Suitability reports why the HealthcareService hs is not suitable for a
// referral whose JSON is srJSON (its new category), as $shortlist and a
// booking for a referral judge suitability (judge, see fit.go): nil when
// it is suitable. A re-categorised referral may go to an indirectly
// bookable service (whose provider then books it), and its old shortlist
// and redirection no longer count.
func (s *Service) Suitability(ctx context.Context, rd store.Reader, srJSON []byte, hs *fhir.Resource) ([]string, error) {
	var r requestView
	if err := decode(srJSON, &r, "ServiceRequest"); err != nil {
		return nil, err
	}
	pc, err := s.patientContext(ctx, rd, elem.Str(r.Subject.Reference), s.cfg.Now().In(s.cfg.Location))
	if err != nil {
		return nil, err
	}
	var v serviceView
	if err := decode(hs.JSON, &v, "HealthcareService"); err != nil {
		return nil, err
	}
	c := Candidate{Service: hs.Reference(), Name: v.Name}
	judge(&c, &r, &v, &pc)
	return c.Excluded, nil
}

// recategoriseOp is ServiceRequest/{id}/$recategorise.
func (s *Service) recategoriseOp() *operation.Operation {
	return &operation.Operation{
		Name: "recategorise", Types: []string{"ServiceRequest"}, Instance: true, Affects: true, Access: "update",
		Definition: conformance.OperationDefinition("ServiceRequest-recategorise"),
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			in, err := readRecategorise(req.Params)
			if err != nil {
				return nil, err
			}
			var sr, task *fhir.Resource
			err = s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
				sr, task, err = s.recategorise(ctx, tx, req.ID, in)
				return err
			})
			if err != nil {
				if e := fhir.AsError(err); e.Kind != fhir.Other {
					e.Op = "$recategorise ServiceRequest/" + req.ID
				}
				return nil, err
			}
			out := &operation.Parameters{Parameter: []operation.Parameter{
				{Name: "referral", Resource: sr.JSON},
				{Name: "task", Resource: task.JSON},
			}}
			return &operation.Result{Body: out.Encode()}, nil
		},
	}
}

// recategoriseInput is what $recategorise was asked.
type recategoriseInput struct {
	category map[string]json.RawMessage // "performerType", "code" → the new CodeableConcept
	service  string                     // "" sends the referral back to the referrer
	reason   string
}

var categoryParams = map[string]string{"performer-type": "performerType", "code": "code"}

func readRecategorise(p *operation.Parameters) (*recategoriseInput, error) {
	in := &recategoriseInput{category: map[string]json.RawMessage{}}
	for name, element := range categoryParams {
		all := p.All(name)
		if len(all) == 0 {
			continue
		}
		x := all[0]
		var cc r4.CodeableConcept
		if len(all) > 1 || x.ValueType != "CodeableConcept" || json.Unmarshal(x.Value, &cc) != nil {
			return nil, fhir.Errorf(fhir.Invalid, "value", name, "%s must be one valueCodeableConcept", name)
		}
		if len(cc.Coding) == 0 || slices.ContainsFunc(cc.Coding, func(c r4.Coding) bool { return elem.Str(c.System) == "" || elem.Str(c.Code) == "" }) {
			return nil, fhir.Errorf(fhir.Invalid, "value", name, "%s needs codings with a system and a code", name)
		}
		in.category[element] = x.Value
	}
	if len(in.category) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "required", "", "$recategorise needs the new performer-type or code (a CodeableConcept)")
	}
	in.service, _ = p.String("service")
	if in.service != "" {
		if typ, _, ok := fhir.SplitReference(in.service); !ok || typ != "HealthcareService" {
			return nil, fhir.Errorf(fhir.Invalid, "value", "service", "service must reference a HealthcareService, not %q", in.service)
		}
	}
	in.reason, _ = p.String("reason")
	return in, nil
}

// recategorise does $recategorise inside tx and returns the referral and
// its Task as they are afterwards.
func (s *Service) recategorise(ctx context.Context, tx *write.Tx, id string, in *recategoriseInput) (*fhir.Resource, *fhir.Resource, error) {
	sr, err := tx.Read(ctx, "ServiceRequest", id)
	if err != nil {
		return nil, nil, err
	}
	var r requestView
	if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
		return nil, nil, err
	}
	task, tv, err := s.referralTaskView(ctx, tx, sr.Reference())
	if err != nil {
		return nil, nil, err
	}
	if err := s.mayRecategorise(ctx, tx, &r, &tv); err != nil {
		return nil, nil, err
	}
	cur := tv.state()
	switch cur {
	case Accepted, Cancelled, Completed:
		return nil, nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.businessStatus",
			"referral %s is %s: it cannot be re-categorised", sr.Reference(), cur).WithDetails("ILLEGAL_TRANSITION")
	}
	obj, err := fhir.ParseObject(sr.JSON)
	if err != nil {
		return nil, nil, err
	}
	changed := false
	for _, k := range categoryElements {
		if v, ok := in.category[k]; ok {
			changed = changed || !sameJSON(obj.Get(k), v)
			obj.Set(k, v)
		}
	}
	if !changed {
		return nil, nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "",
			"%s already has this category: to send it to another service use $redirect", sr.Reference())
	}
	owner, to := elem.Str(r.Requester.Reference), AwaitingBooking
	if in.service != "" {
		hs, err := readRef(ctx, tx, in.service)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return nil, nil, fhir.Errorf(fhir.Unprocessable, "not-found", "service", "%s does not exist", in.service)
		} else if err != nil {
			return nil, nil, err
		}
		why, err := s.Suitability(ctx, tx, obj.Bytes(), hs)
		if err != nil {
			return nil, nil, err
		}
		if len(why) > 0 {
			return nil, nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "service",
				"%s is not suitable for the re-categorised referral: %s", hs.Reference(), strings.Join(why, "; ")).WithDetails(ErrNotSuitable)
		}
		owner = hs.Reference()
		obj.Set("performer", []r4.Reference{elem.Ref(owner)})
		if cur == Redirected || CanMove(cur, Redirected) {
			to = Redirected
		}
	} else {
		obj.Delete("performer")
		if cur != AwaitingBooking && !CanMove(cur, AwaitingBooking) {
			to = Rejected // back on the referrer's list of referrals to act on
		}
	}
	// The saved shortlist was chosen for the old category.
	if err := obj.SetExtensions(ShortlistExtension); err != nil {
		return nil, nil, err
	}
	if _, _, err := tx.PutWith(ctx, "ServiceRequest", sr.ID, obj, 0, own); err != nil {
		return nil, nil, err
	}
	why := "re-categorised as " + categoryLabel(in.category)
	if in.service != "" {
		why += " for " + owner
	}
	if in.reason != "" {
		why += ": " + in.reason
	}
	// Move the Task before cancelling the bookings, so that their
	// cancellation does not move it again.
	task, err = s.moveTask(ctx, tx, task, to, why, func(o *fhir.Object) {
		if owner != "" {
			o.Set("owner", elem.Ref(owner))
		} else {
			o.Delete("owner")
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.cancelAppointments(ctx, tx, sr.Reference(), "referral "+why); err != nil {
		return nil, nil, err
	}
	if sr, err = tx.Read(ctx, "ServiceRequest", sr.ID); err != nil { // the Task's move may have changed its status
		return nil, nil, err
	}
	if task, err = tx.Read(ctx, "Task", task.ID); err != nil {
		return nil, nil, err
	}
	prov := r4.Provenance{
		Target:   []r4.Reference{elem.Ref(versionRef(sr)), elem.Ref(versionRef(task))},
		Recorded: tx.Now().Format(fhir.InstantFormat),
		Activity: &r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(ActivitySystem), Code: elem.Opt(Recategorised), Display: elem.Opt("Re-categorised")}}},
		Agent:    provenanceAgents(ctx),
		Reason:   []r4.CodeableConcept{{Text: elem.Opt(why)}},
	}
	if owner != "" {
		prov.Entity = []r4.ProvenanceEntity{{Role: r4.ProvenanceEntityRoleSource, What: elem.Ref(owner)}}
	}
	if _, err := create(recordKeeper(ctx), tx, "Provenance", prov); err != nil {
		return nil, nil, err
	}
	return sr, task, nil
}

// mayRecategorise allows the provider that owns the referral's Task and
// the referrer (its requester's organisation), and callers that act for no
// organisation (the server itself, an open server, system integrations
// without a role); it refuses patients, call centres and everyone else.
// The api layer has already hidden referrals the caller cannot reach.
func (s *Service) mayRecategorise(ctx context.Context, rd store.Reader, r *requestView, tv *taskView) error {
	p, ok := auth.FromContext(ctx)
	if !ok || write.IsServer(ctx) {
		return nil
	}
	deny := func(format string, args ...any) error {
		e := fhir.Errorf(fhir.Forbidden, "forbidden", "", format, args...).WithDetails("ACCESS_DENIED")
		e.Op = "authorise"
		return e
	}
	var via string
	switch {
	case p.HasPatientContext() || p.Role == auth.RolePatient:
		return deny("a referral is re-categorised by its referrer or the provider that holds it, not by the patient")
	case p.Role == auth.RoleReferrer:
		via = elem.Str(r.Requester.Reference)
	case p.Role == auth.RoleProvider:
		via = elem.Str(tv.Owner.Reference)
	case p.Role == "":
		return nil
	default:
		return deny("a %s cannot re-categorise a referral: its referrer or the provider that holds it can", p.Role)
	}
	if p.Organization != "" && via != "" {
		codes, err := odsCodes(ctx, rd, via, 0)
		if err != nil {
			return err
		}
		if slices.Contains(codes, p.Organization) {
			return nil
		}
	}
	if p.Role == auth.RoleReferrer {
		return deny("only the referrer (the requester's organisation) or the provider that holds the referral can re-categorise it")
	}
	return deny("only the provider that owns the referral's Task or the referrer can re-categorise it")
}

// odsCodes returns the ODS codes of the organisation ref belongs to: an
// Organization's own, a HealthcareService's providedBy, a PractitionerRole's
// organization, a Location's managingOrganization (the links of
// api/organisation.go).
func odsCodes(ctx context.Context, rd store.Reader, ref string, hops int) ([]string, error) {
	if hops > 3 {
		return nil, nil
	}
	typ, _, ok := fhir.SplitReference(ref)
	if !ok {
		return nil, nil
	}
	link := map[string]string{"HealthcareService": "providedBy", "PractitionerRole": "organization", "Location": "managingOrganization"}[typ]
	if typ != "Organization" && link == "" {
		return nil, nil
	}
	res, err := readRef(ctx, rd, ref)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if typ == "Organization" {
		var v struct {
			Identifier []r4.Identifier `json:"identifier"`
		}
		if err := json.Unmarshal(res.JSON, &v); err != nil {
			return nil, nil
		}
		var out []string
		for _, id := range v.Identifier {
			if elem.Str(id.System) == ODSSystem {
				out = append(out, elem.Str(id.Value))
			}
		}
		return out, nil
	}
	var linked map[string]json.RawMessage
	_ = json.Unmarshal(res.JSON, &linked)
	var next r4.Reference
	if json.Unmarshal(linked[link], &next) != nil || elem.Str(next.Reference) == "" {
		return nil, nil
	}
	return odsCodes(ctx, rd, elem.Str(next.Reference), hops+1)
}

func versionRef(r *fhir.Resource) string {
	return r.Reference() + "/_history/" + strconv.FormatInt(r.Version, 10)
}

// categoryLabel names the new category for people: the new specialty's
// display (or code), else the new service type's.
func categoryLabel(category map[string]json.RawMessage) string {
	for _, k := range categoryElements {
		var c r4.CodeableConcept
		if json.Unmarshal(category[k], &c) != nil {
			continue
		}
		for _, cd := range c.Coding {
			return label(cd)
		}
	}
	return "uncategorised"
}

// sameJSON compares two JSON values by meaning (member order and spacing
// aside); absent equals absent only.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
