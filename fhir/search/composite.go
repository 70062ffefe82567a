package search

import (
	"fmt"
	"strings"
)

// This file holds composite search parameters end to end: binding a
// definition's components, extracting tuples at write time and parsing
// "token$value" searches. A composite's values are tuples: its base
// expression reaches elements (an Observation, each of its components, each
// useContext), each component expression is evaluated relative to one such
// element, and a search value matches only when every component matches
// within the same element.

// compositeAlt is one alternative of a composite's base expression
// ("Observation | Observation.component" has two), compiled with its
// components relative to where it ends.
type compositeAlt struct {
	base  *program
	parts []*program // one per component
	root  []bool     // the component starts at the resource (%resource.…)
}

// componentTypes are the parameter types a component may have.
var componentTypes = map[ParamType]bool{Token: true, String: true, Date: true, Number: true,
	Quantity: true, Reference: true, URI: true}

// bindComposite resolves p's components against their definitions (byURL)
// and compiles the base expression expr and each component. A composite
// that cannot be bound keeps Unsupported with the reason.
func (r *Registry) bindComposite(p *Param, expr string, byURL map[string]*definition) {
	p.Expression = expr
	fail := func(format string, args ...any) {
		p.Unsupported = "composite: " + fmt.Sprintf(format, args...)
		p.comp, p.compParams = nil, nil
	}
	switch n := len(p.Components); {
	case n < 2:
		fail("%d components; a composite needs at least 2", n)
		return
	case n > MaxComponents:
		fail("%d components; at most %d are supported", n, MaxComponents)
		return
	}
	defs := make([]*definition, len(p.Components))
	for i, c := range p.Components {
		if defs[i] = byURL[c.Definition]; defs[i] == nil {
			fail("component definition %s is not known", c.Definition)
			return
		}
	}
	// The base alternatives that apply to this type.
	var parts []string
	for _, alt := range splitTop(expr, '|') {
		alt = strings.TrimSpace(alt)
		prog, err := r.model.compile(p.Resource, alt)
		if err != nil {
			fail("base expression %s: %v", alt, err)
			return
		}
		if len(prog.paths) == 0 {
			continue // another type's alternative
		}
		if prog.ctx == "" {
			fail("base expression %s ends at a choice of types", alt)
			return
		}
		p.comp = append(p.comp, compositeAlt{base: prog})
		parts = append(parts, alt)
	}
	if len(p.comp) == 0 {
		fail("the expression has no path for %s", p.Resource)
		return
	}
	p.Expression = strings.Join(parts, " | ")
	defs = repairComponentOrder(p, defs, parts[0])
	for i := range p.Components {
		c, d := &p.Components[i], defs[i]
		c.Code, c.Type, c.Targets = d.Code, ParamType(d.Type), d.Target
		if !componentTypes[c.Type] {
			fail("component %s is a %s parameter", d.Code, d.Type)
			return
		}
		p.compParams = append(p.compParams, &Param{Resource: p.Resource, Code: c.Code, Type: c.Type, URL: d.URL, Targets: d.Target})
	}
	for a := range p.comp {
		alt := &p.comp[a]
		for _, c := range p.Components {
			ctx, e, root := alt.base.ctx, c.Expression, false
			if rest, ok := strings.CutPrefix(strings.TrimSpace(e), "%resource."); ok {
				ctx, e, root = p.Resource, rest, true
			}
			prog, err := r.model.compile(ctx, e)
			if err != nil {
				fail("component %s (%s): %v", c.Code, c.Expression, err)
				return
			}
			if len(prog.paths) == 0 || prog.truthy {
				fail("component %s (%s) has no path from %s", c.Code, c.Expression, ctx)
				return
			}
			alt.parts = append(alt.parts, prog)
			alt.root = append(alt.root, root)
		}
	}
}

// repairComponentOrder returns the component definitions in the order of
// p's component expressions. R4's DocumentReference relationship pairs its
// definitions with each other's expressions (relatesto, a reference, with
// "code"; relation, a token, with "target"): when every component
// expression is exactly the expression of another component's definition
// under base, those definitions are used instead, so that each value is
// indexed as what it is. Otherwise defs is returned unchanged.
func repairComponentOrder(p *Param, defs []*definition, base string) []*definition {
	out := make([]*definition, len(defs))
	used := make([]bool, len(defs))
	same := true
	for i, c := range p.Components {
		want := base + "." + strings.TrimSpace(c.Expression)
		found := -1
		for j, d := range defs {
			if !used[j] && strings.TrimSpace(d.Expression) == want {
				found = j
				break
			}
		}
		if found < 0 {
			return defs
		}
		used[found], out[i] = true, defs[found]
		same = same && found == i
	}
	if same {
		return defs
	}
	for i := range p.Components {
		p.Components[i].Definition = out[i].URL
	}
	return out
}

// indexComposite appends the composite entries of p: one per base element
// and combination of its component values.
func (r *Registry) indexComposite(out []Entry, p *Param, x *extraction) []Entry {
	vals := make([][]Entry, len(p.compParams))
	for a := range p.comp {
		alt := &p.comp[a]
		x.items = x.w.eval(alt.base, &x.d, x.items[:0])
		for _, base := range x.items {
			complete := true
			for i, part := range alt.parts {
				start := base
				if alt.root[i] {
					start = item{n: 0}
				}
				x.sub = x.w.evalFrom(part, &x.d, start, x.sub[:0])
				cp := p.compParams[i]
				vals[i] = vals[i][:0]
				for _, it := range x.sub {
					vals[i] = r.index(vals[i], cp, &x.d, it)
				}
				// Keep the component's own values (not :identifier or
				// :of-type companions).
				kept := vals[i][:0]
				for _, e := range vals[i] {
					if e.Param == cp.Code {
						kept = append(kept, e)
					}
				}
				if vals[i] = kept; len(kept) == 0 {
					complete = false
					break
				}
			}
			if complete {
				out = appendTuples(out, p.Code, vals)
			}
		}
	}
	return out
}

// appendTuples appends one composite entry per combination of vals.
func appendTuples(out []Entry, code string, vals [][]Entry) []Entry {
	idx := make([]int, len(vals))
	for {
		comps := make([]Entry, len(vals))
		for i, j := range idx {
			comps[i] = vals[i][j]
		}
		out = append(out, Entry{Param: code, Type: Composite, Components: comps})
		k := len(idx) - 1
		for ; k >= 0; k-- {
			if idx[k]++; idx[k] < len(vals[k]) {
				break
			}
			idx[k] = 0
		}
		if k < 0 {
			return out
		}
	}
}

// composite parses one composite value: the component values separated by
// unescaped '$', each parsed as its component's type (prefixes and units
// as that type takes them; no modifiers).
func (p *parser) composite(par *Param, mod, v string) (Expr, error) {
	if mod != "" {
		return nil, badModifier(par, mod)
	}
	parts := splitEscaped(v, '$')
	if len(parts) != len(par.compParams) {
		codes := make([]string, len(par.compParams))
		for i, c := range par.compParams {
			codes[i] = c.Code
		}
		return nil, fmt.Errorf("%s takes %d values separated by $ (%s), not %d in %q",
			par.Code, len(codes), strings.Join(codes, "$"), len(parts), v)
	}
	m := CompositeMatch{Param: par.Code, Components: make([]Expr, len(parts))}
	for i, part := range parts {
		cp := par.compParams[i]
		if part == "" {
			return nil, fmt.Errorf("%s: component %d (%s) is empty in %q", par.Code, i+1, cp.Code, v)
		}
		var e Expr
		var err error
		switch cp.Type {
		case Token:
			e, _, err = p.token(cp, "", part)
		case String:
			e, err = p.str(cp, "", part)
		case Date:
			e, err = p.date(cp, "", part)
		case Number, Quantity:
			e, err = p.number(cp, "", part)
		case Reference:
			e, err = p.reference(cp, "", part)
		case URI:
			e, err = p.uri(cp, "", part)
		default:
			err = fmt.Errorf("%s components are not supported", cp.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: component %d (%s): %v", par.Code, i+1, cp.Code, err)
		}
		m.Components[i] = e
	}
	return m, nil
}
