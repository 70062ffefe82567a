package pas

import (
	"context"
	"encoding/json"
	"slices"
	"sort"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

var _ adapters.Operator = (*Adapter)(nil)

// Operations are the instance's FHIR operations: $pas-slot-feed, the
// upload of its PAS's slot feed (the adapter input names the instance).
func (a *Adapter) Operations() []*operation.Operation {
	return []*operation.Operation{{
		Name: FeedOperation, Affects: true, Access: "create", Roles: feedRoles(),
		BodyTypes: []string{FeedCSV, FeedNDJSON}, Definition: conformance.OperationDefinition(FeedOperation), Handle: a.feedOp,
	}}
}

// roleOperator is the operator role's name: the operator view (issue 12)
// adds it to auth.Roles; until then only the provider may upload a feed.
const roleOperator = auth.Role("operator")

// feedRoles are the roles that may upload a feed: the provider (of the
// instance's trust, which feedOp checks) and the operator where the role
// exists.
func feedRoles() []string {
	roles := []string{string(auth.RoleProvider)}
	if slices.Contains(auth.Roles, roleOperator) {
		roles = append(roles, string(roleOperator))
	}
	return roles
}

// feedInputs are the inputs $pas-slot-feed knows.
var feedInputs = []string{"adapter", "mode", "clinic"}

// feedOp is $pas-slot-feed: the body is the feed; the answer Parameters
// (FeedReport) or, for a bad feed, an OperationOutcome with an issue per
// bad row.
func (a *Adapter) feedOp(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	if req.ContentType == "" {
		return nil, fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "", "send the slot feed itself as the body, as %s or %s", FeedCSV, FeedNDJSON).WithDetails("UNSUPPORTED_MEDIA_TYPE")
	}
	for _, p := range req.Params.Parameter {
		if !slices.Contains(feedInputs, p.Name) {
			return nil, fhir.Errorf(fhir.Invalid, "not-supported", p.Name, "$%s takes no input %q (it takes %v)", FeedOperation, p.Name, feedInputs)
		}
	}
	name, _ := req.Params.String(adapters.InstanceInput)
	if name != a.env.Name {
		return nil, fhir.Errorf(fhir.Invalid, "value", "adapter", "$%s needs the adapter input naming the PAS adapter instance (adapter=%s)", FeedOperation, a.env.Name)
	}
	if p, ok := auth.FromContext(ctx); ok && p != nil {
		own := p.Role == auth.RoleProvider && p.Organization != "" && p.Organization == a.env.Principal.Organization
		if !own && !(p.Role == roleOperator && slices.Contains(auth.Roles, roleOperator)) {
			return nil, fhir.Errorf(fhir.Forbidden, "forbidden", "", "the slot feed of %s is uploaded by the provider role of its trust (%s) or an operator", a.env.Name, a.env.Principal.Organization)
		}
	}
	var opt FeedOptions
	opt.Mode, _ = req.Params.String("mode")
	for _, p := range req.Params.All("clinic") {
		if c, ok := p.String(); ok {
			opt.Clinics = append(opt.Clinics, c)
		}
	}
	sort.Strings(opt.Clinics)
	rep, err := a.ApplyFeed(ctx, req.Body, req.ContentType, opt)
	if err != nil {
		return nil, err
	}
	return &operation.Result{Body: rep.Parameters().Encode()}, nil
}

// Parameters renders the report as $pas-slot-feed's answer.
func (r *FeedReport) Parameters() *operation.Parameters {
	p := &operation.Parameters{}
	num := func(name string, n int) operation.Parameter {
		raw, _ := json.Marshal(n)
		return operation.Parameter{Name: name, ValueType: "Integer", Value: raw}
	}
	str := func(name, typ, v string) operation.Parameter {
		raw, _ := json.Marshal(v)
		return operation.Parameter{Name: name, ValueType: typ, Value: raw}
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"rows", r.Rows}, {"created", r.Created}, {"updated", r.Updated}, {"unchanged", r.Unchanged},
		{"skipped", r.Skipped}, {"rejected", r.Rejected}, {"withdrawn", r.Withdrawn}} {
		p.Parameter = append(p.Parameter, num(c.name, c.n))
	}
	for _, is := range r.Issues {
		var parts []operation.Parameter
		if is.Line > 0 {
			parts = append(parts, num("line", is.Line))
		}
		parts = append(parts, str("pas_slot_id", "String", is.PASSlotID))
		if is.Slot != "" {
			raw, _ := json.Marshal(map[string]string{"reference": is.Slot})
			parts = append(parts, operation.Parameter{Name: "slot", ValueType: "Reference", Value: raw})
		}
		parts = append(parts, str("outcome", "Code", is.Outcome), str("reason", "String", is.Reason))
		p.Parameter = append(p.Parameter, operation.Parameter{Name: "issue", Part: parts})
	}
	return p
}
