package access

// Confining searches: RestrictQuery adds the caller's restriction to a
// search and to every chain and _has inside it; VisibleOnly drops the
// _include, _revinclude and history entries the caller may not read.

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// RestrictQuery confines a parsed search to what the caller may see: the
// type's restriction is added to the filter, chained and _has searches
// into types the caller cannot search are refused and confined likewise.
// _include and _revinclude are filtered afterwards (VisibleOnly).
func (g *Guard) RestrictQuery(ctx context.Context, q *search.Query) error {
	if err := audit.Searchable(q); err != nil {
		return err
	}
	p := g.principal(ctx)
	if p == nil {
		return nil
	}
	audit.Note(ctx, q.Type, "", q.Canonical())
	types := []string{q.Type}
	if q.Type == "" {
		types = q.Types
		if len(types) == 0 {
			types = g.cfg.Writable
		}
	}
	// The client's chains and _has are confined first; the restrictions
	// added after them are the server's own and are not confined again.
	for i, x := range q.Filter {
		y, err := g.confine(ctx, p, x)
		if err != nil {
			return g.denied(ctx, err)
		}
		q.Filter[i] = y
	}
	for _, typ := range types {
		r, err := g.restrict(ctx, p, typ, auth.Search)
		if err != nil {
			return g.denied(ctx, err)
		}
		filter := r.filter
		if r.org != nil && isTrace(q) {
			filter = r.granted // the organisation rule does not hide a traced patient
		}
		if filter != nil {
			if q.Type == "" {
				return g.denied(ctx, forbidden("a search across types needs unrestricted access to every type searched; search %s on its own", typ))
			}
			q.Filter = append(q.Filter, filter)
		}
	}
	return nil
}

// isTrace reports whether q is an exact patient trace, as NHS systems
// trace a patient on the Personal Demographics Service:
// Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|N&birthdate=D, with
// exactly these two parameters, once each, a ten-digit NHS number and a
// full date without prefix, and nothing else (no modifier, list, include,
// sort, summary or element selection). It finds the one patient with that
// NHS number born that day, whoever asks; it widens nothing else and
// leaves no lasting relationship.
func isTrace(q *search.Query) bool {
	if q.Type != "Patient" || len(q.Applied) != 2 || len(q.Filter) != 2 || len(q.Ignored) > 0 ||
		len(q.Include) > 0 || len(q.RevInclude) > 0 || len(q.Sort) > 0 || len(q.Elements) > 0 || q.Summary != "" {
		return false
	}
	var nhs, born bool
	for _, a := range q.Applied {
		switch a.Name {
		case "identifier":
			n, ok := strings.CutPrefix(a.Value, nhsNumberSystem+"|")
			nhs = ok && traceNHSNumber.MatchString(n)
		case "birthdate":
			born = traceBirthDate.MatchString(a.Value)
		}
	}
	return nhs && born
}

var (
	traceNHSNumber = regexp.MustCompile(`^[0-9]{10}$`)
	traceBirthDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// confine rewrites chains and _has inside x so that they only look at
// resources the caller may search.
func (g *Guard) confine(ctx context.Context, p *auth.Principal, x search.Expr) (search.Expr, error) {
	r := search.VisitTree[confined](x, confiner{g, ctx, p})
	return r.x, r.err
}

// confined is what confiner returns for one expression.
type confined struct {
	x   search.Expr
	err error
}

// confiner is confine over each kind of node: leaves stay as they are.
type confiner struct {
	g   *Guard
	ctx context.Context
	p   *auth.Principal
}

func (c confiner) Leaf(x search.Leaf) confined { return confined{x: x} }

func (c confiner) Or(e search.Or) confined {
	out := make(search.Or, len(e))
	for i, y := range e {
		z, err := c.g.confine(c.ctx, c.p, y)
		if err != nil {
			return confined{err: err}
		}
		out[i] = z
	}
	return confined{x: out}
}

func (c confiner) Not(e search.Not) confined {
	y, err := c.g.confine(c.ctx, c.p, e.Expr)
	return confined{search.Not{Expr: y}, err}
}

func (c confiner) Chain(e search.Chain) confined {
	inner, err := c.g.confineInto(c.ctx, c.p, e.Target, e.Filter)
	e.Filter = inner
	return confined{e, err}
}

func (c confiner) Has(e search.Has) confined {
	inner, err := c.g.confineInto(c.ctx, c.p, e.Type, e.Filter)
	e.Filter = inner
	return confined{e, err}
}

func (g *Guard) confineInto(ctx context.Context, p *auth.Principal, typ string, filter search.Expr) (search.Expr, error) {
	r, err := g.restrict(ctx, p, typ, auth.Search)
	if err != nil {
		return nil, forbidden("the search reaches into %s, which the access token does not allow searching", typ)
	}
	inner, err := g.confine(ctx, p, filter)
	if err != nil {
		return nil, err
	}
	if r.filter == nil {
		return inner, nil
	}
	return and(inner, r.filter), nil
}

// VisibleOnly keeps the resources (current versions or history entries)
// whose current version the caller may read; the others are dropped
// silently, as if they did not exist.
func (g *Guard) VisibleOnly(ctx context.Context, rs []*fhir.Resource) []*fhir.Resource {
	p := g.principal(ctx)
	if p == nil || len(rs) == 0 {
		return rs
	}
	byType := map[string][]string{}
	for _, r := range rs {
		byType[r.Type] = append(byType[r.Type], r.ID)
	}
	visible := map[string]bool{}
	for typ, ids := range byType {
		r, err := g.restrict(ctx, p, typ, auth.Read)
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
		page, err := g.cfg.Store.Search(ctx, &search.Query{Type: typ, Filter: []search.Expr{r.filter, search.IDIn{IDs: ids}}, Count: len(ids)})
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
