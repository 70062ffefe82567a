package access

import (
	"context"
	"fmt"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// matchOne reports whether res, a resource not (or not yet in this form)
// in the store, matches x: its own elements are tested in memory, the
// resources its chains lead to and its _has come from are looked up in rd.
// The access layer checks a write's proposed version with it, against
// the same expressions that confine searches (orgFilter).
func (g *Guard) matchOne(ctx context.Context, rd store.Reader, res *fhir.Resource, x search.Expr) (bool, error) {
	m := &oneMatcher{g: g, rd: rd, res: res}
	return m.eval(ctx, x)
}

type oneMatcher struct {
	g       *Guard
	rd      store.Reader
	res     *fhir.Resource
	entries []search.Entry
	oracle  *search.Oracle
	ready   bool
}

func (m *oneMatcher) load() error {
	if m.ready {
		return nil
	}
	es, err := m.g.cfg.Search.Extract(m.res.Type, m.res.JSON)
	if err != nil {
		return err
	}
	m.entries, m.ready = es, true
	return nil
}

func (m *oneMatcher) eval(ctx context.Context, x search.Expr) (bool, error) {
	switch x := x.(type) {
	case search.Or:
		for _, y := range x {
			ok, err := m.eval(ctx, y)
			if ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	case search.Not:
		ok, err := m.eval(ctx, x.Expr)
		return !ok, err
	case search.IDIn:
		for _, id := range x.IDs {
			if id == m.res.ID {
				return true, nil
			}
		}
		return false, nil
	case search.Chain:
		if err := m.load(); err != nil {
			return false, err
		}
		var ids []string
		for _, e := range m.entries {
			if e.Param == x.Param && e.Type == search.Reference && e.Value == "" && e.RefType == x.Target && e.RefID != "" {
				ids = append(ids, e.RefID)
			}
		}
		if len(ids) == 0 {
			return false, nil
		}
		page, err := m.rd.Search(ctx, &search.Query{Type: x.Target, Filter: []search.Expr{x.Filter, search.IDIn{IDs: ids}}, Count: 1})
		if err != nil {
			return false, err
		}
		return len(page.Resources) > 0, nil
	case search.Has:
		ref := search.RefIn{Param: x.Param, Refs: []search.Ref{{Type: m.res.Type, ID: m.res.ID}}}
		page, err := m.rd.Search(ctx, &search.Query{Type: x.Type, Filter: []search.Expr{x.Filter, ref}, Count: 1})
		if err != nil {
			return false, err
		}
		return len(page.Resources) > 0, nil
	}
	// A leaf: the resource's own index entries decide, as the oracle
	// (which every store agrees with) reads them.
	if m.oracle == nil {
		reg, ok := m.g.cfg.Search.(*search.Registry)
		if !ok {
			return false, fmt.Errorf("access: matching %T on one resource needs a *search.Registry", x)
		}
		o, err := search.NewOracle(reg, []*fhir.Resource{m.res})
		if err != nil {
			return false, err
		}
		m.oracle = o
	}
	return m.oracle.Match(&search.Query{Type: m.res.Type, Filter: []search.Expr{x}}, m.res), nil
}
