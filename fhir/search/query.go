package search

import (
	"math"
	"net/url"
	"sort"
	"strings"
)

// Query is a search parsed from a client's parameters and checked against
// the registry: backend-neutral, translated by each store.
//
// Filter is a conjunction. Every leaf names the parameter whose index
// entries it tests (Entry.Param); a resource matches a leaf when at least
// one of its entries for that parameter does (FHIR's "any value" rule for
// repeating elements), except Missing and Not, which test for absence.
type Query struct {
	Type  string   // the resource type searched; "" for a system-level search
	Types []string // _type of a system-level search; empty means all
	// Filter: all must match (AND).
	Filter     []Expr
	Include    []Include // _include
	RevInclude []Include // _revinclude
	// Sort keys, in order. After them, results are always ordered by
	// _lastUpdated then id (then type, on a system-level search), which is
	// also the order without _sort.
	Sort     []SortKey
	Count    int    // page size
	Cursor   string // opaque position from a previous Page (_cursor)
	Total    TotalMode
	Summary  SummaryMode
	Elements []string // _elements
	// Applied lists the parameters that were applied, as the self link
	// shows them; Ignored the unknown or unsupported names that a lenient
	// parse skipped.
	Applied []Applied
	Ignored []string
}

// Applied is one parameter as the client sent it (name with modifier).
type Applied struct {
	Name  string
	Value string
}

// SelfParams renders the applied parameters (and paging, not the cursor)
// for a self link, in a stable order.
func (q *Query) SelfParams() url.Values {
	v := url.Values{}
	for _, a := range q.Applied {
		v.Add(a.Name, a.Value)
	}
	return v
}

// Canonical is SelfParams encoded with names sorted: the same search always
// renders the same string.
func (q *Query) Canonical() string {
	v := q.SelfParams()
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		for _, val := range v[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(val))
		}
	}
	return b.String()
}

// Include is one _include or _revinclude: resources of Source whose
// reference parameter Param points at the matches (rev), or the targets of
// the matches' Param (forward), limited to Target when not "".
// Param "*" means every reference parameter of Source.
type Include struct {
	Source  string
	Param   string
	Target  string
	Iterate bool // :iterate (or STU3 :recurse): apply to included resources too
}

// SortKey is one _sort key.
type SortKey struct {
	Param string // a parameter code, or _id / _lastUpdated
	Type  ParamType
	Desc  bool
}

// TotalMode is the _total parameter.
type TotalMode string

// The _total modes.
const (
	TotalNone     TotalMode = "none"
	TotalEstimate TotalMode = "estimate"
	TotalAccurate TotalMode = "accurate"
)

// SummaryMode is the _summary parameter; "" means not requested.
type SummaryMode string

// The _summary modes.
const (
	SummaryTrue  SummaryMode = "true"
	SummaryFalse SummaryMode = "false"
	SummaryText  SummaryMode = "text"
	SummaryData  SummaryMode = "data"
	SummaryCount SummaryMode = "count"
)

// Expr is a node of a search expression: one of the types below, and no
// other (accept seals it). Code that must treat every kind of node
// implements Visitor (or, to walk the tree's structure, TreeVisitor).
type Expr interface{ accept(caller) }

// IDIn matches resources whose logical id is one of IDs.
type IDIn struct{ IDs []string }

// TokenIn matches resources with a token entry for Param whose Value is one
// of Codes and, when HasSystem, whose System equals System ("" for "|code":
// no system). Also used for Reference :identifier (Param "x:identifier")
// and Identifier :of-type (Param "x:of-type", Codes "type|value").
type TokenIn struct {
	Param     string
	System    string
	HasSystem bool
	Codes     []string
}

// TokenText matches a token entry for Param whose Text (normalised display
// or text) starts with Text, or contains it as a word start.
type TokenText struct {
	Param string
	Text  string // normalised
}

// StringMode is how a string value matches.
type StringMode uint8

// The string match modes.
const (
	StringPrefix   StringMode = iota // default: Entry.Text starts with Value (normalised)
	StringExact                      // :exact: Entry.Value equals Value (as written)
	StringContains                   // :contains: Entry.Text contains Value (normalised)
)

// StringMatch matches a string entry for Param.
type StringMatch struct {
	Param string
	Mode  StringMode
	Value string
}

// Prefix is a comparison prefix of number, date and quantity values.
type Prefix string

// The comparison prefixes.
const (
	Eq Prefix = "eq"
	Ne Prefix = "ne"
	Gt Prefix = "gt"
	Lt Prefix = "lt"
	Ge Prefix = "ge"
	Le Prefix = "le"
	Sa Prefix = "sa"
	Eb Prefix = "eb"
	Ap Prefix = "ap"
)

// DateMatch matches a date entry for Param whose range [Entry.Low,
// Entry.High) compares with the search range [Low, High) by Prefix; see
// DateMatches. For Param "_lastUpdated" the value is the resource's
// last-updated instant, as the range [t, t+1µs).
type DateMatch struct {
	Param     string
	Prefix    Prefix
	Low, High int64
}

// NumberMatch matches a number or quantity entry for Param whose range
// [NumLow, NumHigh) compares with [Low, High) by Prefix, as DateMatch does.
// For a quantity with HasUnit, the entry's System (when System is not "")
// and unit code (Entry.Value) must equal System and Unit.
type NumberMatch struct {
	Param     string
	Prefix    Prefix
	Low, High float64
	System    string
	Unit      string
	HasUnit   bool
}

// Ref is one reference target: Type and ID for a local resource (Type may be
// "" when the client gave a bare id), URL for anything else.
type Ref struct {
	Type string
	ID   string
	URL  string
}

// RefIn matches a reference entry for Param pointing at one of Refs: a
// local ref matches Entry.RefType (unless Ref.Type is "") and Entry.RefID;
// a URL ref matches Entry.Value.
type RefIn struct {
	Param string
	Refs  []Ref
}

// URIMode is how a uri value matches.
type URIMode uint8

// The uri match modes.
const (
	URIExact URIMode = iota
	URIAbove         // :above: the entry is a prefix of Value
	URIBelow         // :below: Value is a prefix of the entry
)

// URIMatch matches a uri entry for Param.
type URIMatch struct {
	Param string
	Mode  URIMode
	Value string
}

// Near matches a special entry (Location.position: NumLow latitude,
// NumHigh longitude) within KM kilometres of (Lat, Lon).
type Near struct {
	Param    string
	Lat, Lon float64
	KM       float64
}

// Missing matches resources with no entry for Param (Missing) or with at
// least one (not Missing).
type Missing struct {
	Param   string
	Missing bool
}

// CompositeMatch matches a composite entry for Param (one tuple: the values
// found under one element of the parameter's base, such as one Observation
// component) whose components all match: Components[i] is tested against
// the entry's i-th component alone. Each is a leaf of the component's type
// (TokenIn, StringMatch, DateMatch, NumberMatch, RefIn or URIMatch) whose
// Param is the component's own parameter code.
type CompositeMatch struct {
	Param      string
	Components []Expr
}

// Or matches when any of its expressions does.
type Or []Expr

// Not matches resources that Expr does not match (:not, :not-in), including
// those with no value at all.
type Not struct{ Expr Expr }

// Chain matches resources whose reference parameter Param points at a
// resource of type Target (stored on this server) that matches Filter.
type Chain struct {
	Param  string
	Target string
	Filter Expr
}

// Has (reverse chaining, _has) matches resources that some resource of type
// Type points at through its reference parameter Param, where that
// resource matches Filter.
type Has struct {
	Type   string
	Param  string
	Filter Expr
}

func (x IDIn) accept(c caller)           { c.idIn(x) }
func (x TokenIn) accept(c caller)        { c.tokenIn(x) }
func (x TokenText) accept(c caller)      { c.tokenText(x) }
func (x StringMatch) accept(c caller)    { c.stringMatch(x) }
func (x DateMatch) accept(c caller)      { c.dateMatch(x) }
func (x NumberMatch) accept(c caller)    { c.numberMatch(x) }
func (x RefIn) accept(c caller)          { c.refIn(x) }
func (x URIMatch) accept(c caller)       { c.uriMatch(x) }
func (x Near) accept(c caller)           { c.near(x) }
func (x Missing) accept(c caller)        { c.missing(x) }
func (x CompositeMatch) accept(c caller) { c.compositeMatch(x) }
func (x Or) accept(c caller)             { c.or(x) }
func (x Not) accept(c caller)            { c.not(x) }
func (x Chain) accept(c caller)          { c.chain(x) }
func (x Has) accept(c caller)            { c.has(x) }

// DateMatches reports whether a value range [vl, vh) matches the search
// range [ql, qh) under prefix p, as FHIR defines the prefixes on ranges
// (ap widens the search range by 10% of its distance from now, at least a
// day; now is in unix microseconds).
func DateMatches(p Prefix, vl, vh, ql, qh, now int64) bool {
	d := now - ql
	if d < 0 {
		d = -d
	}
	return rangeMatches(p, vl, vh, ql, qh, max(d/10, 86400e6))
}

// NumberMatches is DateMatches for number and quantity ranges; ap means
// within 10% of the value.
func NumberMatches(p Prefix, vl, vh, ql, qh float64) bool {
	return rangeMatches(p, vl, vh, ql, qh, math.Abs((ql+qh)/2/10))
}

// rangeMatches compares a value range with a search range under prefix p;
// ap widens the search range by apWidth on each side.
func rangeMatches[T int64 | float64](p Prefix, vl, vh, ql, qh, apWidth T) bool {
	inside := vl >= ql && vh <= qh
	switch p {
	case Eq, "":
		return inside
	case Ne:
		return !inside
	case Gt:
		return vh > qh
	case Lt:
		return vl < ql
	case Ge:
		return vh > qh || inside
	case Le:
		return vl < ql || inside
	case Sa:
		return vl >= qh
	case Eb:
		return vh <= ql
	case Ap:
		return vl < qh+apWidth && vh > ql-apWidth
	}
	return false
}
