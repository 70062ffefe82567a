package access

// Access decisions per interaction: restrict turns a principal's SMART
// scopes for one type and interaction into nothing (403), everything, or a
// search filter (the patient compartment, granular scope queries, the
// organisation rule); authorizeType, AuthorizeInstance, AuthorizeHistory
// and AuthorizeOperation apply it to a request, answering 404 for a single
// resource the caller cannot see.

import (
	"context"
	"slices"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// operationKey marks a request context as inside an authorised operation.
type operationKey struct{}

// withOperation marks ctx as inside an authorised operation.
func withOperation(ctx context.Context, op *operation.Operation) context.Context {
	return context.WithValue(ctx, operationKey{}, op)
}

func operationOf(ctx context.Context) *operation.Operation {
	op, _ := ctx.Value(operationKey{}).(*operation.Operation)
	return op
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
	// org is the organisation rule's part of filter (orgFilter), nil when
	// the organisation does not restrict the caller on this type; orgOnly
	// says filter is org alone.
	org     search.Expr
	orgOnly bool
}

// restrict works out the principal's restriction for in on typ, or a
// Forbidden error.
func (g *Guard) restrict(ctx context.Context, p *auth.Principal, typ string, in auth.Interaction) (*restriction, error) {
	d := p.Decide(typ, in)
	if !d.Allowed {
		return nil, forbidden("the access token does not allow %s on %s", in, typ)
	}
	r := &restriction{}
	if !d.Unrestricted {
		var alts search.Or
		reach := false
		for _, grant := range d.Grants {
			var parts []search.Expr
			if grant.Level == auth.LevelPatient {
				r.patient = patientOf(p)
				switch {
				case slices.Contains(directoryTypes, typ) && in&(auth.Read|auth.Search) == in:
					// the directory stays visible
				case typ == "Subscription":
					// the patient's own subscriptions (ownerFilter, below)
				case !search.InCompartmentType(typ):
					continue // nothing of this type is in a compartment
				default:
					parts = append(parts, search.CompartmentFilter(typ, r.patient))
				}
			}
			if grant.Query != nil {
				q, err := g.cfg.Search.Parse(typ, grant.Query, search.ParseOptions{Strict: true})
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
	if typ == "Subscription" && in != auth.Create {
		// A Subscription is its owner's alone, whatever the scopes: it
		// carries the owner's endpoint and its headers' secrets.
		r.filter = and(nonNil(r.filter, ownerFilter(p))...)
		r.compartmentOnly = false
	}
	if org := g.orgFilter(p, typ); org != nil {
		r.orgOnly = r.filter == nil
		r.filter = and(nonNil(r.filter, org)...)
		r.compartmentOnly = false
		r.org = org
	}
	return r, nil
}

// ownerFilter matches the Subscriptions p owns: those the server recorded
// as created by p's client and subject (domain/subscription's owner
// extension, indexed as owner-client and owner-subject).
func ownerFilter(p *auth.Principal) search.Expr {
	return and(search.TokenIn{Param: "owner-client", Codes: []string{p.ClientID}},
		search.TokenIn{Param: "owner-subject", Codes: []string{p.Subject}})
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

// authorizeType checks that the caller may perform in on typ at all.
func (g *Guard) authorizeType(ctx context.Context, typ string, in auth.Interaction) error {
	p := g.principal(ctx)
	if p == nil {
		return nil
	}
	audit.Note(ctx, typ, "", "")
	_, err := g.restrict(ctx, p, typ, in)
	return g.denied(ctx, err)
}

// AuthorizeInstance checks that the caller may perform in on typ/id: the
// interaction must be granted (else 403) and, when the caller's reach is
// restricted, the resource's current version must be within it (else 404,
// so nothing is said about resources the caller cannot see).
func (g *Guard) AuthorizeInstance(ctx context.Context, rd store.Reader, typ, id string, in auth.Interaction) error {
	p := g.principal(ctx)
	if p == nil {
		return nil
	}
	audit.Note(ctx, typ, id, "")
	r, err := g.restrict(ctx, p, typ, in)
	if err != nil {
		return g.denied(ctx, err)
	}
	ok, err := g.reaches(ctx, rd, r, typ, id)
	if err != nil {
		return err
	}
	if !ok {
		return g.denied(ctx, hidden(typ, id))
	}
	return nil
}

// reaches reports whether typ/id's current version in rd is within the
// restriction r. A resource that does not exist is not.
func (g *Guard) reaches(ctx context.Context, rd store.Reader, r *restriction, typ, id string) (bool, error) {
	if r.filter == nil {
		return true, nil
	}
	if r.compartmentOnly {
		res, err := rd.Read(ctx, typ, id)
		if k := fhir.KindOf(err); err != nil && k != fhir.NotFound && k != fhir.Gone {
			return false, err
		}
		return err == nil && g.inCompartment(typ, id, res.JSON, r.patient), nil
	}
	if r.orgOnly {
		// The organisation rule alone: matched on the resource as stored,
		// its chains followed by reads (matchOne), which costs a read and
		// a few more where the search costs a query planned and run with
		// every alternative of the rule.
		res, err := rd.Read(ctx, typ, id)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return false, nil
		} else if err != nil {
			return false, err
		}
		return g.matchOne(ctx, rd, res, r.org)
	}
	page, err := rd.Search(ctx, &search.Query{Type: typ, Filter: []search.Expr{r.filter, search.IDIn{IDs: []string{id}}}, Count: 1})
	if err != nil {
		return false, err
	}
	return len(page.Resources) > 0, nil
}

// visible reports whether the caller in ctx may read typ/id as rd holds
// it: the repo's Visibility, with which the domain rules resolve the
// references clients give them (write.ReadAs).
func (g *Guard) visible(ctx context.Context, rd store.Reader, typ, id string) (bool, error) {
	p := g.principal(ctx)
	if p == nil {
		return true, nil
	}
	r, err := g.restrict(ctx, p, typ, auth.Read)
	if err != nil {
		return false, nil
	}
	return g.reaches(ctx, rd, r, typ, id)
}

// AuthorizeHistory checks a history request: an instance's needs read on
// it, a type's or the system's search on the type (entries are then
// filtered with VisibleOnly).
func (g *Guard) AuthorizeHistory(ctx context.Context, typ, id string) error {
	switch {
	case id != "":
		return g.AuthorizeInstance(ctx, g.cfg.Store, typ, id, auth.Read)
	case typ != "":
		return g.authorizeType(ctx, typ, auth.Search)
	}
	return nil
}

// denied records a refused access for the audit trail and returns err.
func (g *Guard) denied(ctx context.Context, err error) error {
	if err != nil {
		audit.Refused(ctx)
	}
	return err
}

// AuthorizeOperation checks an operation invocation: the interaction it
// declares (Operation.Access) on its target, and returns the context the
// operation runs in, in which the resources it writes are checked against
// the caller's patient context.
func (g *Guard) AuthorizeOperation(ctx context.Context, op *operation.Operation, typ, id string) (context.Context, error) {
	audit.Note(ctx, typ, id, "$"+op.Name)
	if op.Public {
		// It authenticates its callers itself; what it writes is the
		// server's doing (and audited with the request).
		return serverContext(ctx), nil
	}
	ctx = withOperation(ctx, op)
	p := g.principal(ctx)
	if p == nil {
		return ctx, nil
	}
	if err := checkOperationRoles(p, op); err != nil {
		return ctx, g.denied(ctx, err)
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
		return ctx, g.AuthorizeInstance(ctx, g.cfg.Store, typ, id, in)
	case typ != "":
		return ctx, g.authorizeType(ctx, typ, in)
	}
	// A system-level operation: the caller needs the interaction on some
	// type; the operation restricts what it returns itself.
	for _, t := range g.cfg.Writable {
		if p.Decide(t, in).Allowed {
			return ctx, nil
		}
	}
	return ctx, g.denied(ctx, forbidden("the access token does not allow $%s", op.Name))
}
