package api

// Organisation rules: a referrer or provider reaches the referrals its
// organisation sent or received (orgFilter); an organisation writes only
// the directory it publishes, and a referrer only referrals naming it as
// requester (orgWriteParam, checkOrgWrite, ownedBy).

import (
	"context"
	"net/url"
	"slices"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/repo"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// referralTypes are restricted by organisation for referrers and providers.
var referralTypes = map[string]struct{ sender, receiver string }{
	"ServiceRequest": {sender: "requester", receiver: "performer"},
	"Task":           {sender: "requester", receiver: "owner"},
}

const odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// orgFilter is the organisation rule for professionals: a referrer reaches
// the referrals (ServiceRequest, Task) its organisation sent, a provider
// those sent to its organisation or its services. Other roles (call centre,
// none) are not restricted by organisation.
func (s *Server) orgFilter(p *auth.Principal, typ string) search.Expr {
	params, ok := referralTypes[typ]
	if !ok {
		return nil
	}
	var param string
	switch p.Role {
	case auth.RoleReferrer:
		param = params.sender
	case auth.RoleProvider:
		param = params.receiver
	default:
		return nil
	}
	if p.Organization == "" {
		return search.IDIn{} // matches nothing
	}
	ods := odsSystem + "|" + p.Organization
	var or search.Or
	for _, chain := range []string{
		param + ":Organization.identifier",
		param + ":HealthcareService.organization.identifier",
		param + ":PractitionerRole.organization.identifier",
	} {
		q, err := s.search.Parse(typ, url.Values{chain: {ods}}, search.ParseOptions{})
		if err == nil && len(q.Filter) == 1 {
			or = append(or, q.Filter[0])
		}
	}
	if len(or) == 0 {
		return search.IDIn{}
	}
	return or
}

// Organisations own what they publish.
//
// orgLinks says, per resource type, which search parameter leads from a
// resource to the organisation it belongs to; an Organization is its own
// (through its ODS identifiers). The chain ends at an Organization: a Slot
// belongs to its Schedule's, a Schedule to its actors' (HealthcareService
// providedBy, PractitionerRole organization, Location managingOrganization).
var orgLinks = map[string]string{
	"HealthcareService": "organization",
	"PractitionerRole":  "organization",
	"Location":          "organization",
	"Schedule":          "actor",
	"Slot":              "schedule",
}

// maxOrgHops bounds the chain from a resource to its organisation (Slot →
// Schedule → HealthcareService → Organization is three).
const maxOrgHops = 4

// orgWriteParam names the parameter that must lead to the caller's own
// organisation for a write of typ by a professional with role; ok is false
// when the organisation does not govern such writes.
//
//   - The directory an organisation publishes (Organization,
//     HealthcareService, PractitionerRole, Location, Schedule, Slot) is
//     written only by that organisation: any caller with a role (provider,
//     referrer, call centre) must own the resource before and after the
//     write. Callers without a role (system integrations) are not governed.
//   - A referrer's referrals (ServiceRequest, Task) name its own
//     organisation as requester.
func orgWriteParam(role auth.Role, typ string) (param string, ok bool) {
	if role == "" || role == auth.RolePatient {
		return "", false
	}
	if typ == "Organization" {
		return "", true
	}
	if p, ok := orgLinks[typ]; ok {
		return p, true
	}
	if r, ok := referralTypes[typ]; ok && role == auth.RoleReferrer {
		return r.sender, true
	}
	return "", false
}

// checkOrgWrite applies the organisation rules of orgWriteParam to one
// direct write: the current version (update, delete) and the proposed one
// (create, update) must both belong to the caller's organisation.
func (s *Server) checkOrgWrite(ctx context.Context, tx *repo.Tx, p *auth.Principal, c *repo.Change) error {
	param, ok := orgWriteParam(p.Role, c.Type)
	if !ok {
		return nil
	}
	if p.Organization == "" {
		return forbidden("a %s token without an organisation (org claim) cannot write %s resources", p.Role, c.Type)
	}
	what := "belong to"
	if _, referral := referralTypes[c.Type]; referral {
		what = "name as requester"
	}
	if c.Old != nil {
		owned, err := s.ownedBy(ctx, tx, c.Type, c.Old.JSON, param, p.Organization)
		if err != nil {
			return err
		}
		if !owned {
			return forbidden("%s/%s does not %s organisation %s", c.Type, c.ID, what, p.Organization)
		}
	}
	if c.New != nil {
		owned, err := s.ownedBy(ctx, tx, c.Type, c.New.Bytes(), param, p.Organization)
		if err != nil {
			return err
		}
		if !owned {
			return forbidden("the %s written does not %s organisation %s (%s)", c.Type, what, p.Organization, ownershipPath(c.Type, param))
		}
	}
	return nil
}

// ownershipPath says in words how a resource of typ is tied to its
// organisation, for error messages.
func ownershipPath(typ, param string) string {
	if typ == "Organization" {
		return "Organization.identifier with system " + odsSystem
	}
	return typ + " " + param + " → … → Organization.identifier"
}

// ownedBy reports whether the resource typ with body raw belongs to
// organisation ods only: following param (and orgLinks beyond it) reaches
// at least one Organization, and every Organization reached carries ods
// as an ODS identifier. A link to anything without an organisation (a
// Practitioner, a missing resource) leads nowhere and counts for nothing.
func (s *Server) ownedBy(ctx context.Context, rd store.Reader, typ string, raw []byte, param, ods string) (bool, error) {
	orgs, err := s.orgsOf(ctx, rd, typ, raw, param, 0)
	if err != nil || len(orgs) == 0 {
		return false, err
	}
	for _, codes := range orgs {
		if !slices.Contains(codes, ods) {
			return false, nil
		}
	}
	return true, nil
}

// orgsOf returns the ODS codes of each Organization the resource reaches
// through param: its own when typ is Organization.
func (s *Server) orgsOf(ctx context.Context, rd store.Reader, typ string, raw []byte, param string, hops int) ([][]string, error) {
	entries, err := s.search.Extract(typ, raw)
	if err != nil {
		return nil, err
	}
	if typ == "Organization" {
		var codes []string
		for _, e := range entries {
			if e.Param == "identifier" && e.Type == search.Token && e.System == odsSystem {
				codes = append(codes, e.Value)
			}
		}
		return [][]string{codes}, nil
	}
	if hops >= maxOrgHops {
		return nil, nil
	}
	var out [][]string
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Param != param || e.Type != search.Reference || e.RefType == "" || seen[e.RefType+"/"+e.RefID] {
			continue
		}
		seen[e.RefType+"/"+e.RefID] = true
		next, ok := orgLinks[e.RefType]
		if !ok && e.RefType != "Organization" {
			continue // a Practitioner, a Device…: no organisation
		}
		res, err := rd.Read(ctx, e.RefType, e.RefID)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			continue
		} else if err != nil {
			return nil, err
		}
		orgs, err := s.orgsOf(ctx, rd, e.RefType, res.JSON, next, hops+1)
		if err != nil {
			return nil, err
		}
		out = append(out, orgs...)
	}
	return out, nil
}
