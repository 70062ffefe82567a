package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/repo"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Security configures authentication, authorisation, audit and the
// hardening middleware. The zero value is not usable: set Open for a server
// without authorisation (tests and local experiments only), or a Verifier.
type Security struct {
	// Open turns authorisation and audit off: every request is served as
	// if made by the server itself. Tests and local experiments only.
	Open bool
	// Verifier checks bearer tokens (auth.Verifier).
	Verifier TokenVerifier
	// SmartConfiguration is served at /fhir/.well-known/smart-configuration.
	SmartConfiguration []byte
	// AuthServer, when not nil, is Signpost's own token issuer, mounted at
	// AuthPath without authentication: the embedded development
	// authorisation server ("/auth"), or, with an external issuer, the
	// issuer of UBRN patients' tokens ("/auth/ubrn").
	AuthServer http.Handler
	AuthPath   string
	// CORSOrigins are the browser origins allowed to call the API ("*" for
	// any); none means no CORS headers.
	CORSOrigins []string
	// HSTS sends Strict-Transport-Security (the server speaks TLS).
	HSTS bool
	// RateLimit is the sustained requests per second allowed per client
	// (per client_id, or per remote address before authentication); 0 is
	// no limit. RateBurst is the bucket size; default max(1, 2×RateLimit).
	RateLimit float64
	RateBurst int
	// AuditFlush is how long read and search audits may wait in memory
	// before being stored; default 500 ms.
	AuditFlush time.Duration
}

// TokenVerifier checks a raw bearer token and returns its principal; every
// failure is a *fhir.Error of kind fhir.Unauthorized (auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*auth.Principal, error)
}

// directoryTypes stay readable and searchable with patient-level scopes:
// the directory of services and free slots is for everyone.
var directoryTypes = []string{"HealthcareService", "Location", "Organization", "Practitioner",
	"PractitionerRole", "Schedule", "Slot", "Endpoint", "Questionnaire"}

// referralTypes are restricted by organisation for referrers and providers.
var referralTypes = map[string]struct{ sender, receiver string }{
	"ServiceRequest": {sender: "requester", receiver: "performer"},
	"Task":           {sender: "requester", receiver: "owner"},
}

const odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"
const nhsNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"

// unresolvedPatient is the compartment of a patient-context token whose NHS
// number names no Patient: not a valid id, so it matches nothing.
const unresolvedPatient = "#unresolved"

// compartmentParams returns, per resource type, the search parameters that
// put a resource in a Patient's compartment (the official
// CompartmentDefinition).
var compartmentParams = sync.OnceValue(func() map[string][]string {
	var def struct {
		Resource []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	_ = json.Unmarshal(conformance.PatientCompartment(), &def)
	out := map[string][]string{}
	for _, r := range def.Resource {
		if len(r.Param) > 0 {
			out[r.Code] = r.Param
		}
	}
	return out
})

// inCompartmentType reports whether resources of typ can belong to a patient
// compartment.
func inCompartmentType(typ string) bool {
	return typ == "Patient" || len(compartmentParams()[typ]) > 0
}

// operationKey marks a request context as inside an authorised operation.
type operationKey struct{}

// serverContext marks writes the server makes on its own account (audit
// records): the authorisation rule lets them through.
func serverContext(ctx context.Context) context.Context { return repo.AsServer(ctx) }

func isServerWrite(ctx context.Context) bool { return repo.IsServer(ctx) }

// withOperation marks ctx as inside an authorised operation.
func withOperation(ctx context.Context, op *operation.Operation) context.Context {
	return context.WithValue(ctx, operationKey{}, op)
}

func operationOf(ctx context.Context) *operation.Operation {
	op, _ := ctx.Value(operationKey{}).(*operation.Operation)
	return op
}

// principal returns the caller of the request in ctx; nil when the server
// is open or the work is the server's own.
func (s *Server) principal(ctx context.Context) *auth.Principal {
	if s.cfg.Security.Open || isServerWrite(ctx) {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		// Authenticated routes always carry a principal; a missing one is
		// a bug, answered with nothing rather than everything.
		return &auth.Principal{}
	}
	return p
}

func forbidden(format string, args ...any) *fhir.Error {
	e := fhir.Errorf(fhir.Forbidden, "forbidden", "", format, args...).WithDetails("ACCESS_DENIED")
	e.Op = "authorise"
	return e
}

func hidden(typ, id string) *fhir.Error {
	return fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
}

// restriction is how far a principal reaches into one resource type for
// one interaction: nothing (an error), everything (filter nil), or the
// resources matching filter. patient is the compartment's patient when the
// reach is through patient-level scopes.
type restriction struct {
	filter  search.Expr
	patient string
	// granted is the part of filter the scopes make (compartment and
	// granular queries, without the organisation rule); queried says a
	// granular query is part of it.
	granted search.Expr
	queried bool
	// compartmentOnly: filter is exactly the patient compartment, which
	// can be checked on a resource in memory.
	compartmentOnly bool
}

// restrict works out the principal's restriction for in on typ, or a
// Forbidden error.
func (s *Server) restrict(ctx context.Context, p *auth.Principal, typ string, in auth.Interaction) (*restriction, error) {
	d := p.Decide(typ, in)
	if !d.Allowed {
		return nil, forbidden("the access token does not allow %s on %s", in, typ)
	}
	r := &restriction{}
	if !d.Unrestricted {
		var alts search.Or
		reach := false
		for _, g := range d.Grants {
			var parts []search.Expr
			if g.Level == auth.LevelPatient {
				r.patient = patientOf(p)
				switch {
				case slices.Contains(directoryTypes, typ) && in&(auth.Read|auth.Search) == in:
					// the directory stays visible
				case !inCompartmentType(typ):
					continue // nothing of this type is in a compartment
				default:
					parts = append(parts, compartmentFilter(typ, r.patient))
				}
			}
			if g.Query != nil {
				q, err := s.search.Parse(typ, g.Query, search.ParseOptions{Strict: true})
				if err != nil {
					continue // a scope query this server cannot apply grants nothing
				}
				parts = append(parts, q.Filter...)
			}
			if len(parts) == 0 {
				reach, alts = true, nil
				break
			}
			alts = append(alts, and(parts...))
		}
		switch {
		case reach:
		case len(alts) == 0:
			return nil, forbidden("the access token's patient context does not reach %s resources", typ)
		case len(alts) == 1:
			r.filter = alts[0]
			r.compartmentOnly = len(d.Grants) == 1 && d.Grants[0].Query == nil && d.Grants[0].Level == auth.LevelPatient
		default:
			r.filter = alts
		}
		r.queried = slices.ContainsFunc(d.Grants, func(g auth.Grant) bool { return g.Query != nil })
		r.granted = r.filter
	}
	if org := s.orgFilter(p, typ); org != nil {
		r.filter = and(nonNil(r.filter, org)...)
		r.compartmentOnly = false
	}
	return r, nil
}

func nonNil(xs ...search.Expr) []search.Expr {
	var out []search.Expr
	for _, x := range xs {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

// and is the conjunction of xs, written with Or and Not (De Morgan) as the
// expression tree has no And.
func and(xs ...search.Expr) search.Expr {
	if len(xs) == 1 {
		return xs[0]
	}
	var or search.Or
	for _, x := range xs {
		or = append(or, search.Not{Expr: x})
	}
	return search.Not{Expr: or}
}

func patientOf(p *auth.Principal) string {
	if p.Patient != "" {
		return p.Patient
	}
	return unresolvedPatient
}

// compartmentFilter matches typ's resources in patient's compartment.
func compartmentFilter(typ, patient string) search.Expr {
	if typ == "Patient" {
		return search.IDIn{IDs: []string{patient}}
	}
	var or search.Or
	for _, param := range compartmentParams()[typ] {
		or = append(or, search.RefIn{Param: param, Refs: []search.Ref{{Type: "Patient", ID: patient}}})
	}
	if len(or) == 1 {
		return or[0]
	}
	return or
}

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

// authorizeType checks that the caller may perform in on typ at all.
func (s *Server) authorizeType(ctx context.Context, typ string, in auth.Interaction) error {
	p := s.principal(ctx)
	if p == nil {
		return nil
	}
	noteAccess(ctx, typ, "", "")
	_, err := s.restrict(ctx, p, typ, in)
	return s.denied(ctx, err)
}

// authorizeInstance checks that the caller may perform in on typ/id: the
// interaction must be granted (else 403) and, when the caller's reach is
// restricted, the resource's current version must be within it (else 404,
// so nothing is said about resources the caller cannot see).
func (s *Server) authorizeInstance(ctx context.Context, rd store.Reader, typ, id string, in auth.Interaction) error {
	p := s.principal(ctx)
	if p == nil {
		return nil
	}
	noteAccess(ctx, typ, id, "")
	r, err := s.restrict(ctx, p, typ, in)
	if err != nil {
		return s.denied(ctx, err)
	}
	if r.filter == nil {
		return nil
	}
	if r.compartmentOnly {
		res, err := rd.Read(ctx, typ, id)
		if err == nil && s.inCompartment(typ, id, res.JSON, r.patient) {
			return nil
		}
		if k := fhir.KindOf(err); err != nil && k != fhir.NotFound && k != fhir.Gone {
			return err
		}
		return s.denied(ctx, hidden(typ, id))
	}
	page, err := rd.Search(ctx, &search.Query{Type: typ, Filter: []search.Expr{r.filter, search.IDIn{IDs: []string{id}}}, Count: 1})
	if err != nil {
		return err
	}
	if len(page.Resources) == 0 {
		return s.denied(ctx, hidden(typ, id))
	}
	return nil
}

// authorizeHistory checks a history request: an instance's needs read on
// it, a type's or the system's search on the type (entries are then
// filtered with visibleOnly).
func (s *Server) authorizeHistory(ctx context.Context, typ, id string) error {
	switch {
	case id != "":
		return s.authorizeInstance(ctx, s.store, typ, id, auth.Read)
	case typ != "":
		return s.authorizeType(ctx, typ, auth.Search)
	}
	return nil
}

// denied records a refused access for the audit trail and returns err.
func (s *Server) denied(ctx context.Context, err error) error {
	if err != nil {
		if info := infoOf(ctx); info != nil {
			info.denied = true
		}
	}
	return err
}

// restrictQuery confines a parsed search to what the caller may see: the
// type's restriction is added to the filter, chained and _has searches
// into types the caller cannot search are refused and confined likewise.
// _include and _revinclude are filtered afterwards (visibleOnly).
func (s *Server) restrictQuery(ctx context.Context, q *search.Query) error {
	if err := auditSearchable(q); err != nil {
		return err
	}
	p := s.principal(ctx)
	if p == nil {
		return nil
	}
	noteAccess(ctx, q.Type, "", q.Canonical())
	types := []string{q.Type}
	if q.Type == "" {
		types = q.Types
		if len(types) == 0 {
			types = s.cfg.Writable
		}
	}
	for _, typ := range types {
		r, err := s.restrict(ctx, p, typ, auth.Search)
		if err != nil {
			return s.denied(ctx, err)
		}
		if r.filter != nil {
			if q.Type == "" {
				return s.denied(ctx, forbidden("a search across types needs unrestricted access to every type searched; search %s on its own", typ))
			}
			q.Filter = append(q.Filter, r.filter)
		}
	}
	for i, x := range q.Filter {
		y, err := s.confine(ctx, p, x)
		if err != nil {
			return s.denied(ctx, err)
		}
		q.Filter[i] = y
	}
	return nil
}

// confine rewrites chains and _has inside x so that they only look at
// resources the caller may search.
func (s *Server) confine(ctx context.Context, p *auth.Principal, x search.Expr) (search.Expr, error) {
	switch e := x.(type) {
	case search.Or:
		out := make(search.Or, len(e))
		for i, y := range e {
			z, err := s.confine(ctx, p, y)
			if err != nil {
				return nil, err
			}
			out[i] = z
		}
		return out, nil
	case search.Not:
		y, err := s.confine(ctx, p, e.Expr)
		return search.Not{Expr: y}, err
	case search.Chain:
		inner, err := s.confineInto(ctx, p, e.Target, e.Filter)
		e.Filter = inner
		return e, err
	case search.Has:
		inner, err := s.confineInto(ctx, p, e.Type, e.Filter)
		e.Filter = inner
		return e, err
	}
	return x, nil
}

func (s *Server) confineInto(ctx context.Context, p *auth.Principal, typ string, filter search.Expr) (search.Expr, error) {
	r, err := s.restrict(ctx, p, typ, auth.Search)
	if err != nil {
		return nil, forbidden("the search reaches into %s, which the access token does not allow searching", typ)
	}
	inner, err := s.confine(ctx, p, filter)
	if err != nil {
		return nil, err
	}
	if r.filter == nil {
		return inner, nil
	}
	return and(inner, r.filter), nil
}

// visibleOnly keeps the resources (current versions or history entries)
// whose current version the caller may read; the others are dropped
// silently, as if they did not exist.
func (s *Server) visibleOnly(ctx context.Context, rs []*fhir.Resource) []*fhir.Resource {
	p := s.principal(ctx)
	if p == nil || len(rs) == 0 {
		return rs
	}
	byType := map[string][]string{}
	for _, r := range rs {
		byType[r.Type] = append(byType[r.Type], r.ID)
	}
	visible := map[string]bool{}
	for typ, ids := range byType {
		r, err := s.restrict(ctx, p, typ, auth.Read)
		if err != nil {
			continue
		}
		if r.filter == nil {
			for _, id := range ids {
				visible[typ+"/"+id] = true
			}
			continue
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		page, err := s.store.Search(ctx, &search.Query{Type: typ, Filter: []search.Expr{r.filter, search.IDIn{IDs: ids}}, Count: len(ids)})
		if err != nil {
			continue
		}
		for _, res := range page.Resources {
			visible[typ+"/"+res.ID] = true
		}
	}
	out := rs[:0:0]
	for _, r := range rs {
		if visible[r.Type+"/"+r.ID] {
			out = append(out, r)
		}
	}
	return out
}

// authorizeOperation checks an operation invocation: the interaction it
// declares (Operation.Access) on its target, and returns the context the
// operation runs in, in which the resources it writes are checked against
// the caller's patient context.
func (s *Server) authorizeOperation(ctx context.Context, op *operation.Operation, typ, id string) (context.Context, error) {
	noteAccess(ctx, typ, id, "$"+op.Name)
	if op.Public {
		// It authenticates its callers itself; what it writes is the
		// server's doing (and audited with the request).
		return serverContext(ctx), nil
	}
	ctx = withOperation(ctx, op)
	p := s.principal(ctx)
	if p == nil {
		return ctx, nil
	}
	in := auth.Search
	switch op.Access {
	case "create":
		in = auth.Create
	case "read":
		in = auth.Read
	case "update":
		in = auth.Update
	case "delete":
		in = auth.Delete
	case "search":
	default:
		if id != "" {
			in = auth.Read
		}
	}
	switch {
	case id != "":
		return ctx, s.authorizeInstance(ctx, s.store, typ, id, in)
	case typ != "":
		return ctx, s.authorizeType(ctx, typ, in)
	}
	// A system-level operation: the caller needs the interaction on some
	// type; the operation restricts what it returns itself.
	for _, t := range s.cfg.Writable {
		if p.Decide(t, in).Allowed {
			return ctx, nil
		}
	}
	return ctx, s.denied(ctx, forbidden("the access token does not allow $%s", op.Name))
}

// authorizeWrite is the repo rule, registered for every writable type,
// that checks each write against the caller's scopes, patient compartment
// and organisation, whichever way it arrives (REST, Bundle entry,
// operation), and records it in the audit trail in the same transaction.
func (s *Server) authorizeWrite(ctx context.Context, tx *repo.Tx, c *repo.Change) error {
	p := s.principal(ctx)
	if p == nil {
		return nil
	}
	in := auth.Update
	switch {
	case c.New == nil:
		in = auth.Delete
	case c.Old == nil:
		in = auth.Create
	}
	if err := s.checkWrite(ctx, tx, p, c, in); err != nil {
		return s.denied(ctx, err)
	}
	return s.auditWrite(ctx, tx, p, c, in)
}

func (s *Server) checkWrite(ctx context.Context, tx *repo.Tx, p *auth.Principal, c *repo.Change, in auth.Interaction) error {
	if c.Type == auditType {
		return forbidden("AuditEvents are written only by the server")
	}
	var patient string
	info := infoOf(ctx)
	sideEffect := info != nil && info.target != "" && info.target != c.Type
	if operationOf(ctx) != nil || sideEffect {
		// The operation (or the write the client asked for) was
		// authorised; what it writes besides, for a caller in a patient
		// context, must stay within that patient's compartment.
		if !inCompartmentType(c.Type) || !p.HasPatientContext() || p.Decide(c.Type, in).Unrestricted {
			return nil
		}
		patient = patientOf(p)
	} else {
		r, err := s.restrict(ctx, p, c.Type, in)
		if err != nil {
			return err
		}
		switch {
		case r.queried && r.granted != nil:
			// Granular scopes (SMART v2 "patient/Appointment.cu?status=proposed"):
			// the resource must match a grant before and after the write.
			if err := s.checkGranularWrite(c, r.granted); err != nil {
				return err
			}
		case r.patient != "" && r.filter != nil:
			patient = r.patient
		}
		if err := s.checkOrgWrite(ctx, tx, p, c); err != nil {
			return err
		}
		if org := s.orgFilter(p, c.Type); org != nil && c.Old != nil {
			page, err := tx.Search(ctx, &search.Query{Type: c.Type, Filter: []search.Expr{org, search.IDIn{IDs: []string{c.ID}}}, Count: 1})
			if err != nil {
				return err
			}
			if len(page.Resources) == 0 {
				return forbidden("%s/%s is not a referral of organisation %s", c.Type, c.ID, p.Organization)
			}
		}
	}
	if patient == "" {
		return nil
	}
	if c.Old != nil && !s.inCompartment(c.Type, c.ID, c.Old.JSON, patient) {
		return forbidden("%s/%s is not in the compartment of the patient in context", c.Type, c.ID)
	}
	if c.New != nil && !s.inCompartment(c.Type, c.ID, c.New.Bytes(), patient) {
		return forbidden("the %s does not belong to the patient in context (Patient/%s)", c.Type, patient)
	}
	return nil
}

// checkGranularWrite checks a write under granular scopes: the current
// version (update, delete) and the proposed one (create, update) must each
// be reachable through the scopes' grants (granted: an Or over the grants
// of the patient compartment and each scope's query), evaluated on the
// resource in memory. A query that needs other resources (a chain, _has)
// cannot be decided on one resource and grants no write.
func (s *Server) checkGranularWrite(c *repo.Change, granted search.Expr) error {
	reg, ok := s.search.(*search.Registry)
	if !ok {
		return forbidden("this server cannot check granular (query) scopes on writes; writing %s needs a scope without a query", c.Type)
	}
	q := &search.Query{Type: c.Type, Filter: []search.Expr{granted}}
	match := func(raw []byte) (bool, error) {
		res := &fhir.Resource{Type: c.Type, ID: c.ID, Version: 1, JSON: raw}
		o, err := search.NewOracle(reg, []*fhir.Resource{res})
		if err != nil {
			return false, err
		}
		return o.Match(q, res), nil
	}
	if c.Old != nil {
		ok, err := match(c.Old.JSON)
		if err != nil {
			return err
		}
		if !ok {
			return forbidden("%s/%s does not match the access token's granular scopes for %s", c.Type, c.ID, c.Type)
		}
	}
	if c.New != nil {
		ok, err := match(c.New.Bytes())
		if err != nil {
			return err
		}
		if !ok {
			return forbidden("the %s written does not match the access token's granular scopes for %s (e.g. patient/%s.cu?status=…: the resource must match the query, and belong to the patient in context)", c.Type, c.Type, c.Type)
		}
	}
	return nil
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

// inCompartment reports whether the resource typ/id with body raw is in
// patient's compartment.
func (s *Server) inCompartment(typ, id string, raw []byte, patient string) bool {
	if typ == "Patient" {
		return id == patient
	}
	params := compartmentParams()[typ]
	entries, err := s.search.Extract(typ, raw)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Type == search.Reference && e.RefType == "Patient" && e.RefID == patient && slices.Contains(params, e.Param) {
			return true
		}
	}
	return false
}

// Authentication.

// publicPaths are served without a token.
func (s *Server) public(c *gin.Context) bool {
	path := c.Request.URL.Path
	switch path {
	case "/healthz", "/readyz", "/fhir/metadata", smartPath:
		return true
	}
	if s.cfg.Security.AuthServer != nil && (path == s.cfg.Security.AuthPath || strings.HasPrefix(path, s.cfg.Security.AuthPath+"/")) {
		return true
	}
	// Public operations: /fhir/$op, /fhir/Type/$op, /fhir/Type/id/$op.
	if i := strings.LastIndex(path, "/$"); i >= 0 && strings.HasPrefix(path, "/fhir/") {
		if op, ok := s.ops[path[i+2:]]; ok && op.Public {
			return true
		}
	}
	return false
}

const smartPath = "/fhir/.well-known/smart-configuration"

// authenticate verifies the bearer token and puts its principal in the
// request context: 401 with WWW-Authenticate and an OperationOutcome when
// it is missing or bad.
func (s *Server) authenticate(c *gin.Context) {
	if s.cfg.Security.Open || s.public(c) {
		if !s.allow(c, "addr:"+c.ClientIP()) {
			return
		}
		c.Next()
		return
	}
	raw, err := auth.BearerToken(c.GetHeader("Authorization"))
	var p *auth.Principal
	if err == nil {
		p, err = s.tokens.verify(c.Request.Context(), raw, s.cfg.Security.Verifier, s.resolvePatient)
	}
	if err != nil {
		if !s.allow(c, "addr:"+c.ClientIP()) {
			return
		}
		c.Header("WWW-Authenticate", auth.WWWAuthenticate("signpost", err))
		if info := infoOf(c.Request.Context()); info != nil {
			info.denied = true
		}
		s.failNow(c, err)
		return
	}
	// Public clients (a patient app, UBRN patients) are shared by many
	// people: each of them gets a bucket of their own.
	rateKey := "client:" + p.ClientID
	if p.HasPatientContext() {
		rateKey += " " + p.Subject
	}
	if !s.allow(c, rateKey) {
		return
	}
	if info := infoOf(c.Request.Context()); info != nil {
		info.principal = p
	}
	c.Header("Cache-Control", "no-store")
	c.Request = c.Request.WithContext(auth.NewContext(c.Request.Context(), p))
	c.Next()
}

// failNow answers err and stops the handler chain.
func (s *Server) failNow(c *gin.Context, err error) {
	if fe := fhir.AsError(err); fe.Kind == fhir.Unauthorized {
		if c.Writer.Header().Get("WWW-Authenticate") == "" {
			c.Header("WWW-Authenticate", auth.WWWAuthenticate("signpost", err))
		}
		s.writeJSON(c, http.StatusUnauthorized, fhir.OperationOutcome(fe.Issues...))
		c.Abort()
		return
	}
	s.fail(c, err)
	c.Abort()
}

// resolvePatient finds the Patient an NHS login token's NHS number names.
func (s *Server) resolvePatient(ctx context.Context, nhsNumber string) (string, error) {
	q, err := s.search.Parse("Patient", url.Values{"identifier": {nhsNumberSystem + "|" + nhsNumber}}, search.ParseOptions{})
	if err != nil {
		return "", err
	}
	q.Count = 2
	page, err := s.store.Search(ctx, q)
	if err != nil {
		return "", err
	}
	if len(page.Resources) != 1 {
		return unresolvedPatient, nil // none, or ambiguous: reach no one
	}
	return page.Resources[0].ID, nil
}

// tokenCache remembers verified tokens until they expire: verifying a
// signature costs far more than a map look-up. Keys are SHA-256 hashes of
// the raw tokens.
type tokenCache struct {
	mu      sync.Mutex
	entries map[[32]byte]*auth.Principal
	now     func() time.Time
}

const maxCachedTokens = 10000

func (tc *tokenCache) verify(ctx context.Context, raw string, v TokenVerifier,
	resolve func(context.Context, string) (string, error)) (*auth.Principal, error) {
	key := sha256.Sum256([]byte(raw))
	now := tc.now()
	tc.mu.Lock()
	p, ok := tc.entries[key]
	tc.mu.Unlock()
	if ok && now.Before(p.Expiry) {
		return p, nil
	}
	p, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if p.Patient == "" && p.NHSNumber != "" {
		cp := *p
		if cp.Patient, err = resolve(ctx, p.NHSNumber); err != nil {
			return nil, err
		}
		p = &cp
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.entries) >= maxCachedTokens {
		for k, e := range tc.entries {
			if !now.Before(e.Expiry) {
				delete(tc.entries, k)
			}
		}
		if len(tc.entries) >= maxCachedTokens {
			clear(tc.entries)
		}
	}
	tc.entries[key] = p
	return p, nil
}

// smartConfiguration serves the SMART discovery document, always as JSON.
func (s *Server) smartConfiguration(c *gin.Context) {
	if len(s.cfg.Security.SmartConfiguration) == 0 {
		s.fail(c, fhir.Errorf(fhir.NotFound, "not-found", "", "this server has no authorisation configured"))
		return
	}
	c.Data(http.StatusOK, "application/json", s.cfg.Security.SmartConfiguration)
}

// capabilitySecurity is CapabilityStatement.rest.security: SMART on FHIR.
func (s *Server) capabilitySecurity() map[string]any {
	if s.cfg.Security.Open {
		return nil
	}
	sec := map[string]any{
		"cors": len(s.cfg.Security.CORSOrigins) > 0,
		"service": []map[string]any{{
			"coding": []map[string]string{{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":   "SMART-on-FHIR", "display": "SMART-on-FHIR",
			}},
			"text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		}},
		"description": "Bearer access tokens (JWT) with SMART v1/v2 scopes; discovery at .well-known/smart-configuration",
	}
	var smart struct {
		Authorize string `json:"authorization_endpoint"`
		Token     string `json:"token_endpoint"`
	}
	if json.Unmarshal(s.cfg.Security.SmartConfiguration, &smart) == nil && smart.Token != "" {
		sec["extension"] = []map[string]any{{
			"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": []map[string]string{
				{"url": "token", "valueUri": smart.Token},
				{"url": "authorize", "valueUri": smart.Authorize},
			},
		}}
	}
	return sec
}

// secure sets up the security layer: the token cache, the audit flusher,
// the rate limiter and the authorisation rule on every writable type.
func (s *Server) secure(rp *repo.Repo) {
	sec := s.cfg.Security
	s.tokens = &tokenCache{entries: map[[32]byte]*auth.Principal{}, now: time.Now}
	if sec.RateLimit > 0 {
		s.limiter = newRateLimiter(sec.RateLimit, sec.RateBurst)
	}
	if sec.Open {
		s.log.Warn("AUTHORISATION IS OFF: every request is served without a token and nothing is audited (tests and local experiments only)")
		return
	}
	if sec.AuthPath == "" {
		s.cfg.Security.AuthPath = "/auth"
	}
	every := sec.AuditFlush
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	s.audits = newAuditor(s, every)
	for _, typ := range s.cfg.Writable {
		rp.AddRule(typ, s.authorizeWrite)
	}
}

// securityRoutes adds the SMART discovery document and mounts the
// development authorisation server.
func (s *Server) securityRoutes(r *gin.Engine) {
	r.GET(smartPath, s.smartConfiguration)
	if s.cfg.Security.AuthServer != nil {
		r.Any(s.cfg.Security.AuthPath+"/*path", gin.WrapH(s.cfg.Security.AuthServer))
	}
}

// ClientOf names the verified caller of r ("client_id sub"), for features
// keyed by client that run before the API's own handlers (booking's
// Idempotency-Key records). A request whose token does not verify gets a
// name no other request has, so nothing is replayed to it; the API then
// answers it 401. An open server names callers by their token's
// unverified subject.
func (s *Server) ClientOf(r *http.Request) string {
	if s.cfg.Security.Open {
		return "open " + unverifiedSubject(r.Header.Get("Authorization"))
	}
	raw, err := auth.BearerToken(r.Header.Get("Authorization"))
	if err == nil && raw != "" {
		var p *auth.Principal
		if p, err = s.tokens.verify(r.Context(), raw, s.cfg.Security.Verifier, s.resolvePatient); err == nil {
			return p.ClientID + " " + p.Subject
		}
	}
	return "unverified " + newID()
}

// unverifiedSubject reads a JWT's sub without verifying it.
func unverifiedSubject(authorization string) string {
	tok, _ := strings.CutPrefix(authorization, "Bearer ")
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		return "anonymous"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Sub string `json:"sub"`
	}
	if err != nil || json.Unmarshal(b, &claims) != nil || claims.Sub == "" {
		return "anonymous"
	}
	return claims.Sub
}
