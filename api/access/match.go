package access

import (
	"context"
	"fmt"
	"slices"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// matchOne reports whether res, a resource not (or not yet in this form)
// in the store, or one read from rd, matches x: its own elements are
// tested in memory, the resources its chains lead to are read from rd and
// matched in turn, and those its _has come from are searched for in rd.
// The access layer checks a write's proposed version with it, and a
// stored resource's reach (reaches), against the same expressions that
// confine searches (orgFilter). x must not test derived values (a
// stored resource is matched as stored, without them): the organisation
// rule does not.
func (g *Guard) matchOne(ctx context.Context, rd store.Reader, res *fhir.Resource, x search.Expr) (bool, error) {
	m := &oneMatcher{g: g, rd: rd, res: res}
	return m.eval(ctx, x)
}

type oneMatcher struct {
	g      *Guard
	rd     store.Reader
	res    *fhir.Resource
	params map[string][]search.Entry // the resource's index entries, by the parameter a chain follows
	oracle *search.Oracle
}

// entriesOf returns the resource's index entries of param. A registry
// evaluates that parameter alone (a chain needs no other: a Slot's
// reach follows its schedule, not its thirty other parameters); another
// Searcher extracts them all.
func (m *oneMatcher) entriesOf(param string) ([]search.Entry, error) {
	if es, ok := m.params[param]; ok {
		return es, nil
	}
	var es []search.Entry
	var err error
	if reg, ok := m.g.cfg.Search.(*search.Registry); ok {
		es, err = reg.ExtractParams(m.res.Type, m.res.JSON, func(code string) bool { return code == param })
	} else {
		es, err = m.g.cfg.Search.Extract(m.res.Type, m.res.JSON)
	}
	if err != nil {
		return nil, err
	}
	if m.params == nil {
		m.params = map[string][]search.Entry{}
	}
	m.params[param] = es
	return es, nil
}

func (m *oneMatcher) eval(ctx context.Context, x search.Expr) (bool, error) {
	r := search.VisitTree[matched](x, oneEval{m, ctx})
	return r.ok, r.err
}

// matched is what oneEval returns for one expression.
type matched struct {
	ok  bool
	err error
}

// oneEval is oneMatcher.eval over each kind of node.
type oneEval struct {
	m   *oneMatcher
	ctx context.Context
}

func (v oneEval) Or(x search.Or) matched {
	for _, y := range x {
		ok, err := v.m.eval(v.ctx, y)
		if ok || err != nil {
			return matched{ok, err}
		}
	}
	return matched{}
}

func (v oneEval) Not(x search.Not) matched {
	ok, err := v.m.eval(v.ctx, x.Expr)
	return matched{!ok, err}
}

// maxReadChain bounds the resources a chain is followed to by reading
// each (oneEval.Chain); past it one search answers.
const maxReadChain = 4

// Chain follows the resource's references of x.Param to x.Target: it
// matches when one of the resources they name matches x.Filter. Those
// resources are read from rd and matched in memory in turn (a read costs a
// fraction of a search, and the organisation rule's chains end at one
// Organization), so the answer is the search's: a resource deleted or
// missing matches nothing, as a search for it finds nothing.
func (v oneEval) Chain(x search.Chain) matched {
	m := v.m
	entries, err := m.entriesOf(x.Param)
	if err != nil {
		return matched{err: err}
	}
	var ids []string
	for _, e := range entries {
		if e.Param == x.Param && e.Type == search.Reference && e.Value == "" && e.RefType == x.Target && e.RefID != "" && !slices.Contains(ids, e.RefID) {
			ids = append(ids, e.RefID)
		}
	}
	if len(ids) == 0 {
		return matched{}
	}
	if len(ids) > maxReadChain {
		page, err := m.rd.Search(v.ctx, &search.Query{Type: x.Target, Filter: []search.Expr{x.Filter, search.IDIn{IDs: ids}}, Count: 1})
		if err != nil {
			return matched{err: err}
		}
		return matched{ok: len(page.Resources) > 0}
	}
	for _, id := range ids {
		res, err := m.rd.Read(v.ctx, x.Target, id)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			continue
		} else if err != nil {
			return matched{err: err}
		}
		if ok, err := m.g.matchOne(v.ctx, m.rd, res, x.Filter); ok || err != nil {
			return matched{ok, err}
		}
	}
	return matched{}
}

func (v oneEval) Has(x search.Has) matched {
	m := v.m
	ref := search.RefIn{Param: x.Param, Refs: []search.Ref{{Type: m.res.Type, ID: m.res.ID}}}
	page, err := m.rd.Search(v.ctx, &search.Query{Type: x.Type, Filter: []search.Expr{x.Filter, ref}, Count: 1})
	if err != nil {
		return matched{err: err}
	}
	return matched{ok: len(page.Resources) > 0}
}

func (v oneEval) Leaf(x search.Leaf) matched {
	m := v.m
	if ids, ok := x.(search.IDIn); ok {
		for _, id := range ids.IDs {
			if id == m.res.ID {
				return matched{ok: true}
			}
		}
		return matched{}
	}
	// The resource's own index entries decide, as the oracle (which every
	// store agrees with) reads them.
	if m.oracle == nil {
		reg, ok := m.g.cfg.Search.(*search.Registry)
		if !ok {
			return matched{err: fmt.Errorf("access: matching %T on one resource needs a *search.Registry", x)}
		}
		o, err := search.NewOracle(reg, []*fhir.Resource{m.res})
		if err != nil {
			return matched{err: err}
		}
		m.oracle = o
	}
	return matched{ok: m.oracle.Match(&search.Query{Type: m.res.Type, Filter: []search.Expr{x}}, m.res)}
}
