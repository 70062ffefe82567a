package search

import (
	"fmt"
	"strings"
)

// This file compiles the FHIRPath expressions of SearchParameter definitions
// into direct walks over parsed JSON. The subset covers every expression of
// the R4 definitions for the served types (see TestCompileAllDefinitions):
// unions with '|', member paths through choice elements, "(x as T)",
// ".as(T)", ".ofType(T)", ".where(resolve() is T)", ".where(field='lit')",
// ".where(hasExtension('url'))", ".extension('url')" and the boolean form
// "x.exists() and x != false". Anything else is reported, not guessed.

// filterKind is what a step does besides selecting members.
type filterKind uint8

const (
	fNone      filterKind = iota
	fResolveIs            // keep references whose target type is arg
	fFieldEq              // keep elements whose member arg equals arg2
	fExtURL               // keep extensions whose url is arg
	fHasExt               // keep elements with an extension whose url is arg
	fAs                   // keep values of type arg
)

// step is one member selection, optionally followed by a filter.
type step struct {
	name    string      // JSON member name, "" for a pure filter step
	choice  bool        // name is a choice element: match name+TypeSuffix
	typ     string      // the element's type when not a choice
	choices [][2]string // for a choice: {JSON suffix, type}
	filter  filterKind
	arg     string
	arg2    string
}

// program is a compiled expression: the union of its paths.
type program struct {
	paths  [][]step
	truthy bool // the "x.exists() and x != false" form: yields one boolean
	// ctx is where the last path ends, as compilePath tracks it (a type
	// name or, for inline elements, an element path; "" after an
	// unnarrowed choice): the context a composite's component
	// expressions are compiled in.
	ctx string
}

// item is a value reached by a program: a node and its FHIR type.
type item struct {
	n   int32
	typ string
}

// compile compiles expr for resourceType. Alternatives of the union that
// start with another resource type are dropped; the result has no paths if
// none applies.
func (m model) compile(resourceType, expr string) (*program, error) {
	prog := &program{}
	expr = strings.TrimSpace(expr)
	if a, b, ok := strings.Cut(expr, " and "); ok {
		// x.exists() and x != false
		x, ok1 := strings.CutSuffix(strings.TrimSpace(a), ".exists()")
		y, ok2 := strings.CutSuffix(strings.TrimSpace(b), " != false")
		if !ok1 || !ok2 || x != y {
			return nil, fmt.Errorf("unsupported boolean expression %q", expr)
		}
		expr, prog.truthy = x, true
	}
	for _, alt := range splitTop(expr, '|') {
		alt = strings.TrimSpace(alt)
		asType := ""
		if strings.HasPrefix(alt, "(") && strings.HasSuffix(alt, ")") {
			alt = strings.TrimSpace(alt[1 : len(alt)-1])
			if x, t, ok := strings.Cut(alt, " as "); ok {
				alt, asType = strings.TrimSpace(x), strings.TrimSpace(t)
			}
		}
		segs := splitTop(alt, '.')
		head := segs[0]
		switch {
		case head == resourceType || head == "Resource" || head == "DomainResource":
			segs = segs[1:]
		case head != "" && head[0] >= 'A' && head[0] <= 'Z':
			continue // another resource type's alternative
		}
		steps, ctx, err := m.compilePath(resourceType, segs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", alt, err)
		}
		if asType != "" {
			steps, err = narrow(steps, asType)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", alt, err)
			}
			ctx = asType
		}
		prog.paths = append(prog.paths, steps)
		prog.ctx = ctx
	}
	return prog, nil
}

// compilePath compiles the member steps segs from ctx and returns them
// with the context where they end.
func (m model) compilePath(ctx string, segs []string) ([]step, string, error) {
	var steps []step
	var cur element // the element reached, for type narrowing
	for _, seg := range segs {
		if open := strings.IndexByte(seg, '('); open >= 0 {
			fn, arg := seg[:open], strings.TrimSuffix(seg[open+1:], ")")
			s := step{}
			switch fn {
			case "where":
				switch {
				case strings.HasPrefix(arg, "resolve() is "):
					s.filter, s.arg = fResolveIs, strings.TrimPrefix(arg, "resolve() is ")
				case strings.HasPrefix(arg, "hasExtension("):
					s.filter, s.arg = fHasExt, unquote(strings.TrimSuffix(strings.TrimPrefix(arg, "hasExtension("), ")"))
				default:
					f, lit, ok := strings.Cut(arg, "=")
					if !ok || !strings.HasPrefix(strings.TrimSpace(lit), "'") {
						return nil, "", fmt.Errorf("unsupported where(%s)", arg)
					}
					s.filter, s.arg, s.arg2 = fFieldEq, strings.TrimSpace(f), unquote(strings.TrimSpace(lit))
				}
				steps = append(steps, s)
			case "as", "ofType":
				var err error
				if steps, err = narrow(steps, arg); err != nil {
					return nil, "", err
				}
				ctx = arg
			case "extension":
				steps = append(steps, step{name: "extension", typ: "Extension", filter: fExtURL, arg: unquote(arg)})
				ctx = "Extension"
			default:
				return nil, "", fmt.Errorf("unsupported function %s()", fn)
			}
			continue
		}
		el, p, ok := m.lookup(ctx, seg)
		if !ok {
			return nil, "", fmt.Errorf("no element %s.%s", ctx, seg)
		}
		cur = el
		s := step{name: seg, choice: el.choice}
		if el.choice {
			for _, t := range el.types {
				s.choices = append(s.choices, [2]string{typeSuffix(t), t})
			}
			ctx = "" // resolved by narrowing or at the leaf
		} else {
			if len(el.types) > 0 {
				s.typ = el.types[0]
			}
			ctx = childContext(el, p, s.typ)
		}
		steps = append(steps, s)
	}
	_ = cur
	return steps, ctx, nil
}

// narrow restricts the last member step (a choice) to type t.
func narrow(steps []step, t string) ([]step, error) {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].name == "" {
			continue
		}
		s := &steps[i]
		if !s.choice {
			if s.typ == t || s.typ == "Extension" {
				steps = append(steps, step{filter: fAs, arg: t})
				return steps, nil
			}
			return nil, fmt.Errorf("%s is %s, not %s", s.name, s.typ, t)
		}
		for _, c := range s.choices {
			if c[1] == t {
				s.choices = [][2]string{c}
				return steps, nil
			}
		}
		// FHIRPath's own type names (as(DateTime), R4's code-value-date)
		// stand for the FHIR primitive of the same name.
		for _, c := range s.choices {
			if strings.EqualFold(c[1], t) {
				s.choices = [][2]string{c}
				return steps, nil
			}
		}
		return nil, fmt.Errorf("%s has no type %s", s.name, t)
	}
	return nil, fmt.Errorf("nothing to narrow to %s", t)
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	return strings.TrimSuffix(strings.TrimPrefix(s, "'"), "'")
}

// splitTop splits s at sep outside parentheses and quotes.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, quote, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			quote = !quote
		case quote:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// walker holds the two buffers a program's evaluation swaps between.
type walker struct{ a, b []item }

// eval runs prog over d, appending the values reached to out.
func (w *walker) eval(prog *program, d *doc, out []item) []item {
	return w.evalFrom(prog, d, item{n: 0}, out)
}

// evalFrom runs prog from the value start (a composite's base element)
// instead of the root.
func (w *walker) evalFrom(prog *program, d *doc, start item, out []item) []item {
	for _, p := range prog.paths {
		cur := append(w.a[:0], start)
		next := w.b
		for i := range p {
			res := p[i].apply(d, cur, next[:0])
			next, cur = cur, res
			if len(cur) == 0 {
				break
			}
		}
		out = append(out, cur...)
		w.a, w.b = cur, next
	}
	return out
}

// apply runs one step over in, appending the result to out (which must not
// share memory with in).
func (s *step) apply(d *doc, in, out []item) []item {
	if s.name == "" {
		for _, it := range in {
			if s.keep(d, it) {
				out = append(out, it)
			}
		}
		return out
	}
	for _, it := range in {
		n := it.n
		if d.nodes[n].kind != kObject {
			continue
		}
		for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
			key := d.nodes[c].key
			typ := s.typ
			if s.choice {
				if len(key) <= len(s.name) || key[:len(s.name)] != s.name {
					continue
				}
				typ = ""
				for _, ch := range s.choices {
					if key[len(s.name):] == ch[0] {
						typ = ch[1]
						break
					}
				}
				if typ == "" {
					continue
				}
			} else if key != s.name {
				continue
			}
			if d.nodes[c].kind == kArray {
				for e := d.nodes[c].first; e >= 0; e = d.nodes[e].next {
					if s.filter == fNone || s.keep(d, item{e, typ}) {
						out = append(out, item{e, typ})
					}
				}
			} else if s.filter == fNone || s.keep(d, item{c, typ}) {
				out = append(out, item{c, typ})
			}
			if !s.choice {
				break
			}
		}
	}
	return out
}

func (s *step) keep(d *doc, it item) bool {
	switch s.filter {
	case fResolveIs:
		t, _, _ := splitReference(d.text(it.n, "reference"))
		return t == s.arg
	case fFieldEq:
		return d.text(it.n, s.arg) == s.arg2
	case fExtURL:
		return d.text(it.n, "url") == s.arg
	case fHasExt:
		found := false
		d.each(d.child(it.n, "extension"), func(e int32) {
			if d.text(e, "url") == s.arg {
				found = true
			}
		})
		return found
	case fAs:
		if it.typ == "Extension" {
			return extensionValue(d, it.n).typ == s.arg
		}
		return it.typ == s.arg
	}
	return true
}

// extensionValue returns an Extension's value[x].
func extensionValue(d *doc, n int32) item {
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		if k := d.nodes[c].key; len(k) > 5 && k[:5] == "value" {
			t := k[5:]
			if primitiveSuffix[t] {
				t = strings.ToLower(t[:1]) + t[1:]
			}
			return item{c, t}
		}
	}
	return item{n: -1}
}

// primitiveSuffix lists the primitive types, whose names start lower case.
var primitiveSuffix = map[string]bool{"Base64Binary": true, "Boolean": true, "Canonical": true,
	"Code": true, "Date": true, "DateTime": true, "Decimal": true, "Id": true, "Instant": true,
	"Integer": true, "Markdown": true, "Oid": true, "PositiveInt": true, "String": true, "Time": true,
	"UnsignedInt": true, "Uri": true, "Url": true, "Uuid": true}

// splitReference splits a literal reference into type, id and the base URL
// before them ("" for a relative reference). Fragments (#x) and URNs give
// no type.
func splitReference(ref string) (typ, id, base string) {
	if ref == "" || ref[0] == '#' || strings.HasPrefix(ref, "urn:") {
		return "", "", ""
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	j := strings.LastIndexByte(ref, '/')
	if j <= 0 {
		return "", "", ""
	}
	id = ref[j+1:]
	rest := ref[:j]
	k := strings.LastIndexByte(rest, '/')
	typ = rest[k+1:]
	if k >= 0 {
		base = rest[:k]
	}
	if typ == "" || typ[0] < 'A' || typ[0] > 'Z' {
		return "", "", ""
	}
	return typ, id, base
}
