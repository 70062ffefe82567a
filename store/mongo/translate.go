package mongo

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/signpost-fhir/signpost/fhir/search"
)

// The translation of a search expression into a MongoDB filter on the
// resources collection. Every leaf but _id and _lastUpdated tests the
// index entries with $elemMatch (one entry must satisfy all of the leaf's
// conditions, FHIR's "any value" rule); Or, Not become $or and $nor.
// Chains, _has and near resolve their inner search first (in the same
// snapshot) into the ids it finds, so that plain find answers every
// query: lungo has no $lookup (Aggregate) and no $expr, and on MongoDB a
// sharded $lookup is no better than these two round trips.

// prefixEnd is appended to a prefix to bound the strings that start with
// it: no character sorts after U+10FFFF in UTF-8.
const prefixEnd = "\U0010FFFF"

// matchNothing is a filter no document satisfies.
var matchNothing = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}

// translator turns the expressions on resources of type typ into filters.
type translator struct {
	r   reader
	typ string // "" on a system-level search
	now int64  // unix microseconds, for ap
	err error
}

var _ search.Visitor[bson.D] = (*translator)(nil)

func (t *translator) fail(err error) bson.D {
	if t.err == nil {
		t.err = err
	}
	return matchNothing
}

// and combines filters: merged into one document when their fields are
// distinct, under $and otherwise.
func and(ds ...bson.D) bson.D {
	seen := map[string]bool{}
	var out bson.D
	for _, d := range ds {
		for _, e := range d {
			if seen[e.Key] {
				list := bson.A{}
				for _, d := range ds {
					if len(d) > 0 {
						list = append(list, d)
					}
				}
				return bson.D{{Key: "$and", Value: list}}
			}
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	if out == nil {
		out = bson.D{}
	}
	return out
}

func or(ds []bson.D) bson.D {
	if len(ds) == 0 {
		return matchNothing
	}
	if len(ds) == 1 {
		return ds[0]
	}
	list := bson.A{}
	for _, d := range ds {
		list = append(list, d)
	}
	return bson.D{{Key: "$or", Value: list}}
}

// elem is the filter "some entry of param satisfies conds". An $or in
// conds is moved outside the $elemMatch (some entry satisfies A or B
// exactly when some entry satisfies A or some satisfies B), as lungo
// takes no $or inside one.
func elem(param string, conds bson.D) bson.D {
	var alts []bson.D
	for _, alt := range dnf(conds) {
		alts = append(alts, bson.D{{Key: "ix", Value: bson.D{{Key: "$elemMatch", Value: and(bson.D{{Key: "p", Value: param}}, alt)}}}})
	}
	return or(alts)
}

// dnf rewrites a filter of fields, $and and $or as alternatives, each
// free of $or (a disjunctive normal form).
func dnf(d bson.D) []bson.D {
	alts := []bson.D{{}}
	for _, e := range d {
		var options []bson.D
		switch e.Key {
		case "$or":
			for _, x := range e.Value.(bson.A) {
				options = append(options, dnf(x.(bson.D))...)
			}
		case "$and":
			options = []bson.D{{}}
			for _, x := range e.Value.(bson.A) {
				options = product(options, dnf(x.(bson.D)))
			}
		default:
			options = []bson.D{{e}}
		}
		alts = product(alts, options)
	}
	return alts
}

// product returns every conjunction of one of a with one of b.
func product(a, b []bson.D) []bson.D {
	var out []bson.D
	for _, x := range a {
		for _, y := range b {
			out = append(out, and(x, y))
		}
	}
	return out
}

func strIn(vals []string) bson.A {
	a := make(bson.A, 0, len(vals))
	for _, v := range vals {
		a = append(a, v)
	}
	return a
}

func (t *translator) IDIn(x search.IDIn) bson.D {
	return bson.D{{Key: "id", Value: bson.D{{Key: "$in", Value: strIn(x.IDs)}}}}
}

func (t *translator) leaf(param string, x search.Expr) bson.D {
	conds, err := entryConds(x, "", t.now)
	if err != nil {
		return t.fail(err)
	}
	return elem(param, conds)
}

func (t *translator) TokenIn(x search.TokenIn) bson.D         { return t.leaf(x.Param, x) }
func (t *translator) TokenText(x search.TokenText) bson.D     { return t.leaf(x.Param, x) }
func (t *translator) StringMatch(x search.StringMatch) bson.D { return t.leaf(x.Param, x) }
func (t *translator) NumberMatch(x search.NumberMatch) bson.D { return t.leaf(x.Param, x) }
func (t *translator) RefIn(x search.RefIn) bson.D             { return t.leaf(x.Param, x) }
func (t *translator) URIMatch(x search.URIMatch) bson.D       { return t.leaf(x.Param, x) }

func (t *translator) DateMatch(x search.DateMatch) bson.D {
	if x.Param == "_lastUpdated" {
		return rangeConds(x.Prefix, "", "lu", "lu1", x.Low, x.High, dateAp(x.Low, t.now))
	}
	return t.leaf(x.Param, x)
}

// Near finds the entries inside the bounding box of the circle, keeps
// those within the distance, and matches the resources they belong to.
func (t *translator) Near(x search.Near) bson.D {
	dlat := x.KM/110.574 + 1e-9
	box := bson.D{{Key: "nl", Value: bson.D{{Key: "$gte", Value: x.Lat - dlat}, {Key: "$lte", Value: x.Lat + dlat}}}}
	if lat := math.Abs(x.Lat) + dlat; lat < 89 {
		dlon := x.KM/(111.320*math.Cos(lat*math.Pi/180)) + 1e-9
		if x.Lon-dlon > -180 && x.Lon+dlon < 180 {
			box = append(box, bson.E{Key: "nh", Value: bson.D{{Key: "$gte", Value: x.Lon - dlon}, {Key: "$lte", Value: x.Lon + dlon}}})
		}
	}
	docs, err := t.r.find(t.typ, elem(x.Param, box), bson.D{{Key: "id", Value: 1}, {Key: "ix", Value: 1}})
	if err != nil {
		return t.fail(err)
	}
	var ids []string
	for _, d := range docs {
		for _, e := range d.Ix {
			if e.P == x.Param && search.Distance(x.Lat, x.Lon, e.NL, e.NH) <= x.KM {
				ids = append(ids, d.ID)
				break
			}
		}
	}
	return t.IDIn(search.IDIn{IDs: ids})
}

func (t *translator) Missing(x search.Missing) bson.D {
	if x.Param == "_lastUpdated" || x.Param == "_id" {
		if x.Missing {
			return matchNothing
		}
		return bson.D{}
	}
	has := elem(x.Param, nil)
	if x.Missing {
		return bson.D{{Key: "$nor", Value: bson.A{has}}}
	}
	return has
}

func (t *translator) CompositeMatch(x search.CompositeMatch) bson.D {
	conds := bson.D{{Key: "c", Value: bson.D{{Key: "$size", Value: len(x.Components)}}}}
	for i, c := range x.Components {
		cc, err := entryConds(c, "c."+strconv.Itoa(i)+".", t.now)
		if err != nil {
			return t.fail(err)
		}
		conds = and(conds, cc)
	}
	return elem(x.Param, conds)
}

func (t *translator) Or(x search.Or) bson.D {
	var ds []bson.D
	for _, e := range x {
		ds = append(ds, search.Visit[bson.D](e, t))
	}
	return or(ds)
}

func (t *translator) Not(x search.Not) bson.D {
	return bson.D{{Key: "$nor", Value: bson.A{search.Visit[bson.D](x.Expr, t)}}}
}

// Chain finds the targets that match the chain's filter, then the
// resources whose reference points at one of them.
func (t *translator) Chain(x search.Chain) bson.D {
	sub := &translator{r: t.r, typ: x.Target, now: t.now}
	f := search.Visit[bson.D](x.Filter, sub)
	if sub.err != nil {
		return t.fail(sub.err)
	}
	docs, err := t.r.find(x.Target, f, bson.D{{Key: "id", Value: 1}})
	if err != nil {
		return t.fail(err)
	}
	ids := make([]string, 0, len(docs))
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	return elem(x.Param, bson.D{{Key: "v", Value: ""}, {Key: "rt", Value: x.Target}, {Key: "ri", Value: bson.D{{Key: "$in", Value: strIn(ids)}}}})
}

// Has finds the resources of x.Type that match its filter and point at a
// resource of this type, then matches those pointed at.
func (t *translator) Has(x search.Has) bson.D {
	if t.typ == "" {
		return t.fail(fmt.Errorf("_has needs a resource type"))
	}
	sub := &translator{r: t.r, typ: x.Type, now: t.now}
	f := search.Visit[bson.D](x.Filter, sub)
	if sub.err != nil {
		return t.fail(sub.err)
	}
	points := elem(x.Param, bson.D{{Key: "v", Value: ""}, {Key: "rt", Value: t.typ}})
	docs, err := t.r.find(x.Type, and(points, f), bson.D{{Key: "ix", Value: 1}})
	if err != nil {
		return t.fail(err)
	}
	var ids []string
	seen := map[string]bool{}
	for _, d := range docs {
		for _, e := range d.Ix {
			if e.P == x.Param && e.V == "" && e.RT == t.typ && !seen[e.RI] {
				seen[e.RI] = true
				ids = append(ids, e.RI)
			}
		}
	}
	return t.IDIn(search.IDIn{IDs: ids})
}

// find returns the current resources of typ (any type when "") matching
// f, with the fields of proj.
func (r reader) find(typ string, f, proj bson.D) ([]resDoc, error) {
	base := bson.D{{Key: "del", Value: false}}
	if typ != "" {
		base = bson.D{{Key: "type", Value: typ}, {Key: "del", Value: false}}
	}
	cur, err := r.c(colResources).Find(r.ctx, and(base, f), options.Find().SetProjection(proj))
	if err != nil {
		return nil, err
	}
	var docs []resDoc
	if err := cur.All(r.ctx, &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// entryConds returns the conditions one entry (its fields under prefix:
// "" for an entry, "c.N." for a composite's component) must meet to
// match leaf x.
func entryConds(x search.Expr, prefix string, now int64) (bson.D, error) {
	v := &entryVisitor{pre: prefix, now: now}
	d := search.Visit[bson.D](x, v)
	return d, v.err
}

// entryVisitor builds the conditions of a leaf on one entry.
type entryVisitor struct {
	pre string
	now int64
	err error
}

var _ search.Visitor[bson.D] = (*entryVisitor)(nil)

func (v *entryVisitor) f(name string) string { return v.pre + name }

func prefixRange(p string) bson.D {
	return bson.D{{Key: "$gte", Value: p}, {Key: "$lt", Value: p + prefixEnd}}
}

func (v *entryVisitor) TokenIn(x search.TokenIn) bson.D {
	d := bson.D{{Key: v.f("v"), Value: bson.D{{Key: "$in", Value: strIn(x.Codes)}}}}
	if x.HasSystem {
		d = append(d, bson.E{Key: v.f("s"), Value: x.System})
	}
	return d
}

func (v *entryVisitor) TokenText(x search.TokenText) bson.D {
	return bson.D{{Key: v.f("ws"), Value: bson.D{{Key: "$elemMatch", Value: prefixRange(x.Text)}}}}
}

func (v *entryVisitor) StringMatch(x search.StringMatch) bson.D {
	switch x.Mode {
	case search.StringExact:
		return bson.D{{Key: v.f("v"), Value: x.Value}}
	case search.StringContains:
		return bson.D{{Key: v.f("sf"), Value: bson.D{{Key: "$elemMatch", Value: prefixRange(x.Value)}}}}
	}
	return bson.D{{Key: v.f("t"), Value: prefixRange(x.Value)}}
}

func (v *entryVisitor) DateMatch(x search.DateMatch) bson.D {
	return rangeConds(x.Prefix, v.pre, "lo", "hi", x.Low, x.High, dateAp(x.Low, v.now))
}

func (v *entryVisitor) NumberMatch(x search.NumberMatch) bson.D {
	d := rangeConds(x.Prefix, v.pre, "nl", "nh", x.Low, x.High, math.Abs((x.Low+x.High)/2/10))
	if x.HasUnit {
		units := bson.D{{Key: v.f("v"), Value: x.Unit}}
		if x.System != "" {
			units = append(units, bson.E{Key: v.f("s"), Value: x.System})
		}
		d = and(units, d)
	}
	return d
}

func (v *entryVisitor) RefIn(x search.RefIn) bson.D {
	var alts []bson.D
	byType := map[string][]string{}
	var types []string
	for _, ref := range x.Refs {
		if ref.URL != "" {
			alts = append(alts, bson.D{{Key: v.f("v"), Value: ref.URL}})
			continue
		}
		if _, ok := byType[ref.Type]; !ok {
			types = append(types, ref.Type)
		}
		byType[ref.Type] = append(byType[ref.Type], ref.ID)
	}
	for _, typ := range types {
		d := bson.D{{Key: v.f("v"), Value: ""}, {Key: v.f("ri"), Value: bson.D{{Key: "$in", Value: strIn(byType[typ])}}}}
		if typ != "" {
			d = append(d, bson.E{Key: v.f("rt"), Value: typ})
		}
		alts = append(alts, d)
	}
	return or(alts)
}

func (v *entryVisitor) URIMatch(x search.URIMatch) bson.D {
	switch x.Mode {
	case search.URIBelow:
		return bson.D{{Key: v.f("v"), Value: prefixRange(x.Value)}}
	case search.URIAbove:
		var prefixes []string
		for i := 0; i <= len(x.Value); i++ {
			prefixes = append(prefixes, x.Value[:i])
		}
		return bson.D{{Key: v.f("v"), Value: bson.D{{Key: "$in", Value: strIn(prefixes)}}}}
	}
	return bson.D{{Key: v.f("v"), Value: x.Value}}
}

func (v *entryVisitor) notLeaf(x search.Expr) bson.D {
	if v.err == nil {
		v.err = fmt.Errorf("mongodb: %T cannot test one index entry", x)
	}
	return matchNothing
}

func (v *entryVisitor) IDIn(x search.IDIn) bson.D                     { return v.notLeaf(x) }
func (v *entryVisitor) Near(x search.Near) bson.D                     { return v.notLeaf(x) }
func (v *entryVisitor) Missing(x search.Missing) bson.D               { return v.notLeaf(x) }
func (v *entryVisitor) CompositeMatch(x search.CompositeMatch) bson.D { return v.notLeaf(x) }
func (v *entryVisitor) Or(x search.Or) bson.D                         { return v.notLeaf(x) }
func (v *entryVisitor) Not(x search.Not) bson.D                       { return v.notLeaf(x) }
func (v *entryVisitor) Chain(x search.Chain) bson.D                   { return v.notLeaf(x) }
func (v *entryVisitor) Has(x search.Has) bson.D                       { return v.notLeaf(x) }

// dateAp is the widening of ap for a date search starting at low, as
// search.DateMatches computes it.
func dateAp(low, now int64) int64 {
	d := now - low
	if d < 0 {
		d = -d
	}
	return max(d/10, 86400e6)
}

// rangeConds is search.DateMatches (and NumberMatches) as conditions on
// the fields lo and hi (under pre) of a value range [lo, hi) against the
// search range [ql, qh).
func rangeConds[T int64 | float64](p search.Prefix, pre, lo, hi string, ql, qh, ap T) bson.D {
	lo, hi = pre+lo, pre+hi
	c := func(field, op string, v T) bson.D { return bson.D{{Key: field, Value: bson.D{{Key: op, Value: v}}}} }
	inside := bson.D{{Key: lo, Value: bson.D{{Key: "$gte", Value: ql}}}, {Key: hi, Value: bson.D{{Key: "$lte", Value: qh}}}}
	switch p {
	case search.Eq, "":
		return inside
	case search.Ne:
		return or([]bson.D{c(lo, "$lt", ql), c(hi, "$gt", qh)})
	case search.Gt:
		return c(hi, "$gt", qh)
	case search.Lt:
		return c(lo, "$lt", ql)
	case search.Ge:
		return or([]bson.D{c(hi, "$gt", qh), inside})
	case search.Le:
		return or([]bson.D{c(lo, "$lt", ql), inside})
	case search.Sa:
		return c(lo, "$gte", qh)
	case search.Eb:
		return c(hi, "$lte", ql)
	case search.Ap:
		return bson.D{{Key: lo, Value: bson.D{{Key: "$lt", Value: satAdd(qh, ap)}}}, {Key: hi, Value: bson.D{{Key: "$gt", Value: satAdd(ql, -ap)}}}}
	}
	return matchNothing
}

// satAdd adds without overflowing the int64 bounds open date ranges use.
func satAdd[T int64 | float64](a, b T) T {
	s := a + b
	switch any(a).(type) {
	case int64:
		if b > 0 && s < a {
			return T(math.MaxInt64)
		}
		if b < 0 && s > a {
			return T(math.MinInt64)
		}
	}
	return s
}

// nowMicros is the instant ap is measured from.
func nowMicros() int64 { return time.Now().UnixMicro() }
