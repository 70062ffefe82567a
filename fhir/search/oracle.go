package search

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
)

// Oracle answers searches by scanning resources held in memory and applying
// FHIR's semantics directly to their index entries. It is slow and simple on
// purpose: differential tests compare every store against it (same matches,
// same order, same includes).
type Oracle struct {
	r       *Registry
	byType  map[string][]*fhir.Resource
	byRef   map[string]*fhir.Resource // "Type/id"
	entries map[*fhir.Resource][]Entry
	// Now is the instant ap (approximately) is measured from, in unix
	// microseconds; NewOracle sets it to the current time.
	Now int64
}

// NewOracle indexes resources (current versions; tombstones are skipped)
// as they are served, with r.ExtractServed: a derived value in a
// resource's JSON indexes the parameters over it.
func NewOracle(r *Registry, resources []*fhir.Resource) (*Oracle, error) {
	o := &Oracle{r: r, byType: map[string][]*fhir.Resource{}, byRef: map[string]*fhir.Resource{},
		entries: map[*fhir.Resource][]Entry{}, Now: time.Now().UnixMicro()}
	for _, res := range resources {
		if res.Deleted {
			continue
		}
		es, err := r.ExtractServed(res.Type, res.JSON)
		if err != nil {
			return nil, fmt.Errorf("oracle: %s: %w", res.Reference(), err)
		}
		o.entries[res] = es
		o.byType[res.Type] = append(o.byType[res.Type], res)
		o.byRef[res.Reference()] = res
	}
	return o, nil
}

// Search returns every resource matching q (all pages) in q's order.
func (o *Oracle) Search(q *Query) []*fhir.Resource {
	var cands []*fhir.Resource
	if q.Type != "" {
		cands = o.byType[q.Type]
	} else {
		for t, rs := range o.byType {
			if len(q.Types) == 0 || contains(q.Types, t) {
				cands = append(cands, rs...)
			}
		}
	}
	var out []*fhir.Resource
	for _, res := range cands {
		if o.Match(q, res) {
			out = append(out, res)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return o.Less(q, out[i], out[j]) })
	return out
}

// Match reports whether res satisfies every expression of q.Filter.
func (o *Oracle) Match(q *Query, res *fhir.Resource) bool {
	for _, e := range q.Filter {
		if !o.eval(e, res) {
			return false
		}
	}
	return true
}

func (o *Oracle) any(res *fhir.Resource, param string, fn func(e *Entry) bool) bool {
	if param == "_lastUpdated" {
		t := res.LastUpdated.UnixMicro()
		return fn(&Entry{Param: param, Type: Date, Low: t, High: t + 1})
	}
	es := o.entries[res]
	for i := range es {
		if es[i].Param == param && fn(&es[i]) {
			return true
		}
	}
	return false
}

func (o *Oracle) eval(x Expr, res *fhir.Resource) bool {
	return Visit[bool](x, evaluator{o, res})
}

// evaluator is the oracle's test of one expression against one resource.
type evaluator struct {
	o   *Oracle
	res *fhir.Resource
}

var _ Visitor[bool] = evaluator{}

func (v evaluator) IDIn(x IDIn) bool { return contains(x.IDs, v.res.ID) }

// leaf tests a leaf that one entry of its parameter can match.
func (v evaluator) leaf(x Leaf) bool {
	return v.o.any(v.res, x.Parameter(), func(e *Entry) bool { return v.o.entryMatches(x, e) })
}

func (v evaluator) TokenIn(x TokenIn) bool         { return v.leaf(x) }
func (v evaluator) TokenText(x TokenText) bool     { return v.leaf(x) }
func (v evaluator) StringMatch(x StringMatch) bool { return v.leaf(x) }
func (v evaluator) DateMatch(x DateMatch) bool     { return v.leaf(x) }
func (v evaluator) NumberMatch(x NumberMatch) bool { return v.leaf(x) }
func (v evaluator) RefIn(x RefIn) bool             { return v.leaf(x) }
func (v evaluator) URIMatch(x URIMatch) bool       { return v.leaf(x) }
func (v evaluator) Near(x Near) bool               { return v.leaf(x) }

func (v evaluator) CompositeMatch(x CompositeMatch) bool {
	return v.o.any(v.res, x.Param, func(e *Entry) bool {
		if e.Type != Composite || len(e.Components) != len(x.Components) {
			return false
		}
		for i, c := range x.Components {
			if !v.o.entryMatches(c, &e.Components[i]) {
				return false
			}
		}
		return true
	})
}

func (v evaluator) Missing(x Missing) bool {
	has := v.o.any(v.res, x.Param, func(*Entry) bool { return true })
	return has != x.Missing
}

func (v evaluator) Or(x Or) bool {
	for _, e := range x {
		if v.o.eval(e, v.res) {
			return true
		}
	}
	return false
}

func (v evaluator) Not(x Not) bool { return !v.o.eval(x.Expr, v.res) }

func (v evaluator) Chain(x Chain) bool {
	return v.o.any(v.res, x.Param, func(e *Entry) bool {
		if e.Value != "" || e.RefType != x.Target {
			return false
		}
		t := v.o.byRef[e.RefType+"/"+e.RefID]
		return t != nil && v.o.eval(x.Filter, t)
	})
}

func (v evaluator) Has(x Has) bool {
	for _, src := range v.o.byType[x.Type] {
		points := v.o.any(src, x.Param, func(e *Entry) bool {
			return e.Value == "" && e.RefType == v.res.Type && e.RefID == v.res.ID
		})
		if points && v.o.eval(x.Filter, src) {
			return true
		}
	}
	return false
}

// entryMatches reports whether the leaf x matches one entry e (of x's
// parameter, or a composite's component).
func (o *Oracle) entryMatches(x Expr, e *Entry) bool {
	return Visit[bool](x, entryMatcher{o, e})
}

// entryMatcher tests a leaf against one entry. Nodes that no single entry
// decides (IDIn, Missing, CompositeMatch and the branches) are never
// asked: a panic there is a bug in the oracle.
type entryMatcher struct {
	o *Oracle
	e *Entry
}

var _ Visitor[bool] = entryMatcher{}

func (m entryMatcher) TokenIn(x TokenIn) bool {
	return (!x.HasSystem || m.e.System == x.System) && contains(x.Codes, m.e.Value)
}

func (m entryMatcher) TokenText(x TokenText) bool {
	return strings.HasPrefix(m.e.Text, x.Text) || strings.Contains(m.e.Text, " "+x.Text)
}

func (m entryMatcher) StringMatch(x StringMatch) bool {
	switch x.Mode {
	case StringExact:
		return m.e.Value == x.Value
	case StringContains:
		return strings.Contains(m.e.Text, x.Value)
	}
	return strings.HasPrefix(m.e.Text, x.Value)
}

func (m entryMatcher) DateMatch(x DateMatch) bool {
	return DateMatches(x.Prefix, m.e.Low, m.e.High, x.Low, x.High, m.o.Now)
}

func (m entryMatcher) NumberMatch(x NumberMatch) bool {
	if x.HasUnit && (m.e.Value != x.Unit || (x.System != "" && m.e.System != x.System)) {
		return false
	}
	return NumberMatches(x.Prefix, m.e.NumLow, m.e.NumHigh, x.Low, x.High)
}

func (m entryMatcher) RefIn(x RefIn) bool {
	for _, ref := range x.Refs {
		if refMatches(ref, m.e) {
			return true
		}
	}
	return false
}

func (m entryMatcher) URIMatch(x URIMatch) bool {
	switch x.Mode {
	case URIAbove:
		return strings.HasPrefix(x.Value, m.e.Value)
	case URIBelow:
		return strings.HasPrefix(m.e.Value, x.Value)
	}
	return m.e.Value == x.Value
}

func (m entryMatcher) Near(x Near) bool {
	return Distance(x.Lat, x.Lon, m.e.NumLow, m.e.NumHigh) <= x.KM
}

func (m entryMatcher) notLeaf(x Expr) bool { panic(fmt.Sprintf("oracle: %T is not a leaf", x)) }

func (m entryMatcher) IDIn(x IDIn) bool                     { return m.notLeaf(x) }
func (m entryMatcher) Missing(x Missing) bool               { return m.notLeaf(x) }
func (m entryMatcher) CompositeMatch(x CompositeMatch) bool { return m.notLeaf(x) }
func (m entryMatcher) Or(x Or) bool                         { return m.notLeaf(x) }
func (m entryMatcher) Not(x Not) bool                       { return m.notLeaf(x) }
func (m entryMatcher) Chain(x Chain) bool                   { return m.notLeaf(x) }
func (m entryMatcher) Has(x Has) bool                       { return m.notLeaf(x) }

func refMatches(ref Ref, e *Entry) bool {
	if ref.URL != "" {
		return e.Value == ref.URL
	}
	return e.Value == "" && e.RefID == ref.ID && (ref.Type == "" || e.RefType == ref.Type)
}

// Distance is the great-circle distance in km between two points given in
// degrees.
func Distance(lat1, lon1, lat2, lon2 float64) float64 {
	const earth = 6371.0088
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * earth * math.Asin(math.Min(1, math.Sqrt(a)))
}

// sortValue is one resource's value for a sort key.
type sortValue struct {
	ok bool
	s  string
	n  float64
}

// SortValue returns res's value for key: for ascending keys the smallest of
// its values, for descending the largest (dates by range start ascending and
// range end descending; numbers likewise; strings by normalised text; tokens
// by code; references by "Type/id" or URL). ok is false when res has none;
// such resources sort after all others in both directions.
func (o *Oracle) sortValue(res *fhir.Resource, k SortKey) sortValue {
	switch k.Param {
	case "_id":
		return sortValue{ok: true, s: res.ID}
	case "_lastUpdated":
		return sortValue{ok: true, n: float64(res.LastUpdated.UnixMicro())}
	}
	var v sortValue
	o.any(res, k.Param, func(e *Entry) bool {
		var c sortValue
		c.ok = true
		switch e.Type {
		case Date:
			c.n = float64(e.Low)
			if k.Desc {
				c.n = float64(e.High)
			}
		case Number, Quantity:
			c.n = e.NumLow
			if k.Desc {
				c.n = e.NumHigh
			}
		case String:
			c.s = e.Text
		case Reference:
			c.s = e.Value
			if c.s == "" {
				c.s = e.RefType + "/" + e.RefID
			}
		default:
			c.s = e.Value
		}
		if !v.ok || (cmpSort(c, v) < 0) != k.Desc {
			v = c
		}
		return false
	})
	return v
}

func cmpSort(a, b sortValue) int {
	switch {
	case a.n < b.n:
		return -1
	case a.n > b.n:
		return 1
	}
	return strings.Compare(a.s, b.s)
}

// Less orders two matches of q: by q.Sort, then _lastUpdated, id and type.
func (o *Oracle) Less(q *Query, a, b *fhir.Resource) bool {
	for _, k := range q.Sort {
		va, vb := o.sortValue(a, k), o.sortValue(b, k)
		switch {
		case va.ok && !vb.ok:
			return true
		case !va.ok && vb.ok:
			return false
		case !va.ok:
			continue
		}
		c := cmpSort(va, vb)
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c < 0
		}
	}
	if !a.LastUpdated.Equal(b.LastUpdated) {
		return a.LastUpdated.Before(b.LastUpdated)
	}
	if a.ID != b.ID {
		return a.ID < b.ID
	}
	return a.Type < b.Type
}

// Included returns the resources q's _include and _revinclude add to
// matches (iterating where asked), without the matches themselves, ordered
// by type then id.
func (o *Oracle) Included(q *Query, matches []*fhir.Resource) []*fhir.Resource {
	have := map[*fhir.Resource]bool{}
	for _, m := range matches {
		have[m] = true
	}
	var out []*fhir.Resource
	frontier := matches
	for round := 0; len(frontier) > 0; round++ {
		var next []*fhir.Resource
		add := func(r *fhir.Resource) {
			if r != nil && !have[r] {
				have[r] = true
				out = append(out, r)
				next = append(next, r)
			}
		}
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			for _, src := range frontier {
				if inc.Source != src.Type {
					continue
				}
				for _, e := range o.entries[src] {
					if e.Type != Reference || e.Value != "" || !o.refParam(src.Type, e.Param, inc.Param) {
						continue
					}
					if inc.Target != "" && e.RefType != inc.Target {
						continue
					}
					add(o.byRef[e.RefType+"/"+e.RefID])
				}
			}
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			targets := map[string]bool{}
			for _, t := range frontier {
				targets[t.Reference()] = true
			}
			for typ, rs := range o.byType {
				if inc.Source != "*" && inc.Source != typ {
					continue
				}
				for _, src := range rs {
					for _, e := range o.entries[src] {
						if e.Type == Reference && e.Value == "" && o.refParam(typ, e.Param, inc.Param) &&
							targets[e.RefType+"/"+e.RefID] && (inc.Target == "" || inc.Target == e.RefType) {
							add(src)
							break
						}
					}
				}
			}
		}
		frontier = next
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// refParam reports whether entry parameter code of typ is selected by an
// include's parameter (a code, or "*" for every reference parameter).
func (o *Oracle) refParam(typ, code, want string) bool {
	if want != "*" {
		return code == want
	}
	p := o.r.Lookup(typ, code)
	return p != nil && p.Type == Reference
}
