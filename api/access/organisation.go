package access

// Organisation rules: a referrer or provider reaches only what its
// organisation has a relationship with (orgFilter: referrals, appointments,
// patients); an organisation writes only the directory it publishes, and a
// referrer only referrals naming it as requester (orgWriteParam,
// checkOrgWrite, ownedBy).

import (
	"context"
	"slices"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// referralTypes are the referral resources, with the parameters naming
// their sender (a referrer's) and receiver (a provider's).
var referralTypes = map[string]struct{ sender, receiver string }{
	"ServiceRequest": {sender: "requester", receiver: "performer"},
	"Task":           {sender: "requester", receiver: "owner"},
}

// orgBound lists the types a referrer or provider reaches only through
// its organisation's relationships (see reach.of).
var orgBound = map[string]bool{"ServiceRequest": true, "Task": true, "Appointment": true,
	"AppointmentResponse": true, "Patient": true}

const odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// orgFilter is the organisation rule for professionals, as a search
// expression, so that one filter serves searches (with their chains, _has
// and includes), reads, history and writes. A referrer or provider
// reaches:
//   - the referrals (ServiceRequest, Task) its organisation sent (a
//     referrer) or received (a provider: performer or owner, and the
//     ServiceRequest whose Task it owns);
//   - the appointments at its services, locations or schedules (a
//     provider), or based on its referrals or of patients registered with
//     it (a referrer), and the responses to those appointments;
//   - the patients registered with it (Patient.generalPractitioner),
//     managed by it (Patient.managingOrganization), or named on a referral
//     or appointment it reaches. Any other patient only an exact trace
//     finds (isTrace).
//
// Other roles (call centre, none) are not restricted by organisation, and
// other types not at all (nil).
func (g *Guard) orgFilter(p *auth.Principal, typ string) search.Expr {
	if (p.Role != auth.RoleReferrer && p.Role != auth.RoleProvider) || !orgBound[typ] {
		return nil
	}
	if p.Organization == "" {
		return search.IDIn{} // matches nothing
	}
	return reach{role: p.Role, ods: p.Organization}.of(typ)
}

// reach builds the organisation rule of one professional: role at the
// organisation with ODS code ods.
type reach struct {
	role auth.Role
	ods  string
}

func chain(param, target string, filter search.Expr) search.Expr {
	return search.Chain{Param: param, Target: target, Filter: filter}
}

// org matches the organisation itself (an Organization with its ODS code).
func (r reach) org() search.Expr {
	return search.TokenIn{Param: "identifier", System: odsSystem, HasSystem: true, Codes: []string{r.ods}}
}

// owned matches the directory resources of typ that belong to the
// organisation, along orgLinks.
func (r reach) owned(typ string) search.Expr {
	switch typ {
	case "Organization":
		return r.org()
	case "HealthcareService", "PractitionerRole", "Location":
		return chain(orgLinks[typ], "Organization", r.org())
	case "Schedule":
		return search.Or{
			chain("actor", "HealthcareService", r.owned("HealthcareService")),
			chain("actor", "PractitionerRole", r.owned("PractitionerRole")),
			chain("actor", "Location", r.owned("Location")),
		}
	case "Slot":
		return chain("schedule", "Schedule", r.owned("Schedule"))
	}
	return search.IDIn{}
}

// refs matches resources whose param names the organisation, one of its
// services or one of its practitioner roles.
func (r reach) refs(param string) search.Expr {
	return search.Or{
		chain(param, "Organization", r.org()),
		chain(param, "HealthcareService", r.owned("HealthcareService")),
		chain(param, "PractitionerRole", r.owned("PractitionerRole")),
	}
}

// registered matches the patients registered with the organisation.
func (r reach) registered() search.Expr {
	return search.Or{
		chain("general-practitioner", "Organization", r.org()),
		chain("general-practitioner", "PractitionerRole", r.owned("PractitionerRole")),
	}
}

// of is the organisation's reach into typ (one of orgBound).
func (r reach) of(typ string) search.Expr {
	switch typ {
	case "ServiceRequest", "Task":
		if r.role == auth.RoleReferrer {
			return r.refs(referralTypes[typ].sender)
		}
		if typ == "ServiceRequest" {
			// Received: named its performer, or given its workflow Task
			// (a slot issue raised for a referral that named no service
			// goes to the service the patient wanted).
			return search.Or{r.refs(referralTypes[typ].receiver),
				search.Has{Type: "Task", Param: "focus", Filter: r.refs(referralTypes["Task"].receiver)}}
		}
		return r.refs(referralTypes[typ].receiver)
	case "Appointment":
		if r.role == auth.RoleReferrer {
			return search.Or{
				chain("based-on", "ServiceRequest", r.of("ServiceRequest")),
				chain("actor", "Patient", r.registered()),
			}
		}
		return search.Or{
			chain("actor", "HealthcareService", r.owned("HealthcareService")),
			chain("actor", "Location", r.owned("Location")),
			chain("actor", "PractitionerRole", r.owned("PractitionerRole")),
			chain("slot", "Slot", r.owned("Slot")),
		}
	case "AppointmentResponse":
		return chain("appointment", "Appointment", r.of("Appointment"))
	case "Patient":
		return search.Or{
			r.registered(),
			chain("organization", "Organization", r.org()),
			search.Has{Type: "ServiceRequest", Param: "subject", Filter: r.of("ServiceRequest")},
			search.Has{Type: "Appointment", Param: "actor", Filter: r.of("Appointment")},
		}
	}
	return search.IDIn{}
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
func (g *Guard) checkOrgWrite(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change) error {
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
		owned, err := g.ownedBy(ctx, tx, c.Type, c.Old.JSON, param, p.Organization)
		if err != nil {
			return err
		}
		if !owned {
			return forbidden("%s/%s does not %s organisation %s", c.Type, c.ID, what, p.Organization)
		}
	}
	if c.New != nil {
		owned, err := g.ownedBy(ctx, tx, c.Type, c.New.Bytes(), param, p.Organization)
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
func (g *Guard) ownedBy(ctx context.Context, rd store.Reader, typ string, raw []byte, param, ods string) (bool, error) {
	orgs, err := g.orgsOf(ctx, rd, typ, raw, param, 0)
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
func (g *Guard) orgsOf(ctx context.Context, rd store.Reader, typ string, raw []byte, param string, hops int) ([][]string, error) {
	entries, err := g.cfg.Search.Extract(typ, raw)
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
		orgs, err := g.orgsOf(ctx, rd, e.RefType, res.JSON, next, hops+1)
		if err != nil {
			return nil, err
		}
		out = append(out, orgs...)
	}
	return out, nil
}
