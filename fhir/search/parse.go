package search

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
)

// ParseOptions configures one Parse.
type ParseOptions struct {
	// Strict rejects unknown or unsupported parameter names (Prefer:
	// handling=strict); otherwise they are ignored and listed in
	// Query.Ignored.
	Strict bool
	// DefaultCount is the page size without _count (default 50); MaxCount
	// caps _count and the default (default 1000).
	DefaultCount int
	MaxCount     int
}

// CursorParam is the parameter that carries a paging cursor.
const CursorParam = "_cursor"

// resultParams are handled by the API layer, neither applied nor unknown.
var resultParams = map[string]bool{"_format": true, "_pretty": true}

// Parse parses a search of resourceType ("" for a system-level search) into
// a Query checked against the registry. Problems a client must fix (an
// unknown modifier, a malformed value, an unknown prefix; in strict mode an
// unknown parameter) are returned together as one *fhir.Error of kind
// Invalid, each issue naming its parameter in Expression.
func (r *Registry) Parse(resourceType string, params url.Values, opts ParseOptions) (*Query, error) {
	if opts.DefaultCount <= 0 {
		opts.DefaultCount = 50
	}
	if opts.MaxCount <= 0 {
		opts.MaxCount = 1000
	}
	opts.DefaultCount = min(opts.DefaultCount, opts.MaxCount)
	if resourceType != "" && r.types[resourceType] == nil {
		return nil, fhir.Errorf(fhir.NotFound, "not-supported", "", "resource type %q is not supported", resourceType)
	}
	p := &parser{r: r, now: time.Now().UnixMicro()}
	q := &Query{Type: resourceType, Count: opts.DefaultCount}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, value := range params[name] {
			ok, err := p.param(q, resourceType, name, value, opts)
			switch {
			case err != nil:
				p.issues = append(p.issues, fhir.Issue{Code: "invalid", Diagnostics: err.Error(), Expression: []string{name}})
			case !ok && opts.Strict:
				p.issues = append(p.issues, fhir.Issue{Code: "not-supported",
					Diagnostics: fmt.Sprintf("unknown or unsupported search parameter %q", name), Expression: []string{name}})
			case !ok:
				if len(q.Ignored) == 0 || q.Ignored[len(q.Ignored)-1] != name {
					q.Ignored = append(q.Ignored, name)
				}
			}
		}
	}
	if len(p.issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Invalid, Op: "search " + resourceType, Issues: p.issues}
	}
	return q, nil
}

type parser struct {
	r      *Registry
	now    int64
	issues []fhir.Issue
}

// param handles one name=value. It returns false for a name it does not
// know (or cannot apply), and an error for a known name used wrongly.
func (p *parser) param(q *Query, typ, name, value string, opts ParseOptions) (bool, error) {
	base, mod, _ := strings.Cut(name, ":")
	applied := func() { q.Applied = append(q.Applied, Applied{name, value}) }
	switch base {
	case CursorParam:
		q.Cursor = value
		return true, nil
	case "_count":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return false, fmt.Errorf("_count must be a non-negative integer, not %q", value)
		}
		q.Count = min(n, opts.MaxCount)
		q.Applied = append(q.Applied, Applied{name, strconv.Itoa(q.Count)})
		return true, nil
	case "_total":
		switch TotalMode(value) {
		case TotalNone, TotalEstimate, TotalAccurate:
			q.Total = TotalMode(value)
		default:
			return false, fmt.Errorf("_total must be none, estimate or accurate, not %q", value)
		}
		applied()
		return true, nil
	case "_summary":
		switch SummaryMode(value) {
		case SummaryTrue, SummaryFalse, SummaryText, SummaryData, SummaryCount:
			q.Summary = SummaryMode(value)
		default:
			return false, fmt.Errorf("_summary must be true, false, text, data or count, not %q", value)
		}
		applied()
		return true, nil
	case "_elements":
		for _, e := range strings.Split(value, ",") {
			if e = strings.TrimSpace(e); e != "" {
				q.Elements = append(q.Elements, e)
			}
		}
		applied()
		return true, nil
	case "_sort":
		keys, err := p.sortKeys(typ, value)
		if err != nil {
			return false, err
		}
		q.Sort = append(q.Sort, keys...)
		applied()
		return true, nil
	case "_include", "_revinclude":
		inc, err := p.include(typ, base == "_revinclude", mod, value)
		if err != nil {
			return false, err
		}
		if base == "_include" {
			q.Include = append(q.Include, inc)
		} else {
			q.RevInclude = append(q.RevInclude, inc)
		}
		applied()
		return true, nil
	case "_type":
		if typ != "" {
			return false, nil
		}
		for _, t := range splitOr(value) {
			if p.r.types[t] == nil {
				return false, fmt.Errorf("unknown resource type %q", t)
			}
			q.Types = append(q.Types, t)
		}
		applied()
		return true, nil
	}
	if resultParams[base] {
		return true, nil
	}
	e, ok, err := p.filter(typ, name, value)
	if !ok || err != nil {
		return ok, err
	}
	q.Filter = append(q.Filter, e)
	applied()
	return true, nil
}

// filter parses one filtering parameter on typ.
func (p *parser) filter(typ, name, value string) (Expr, bool, error) {
	if strings.HasPrefix(name, "_has:") {
		return p.has(typ, name, value)
	}
	base, mod, _ := strings.Cut(name, ":")
	// Chaining: the first '.' outside the modifier splits the name.
	if dot := strings.IndexByte(name, '.'); dot >= 0 {
		return p.chain(typ, name[:dot], name[dot+1:], value)
	}
	par := p.r.Lookup(typ, base)
	if par == nil || par.Unsupported != "" {
		return nil, false, nil
	}
	if par.Chain != "" { // a named chain: search it as the chain it names
		head, rest, _ := strings.Cut(par.Chain, ".")
		if mod != "" {
			rest += ":" + mod
		}
		return p.chain(typ, head, rest, value)
	}
	e, err := p.value(par, mod, value)
	if err != nil {
		return nil, true, err
	}
	return e, true, nil
}

func (p *parser) chain(typ, head, rest, value string) (Expr, bool, error) {
	base, mod, _ := strings.Cut(head, ":")
	par := p.r.Lookup(typ, base)
	if par == nil || par.Unsupported != "" {
		return nil, false, nil
	}
	if par.Type != Reference {
		return nil, true, fmt.Errorf("%s is a %s parameter and cannot be chained", base, par.Type)
	}
	targets := par.Targets
	if mod != "" {
		if !contains(par.Targets, mod) {
			return nil, true, fmt.Errorf("%s does not refer to %s", base, mod)
		}
		targets = []string{mod}
	}
	var alts Or
	unknown := true
	for _, t := range targets {
		if p.r.types[t] == nil {
			continue
		}
		e, ok, err := p.filter(t, rest, value)
		if err != nil {
			return nil, true, err
		}
		if ok {
			unknown = false
			alts = append(alts, Chain{Param: base, Target: t, Filter: e})
		}
	}
	if unknown {
		return nil, true, fmt.Errorf("no target of %s has a search parameter %q", base, rest)
	}
	if len(alts) == 1 {
		return alts[0], true, nil
	}
	return alts, true, nil
}

// has parses _has:Type:param:rest (rest may itself be a _has).
func (p *parser) has(typ, name, value string) (Expr, bool, error) {
	parts := strings.SplitN(strings.TrimPrefix(name, "_has:"), ":", 3)
	if len(parts) != 3 {
		return nil, true, fmt.Errorf("_has must be _has:Type:reference:parameter")
	}
	src, refCode, rest := parts[0], parts[1], parts[2]
	if p.r.types[src] == nil {
		return nil, true, fmt.Errorf("_has: unknown resource type %q", src)
	}
	ref := p.r.Lookup(src, refCode)
	if ref == nil || ref.Type != Reference || ref.Unsupported != "" {
		return nil, true, fmt.Errorf("_has: %s has no reference parameter %q", src, refCode)
	}
	if typ != "" && !contains(ref.Targets, typ) {
		return nil, true, fmt.Errorf("_has: %s.%s does not refer to %s", src, refCode, typ)
	}
	e, ok, err := p.filter(src, rest, value)
	if err != nil {
		return nil, true, err
	}
	if !ok {
		return nil, true, fmt.Errorf("_has: %s has no search parameter %q", src, rest)
	}
	return Has{Type: src, Param: refCode, Filter: e}, true, nil
}

// value parses the value of parameter par with modifier mod.
func (p *parser) value(par *Param, mod, value string) (Expr, error) {
	if mod == "missing" {
		switch value {
		case "true", "false":
			return Missing{Param: par.Code, Missing: value == "true"}, nil
		}
		return nil, fmt.Errorf(":missing must be true or false, not %q", value)
	}
	if value == "" {
		return nil, fmt.Errorf("empty value")
	}
	var alts Or
	negate := false
	for _, v := range splitOr(value) {
		var e Expr
		var err error
		switch par.Type {
		case Token:
			e, negate, err = p.token(par, mod, v)
		case String:
			e, err = p.str(par, mod, v)
		case Date:
			e, err = p.date(par, mod, v)
		case Number, Quantity:
			e, err = p.number(par, mod, v)
		case Reference:
			e, err = p.reference(par, mod, v)
		case URI:
			e, err = p.uri(par, mod, v)
		case Special:
			e, err = p.near(par, mod, v)
		case Composite:
			e, err = p.composite(par, mod, v)
		default:
			err = fmt.Errorf("%s parameters are not supported", par.Type)
		}
		if err != nil {
			return nil, err
		}
		alts = append(alts, e)
	}
	var e Expr = alts
	if len(alts) == 1 {
		e = alts[0]
	} else {
		e = mergeOr(alts)
	}
	if negate {
		return Not{Expr: e}, nil
	}
	return e, nil
}

// mergeOr folds alternatives into fewer leaves where that is exact: ids into
// one IDIn, same-system codes into one TokenIn, references into one RefIn.
func mergeOr(alts Or) Expr {
	var out Or
	for _, e := range alts {
		merged := false
		for i, prev := range out {
			switch a := prev.(type) {
			case IDIn:
				if b, ok := e.(IDIn); ok {
					a.IDs = append(a.IDs, b.IDs...)
					out[i], merged = a, true
				}
			case TokenIn:
				if b, ok := e.(TokenIn); ok && a.Param == b.Param && a.System == b.System && a.HasSystem == b.HasSystem {
					a.Codes = append(a.Codes, b.Codes...)
					out[i], merged = a, true
				}
			case RefIn:
				if b, ok := e.(RefIn); ok && a.Param == b.Param {
					a.Refs = append(a.Refs, b.Refs...)
					out[i], merged = a, true
				}
			}
			if merged {
				break
			}
		}
		if !merged {
			out = append(out, e)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}

func badModifier(par *Param, mod string) error {
	return fmt.Errorf("modifier :%s is not supported on %s parameter %s", mod, par.Type, par.Code)
}

// token parses one token value; negate is set for :not and :not-in.
func (p *parser) token(par *Param, mod, v string) (Expr, bool, error) {
	if par.Code == "_id" {
		if mod != "" {
			return nil, false, badModifier(par, mod)
		}
		return IDIn{IDs: []string{unescape(v)}}, false, nil
	}
	sys, code, hasSys := splitToken(v)
	switch mod {
	case "", "not":
		return TokenIn{Param: par.Code, System: sys, HasSystem: hasSys, Codes: []string{code}}, mod == "not", nil
	case "text":
		return TokenText{Param: par.Code, Text: Normalize(unescape(v))}, false, nil
	case "of-type":
		parts := splitEscaped(v, '|')
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return nil, false, fmt.Errorf(":of-type needs system|code|value, not %q", v)
		}
		return TokenIn{Param: par.Code + ":of-type", System: unescape(parts[0]), HasSystem: true,
			Codes: []string{unescape(parts[1]) + "|" + unescape(parts[2])}}, false, nil
	case "in", "not-in":
		codings, ok := p.r.terms.expand(unescape(v))
		if !ok {
			return nil, false, fmt.Errorf("value set %q is not available on this server", v)
		}
		return codingsExpr(par.Code, codings), mod == "not-in", nil
	case "above", "below":
		if !hasSys || sys == "" {
			return nil, false, fmt.Errorf(":%s needs system|code", mod)
		}
		codings, ok := p.r.terms.closure(sys, code, mod == "below")
		if !ok {
			return nil, false, fmt.Errorf("the hierarchy of %s|%s is not available on this server", sys, code)
		}
		return codingsExpr(par.Code, codings), false, nil
	}
	return nil, false, badModifier(par, mod)
}

func codingsExpr(param string, cs []Coding) Expr {
	var alts Or
	for _, c := range cs {
		alts = append(alts, TokenIn{Param: param, System: c.System, HasSystem: true, Codes: []string{c.Code}})
	}
	if len(alts) == 0 {
		return Or{} // matches nothing
	}
	return mergeOr(alts)
}

func (p *parser) str(par *Param, mod, v string) (Expr, error) {
	v = unescape(v)
	switch mod {
	case "":
		return StringMatch{Param: par.Code, Mode: StringPrefix, Value: Normalize(v)}, nil
	case "exact":
		return StringMatch{Param: par.Code, Mode: StringExact, Value: v}, nil
	case "contains":
		return StringMatch{Param: par.Code, Mode: StringContains, Value: Normalize(v)}, nil
	}
	return nil, badModifier(par, mod)
}

// splitPrefix takes a comparison prefix off v.
func splitPrefix(v string) (Prefix, string, error) {
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		switch pr := Prefix(v[:2]); pr {
		case Eq, Ne, Gt, Lt, Ge, Le, Sa, Eb, Ap:
			return pr, v[2:], nil
		}
		return "", "", fmt.Errorf("unknown prefix %q in %q", v[:2], v)
	}
	return Eq, v, nil
}

func (p *parser) date(par *Param, mod, v string) (Expr, error) {
	if mod != "" {
		return nil, badModifier(par, mod)
	}
	pr, s, err := splitPrefix(v)
	if err != nil {
		return nil, err
	}
	// A '+' in an offset that was not percent-encoded arrives as a space.
	if i := strings.LastIndexByte(s, ' '); i > 0 && len(s)-i == 6 && s[len(s)-3] == ':' {
		s = s[:i] + "+" + s[i+1:]
	}
	lo, hi, err := DateRange(s, p.r.loc)
	if err != nil {
		return nil, fmt.Errorf("%v (write + in an offset as %%2B)", err)
	}
	return DateMatch{Param: par.Code, Prefix: pr, Low: lo, High: hi}, nil
}

func (p *parser) number(par *Param, mod, v string) (Expr, error) {
	if mod != "" {
		return nil, badModifier(par, mod)
	}
	pr, s, err := splitPrefix(v)
	if err != nil {
		return nil, err
	}
	m := NumberMatch{Param: par.Code, Prefix: pr}
	if par.Type == Quantity {
		parts := splitEscaped(s, '|')
		s = parts[0]
		switch len(parts) {
		case 1:
		case 3:
			m.System, m.Unit, m.HasUnit = unescape(parts[1]), unescape(parts[2]), true
		default:
			return nil, fmt.Errorf("quantity must be number or number|system|code, not %q", v)
		}
	}
	if m.Low, m.High, err = NumberRange(s); err != nil {
		return nil, err
	}
	return m, nil
}

func (p *parser) reference(par *Param, mod, v string) (Expr, error) {
	v = unescape(v)
	switch {
	case mod == "identifier":
		sys, code, hasSys := splitToken(v)
		return TokenIn{Param: par.Code + ":identifier", System: sys, HasSystem: hasSys, Codes: []string{code}}, nil
	case mod != "" && (mod[0] < 'A' || mod[0] > 'Z'):
		return nil, badModifier(par, mod)
	case mod != "" && !contains(par.Targets, mod):
		return nil, fmt.Errorf("%s does not refer to %s", par.Code, mod)
	}
	var ref Ref
	typ, id, base := splitReference(v)
	switch {
	case typ == "" && strings.Contains(v, ":"):
		ref.URL = v // canonical, URN or a URL of no resource shape
	case typ == "":
		ref.ID = v // a bare id
		ref.Type = mod
	case base == "" || (p.r.base != "" && base == p.r.base):
		ref.Type, ref.ID = typ, id
		if mod != "" && mod != typ {
			return nil, fmt.Errorf("%s:%s cannot match %q", par.Code, mod, v)
		}
	default:
		ref.URL = v
	}
	if ref.Type != "" && len(par.Targets) > 0 && !contains(par.Targets, ref.Type) {
		return nil, fmt.Errorf("%s does not refer to %s", par.Code, ref.Type)
	}
	return RefIn{Param: par.Code, Refs: []Ref{ref}}, nil
}

func (p *parser) uri(par *Param, mod, v string) (Expr, error) {
	v = unescape(v)
	switch mod {
	case "":
		return URIMatch{Param: par.Code, Mode: URIExact, Value: v}, nil
	case "above":
		return URIMatch{Param: par.Code, Mode: URIAbove, Value: v}, nil
	case "below":
		return URIMatch{Param: par.Code, Mode: URIBelow, Value: v}, nil
	}
	return nil, badModifier(par, mod)
}

// near parses latitude|longitude|distance|units (units km or mi; default
// 10 km).
func (p *parser) near(par *Param, mod, v string) (Expr, error) {
	if mod != "" {
		return nil, badModifier(par, mod)
	}
	parts := strings.Split(v, "|")
	if len(parts) < 2 || len(parts) > 4 {
		return nil, fmt.Errorf("near must be latitude|longitude|distance|units, not %q", v)
	}
	f := make([]float64, 3)
	f[2] = 10
	for i := 0; i < len(parts) && i < 3; i++ {
		if i == 2 && parts[i] == "" {
			continue
		}
		x, err := strconv.ParseFloat(parts[i], 64)
		if err != nil || math.IsNaN(x) {
			return nil, fmt.Errorf("near: %q is not a number", parts[i])
		}
		f[i] = x
	}
	if len(parts) == 4 {
		switch strings.TrimPrefix(parts[3], "http://unitsofmeasure.org|") {
		case "km", "":
		case "mi", "[mi_i]":
			f[2] *= 1.609344
		case "m":
			f[2] /= 1000
		default:
			return nil, fmt.Errorf("near: unknown distance unit %q", parts[3])
		}
	}
	return Near{Param: par.Code, Lat: f[0], Lon: f[1], KM: f[2]}, nil
}

func (p *parser) sortKeys(typ, value string) ([]SortKey, error) {
	var keys []SortKey
	for _, k := range strings.Split(value, ",") {
		k = strings.TrimSpace(k)
		desc := strings.HasPrefix(k, "-")
		k = strings.TrimPrefix(k, "-")
		par := p.r.Lookup(typ, k)
		if par == nil || par.Unsupported != "" {
			return nil, fmt.Errorf("cannot sort by unknown parameter %q", k)
		}
		if par.Type == Composite || par.Type == Special {
			return nil, fmt.Errorf("cannot sort by %s parameter %q", par.Type, k)
		}
		keys = append(keys, SortKey{Param: k, Type: par.Type, Desc: desc})
	}
	return keys, nil
}

// include parses Source:param[:Target] or *, with modifier iterate or
// recurse (STU3).
func (p *parser) include(typ string, rev bool, mod, value string) (Include, error) {
	var inc Include
	switch mod {
	case "":
	case "iterate", "recurse":
		inc.Iterate = true
	default:
		return inc, fmt.Errorf("unknown modifier :%s", mod)
	}
	if value == "*" {
		inc.Source, inc.Param = typ, "*"
		if rev {
			inc.Source = "*"
		}
		return inc, nil
	}
	parts := strings.Split(value, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return inc, fmt.Errorf("%q must be Type:parameter or Type:parameter:TargetType", value)
	}
	inc.Source, inc.Param = parts[0], parts[1]
	if len(parts) == 3 {
		inc.Target = parts[2]
	}
	if p.r.types[inc.Source] == nil {
		return inc, fmt.Errorf("unknown resource type %q", inc.Source)
	}
	// A non-iterating _include of another type than the one searched is
	// accepted and has no effect, as the specification describes.
	if inc.Param == "*" {
		return inc, nil
	}
	par := p.r.Lookup(inc.Source, inc.Param)
	if par == nil || par.Type != Reference || par.Unsupported != "" {
		return inc, fmt.Errorf("%s has no reference parameter %q", inc.Source, inc.Param)
	}
	if inc.Target != "" && !contains(par.Targets, inc.Target) {
		return inc, fmt.Errorf("%s.%s does not refer to %s", inc.Source, inc.Param, inc.Target)
	}
	return inc, nil
}

// splitOr splits a value at unescaped commas, keeping escapes.
func splitOr(v string) []string { return splitEscaped(v, ',') }

// splitEscaped splits v at sep not preceded by a backslash.
func splitEscaped(v string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case sep:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// unescape removes the backslash of \, \| \$ and \\.
func unescape(v string) string {
	if strings.IndexByte(v, '\\') < 0 {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// splitToken splits system|code; hasSystem is false without a '|'.
func splitToken(v string) (system, code string, hasSystem bool) {
	parts := splitEscaped(v, '|')
	if len(parts) == 1 {
		return "", unescape(v), false
	}
	return unescape(parts[0]), unescape(strings.Join(parts[1:], "|")), true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
