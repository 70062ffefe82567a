// Package validation checks FHIR R4 resources in JSON against the base
// StructureDefinitions and the terminology behind their required bindings.
//
// New compiles the definitions once into a tree of types (element name →
// cardinality, type, binding, reference targets); Validate decodes a resource
// once and walks it against that tree, reporting every problem it finds, each
// as one fhir.Issue whose Expression is the FHIRPath location with indexes
// (Patient.name[0].given[1]). Nothing is hand-written per resource type except
// a few invariants, keyed by their constraint key. Issues come in a stable
// order: within each object, by member name (descending into each member),
// then missing required elements, then broken invariants.
//
// The IssueType codes used:
//
//	structure     malformed JSON; not an object; unknown element; wrong JSON
//	              type; an array where one value is allowed or one value where
//	              an array is required; too many values; null, {} or [];
//	              two variants of one choice element
//	required      a missing element with min ≥ 1 (or a missing resourceType)
//	value         a primitive that breaks its type's rules (regex, calendar,
//	              range, empty or blank string); a badly formed reference
//	code-invalid  a code outside a required binding's ValueSet
//	invalid       an unknown resource type; a reference to a type the element
//	              does not allow
//	not-supported a known R4 resource type with no StructureDefinition here
//	invariant     a constraint (e.g. app-3, per-1, ref-1, dom-2) is broken
//
// Not checked: extensible and weaker bindings, ValueSets that cannot be
// enumerated offline (e.g. MIME types), profiles (meta.profile), the content
// of extensions beyond their structure, duplicate JSON member names (see
// fhir.ParseObject), and constraints without a hand-coded check.
package validation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/signpost-fhir/signpost/fhir"
)

// Validator validates resources against compiled StructureDefinitions. It is
// immutable after New and safe for concurrent use.
type Validator struct {
	types    map[string]*typeDef // every type by name
	r4Types  map[string]bool     // every R4 resource type name, with an SD or not
	resource *node               // a pseudo element of type Resource, for the root
}

// New compiles StructureDefinitions (keyed by type name, as returned by
// conformance.StructureDefinitions) and the terminology behind required
// bindings (ValueSets and CodeSystems, as returned by
// conformance.Terminology) into a Validator.
func New(structureDefs map[string]json.RawMessage, terminology []json.RawMessage) (*Validator, error) {
	sets, systems, err := loadTerminology(terminology)
	if err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	c := &compiler{
		sds:    map[string]*sdJSON{},
		types:  map[string]*typeDef{},
		inline: map[string]*typeDef{},
		vs:     sets,
	}
	if err := c.compile(structureDefs); err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	for _, own := range ownInvariants {
		if td := c.types[own.typ]; td != nil {
			td.checks = append(td.checks, own.inv)
		}
	}
	v := &Validator{types: c.types, r4Types: map[string]bool{}}
	for _, t := range systems["http://hl7.org/fhir/resource-types"] {
		v.r4Types[t] = true
	}
	for name, td := range c.types {
		if td.resource {
			v.r4Types[name] = true
		}
	}
	v.resource = &node{path: "Resource", typ: c.types["Resource"]}
	return v, nil
}

// Validate checks one resource given as JSON, its type taken from its
// resourceType, and returns every problem found; none means it is valid.
func (v *Validator) Validate(raw []byte) []fhir.Issue {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return []fhir.Issue{{Severity: "error", Code: "structure", Diagnostics: "the resource is not valid JSON: " + err.Error()}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return []fhir.Issue{{Severity: "error", Code: "structure", Diagnostics: "the resource is not valid JSON: unexpected content after the top-level value"}}
	}
	w := walker{v: v}
	w.resource(doc, nil, true)
	return w.issues
}

// Check validates raw like Validate and returns the problems as one
// *fhir.Error of kind Invalid, or nil. op names the operation for the error
// (e.g. "create Slot").
func (v *Validator) Check(op string, raw []byte) error {
	issues := v.Validate(raw)
	if len(issues) == 0 {
		return nil
	}
	return &fhir.Error{Kind: fhir.Invalid, Op: op, Issues: issues}
}

// loc is a FHIRPath location, built only when a problem is reported.
type loc struct {
	parent *loc
	name   string
	index  int // -1 when the step has no index
}

func (l *loc) String() string {
	if l == nil {
		return ""
	}
	var steps []*loc
	for s := l; s != nil; s = s.parent {
		steps = append(steps, s)
	}
	var b strings.Builder
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		if s.name != "" {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.name)
		}
		if s.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// walker carries the state of one Validate call.
type walker struct {
	v      *Validator
	issues []fhir.Issue
	keys   []string // a stack of member names, shared by nested objects
	// contained maps the ids of the current root resource's contained
	// resources to their types, for "#id" references.
	contained map[string]string
}

func (w *walker) report(code string, at *loc, format string, args ...any) {
	path := at.String()
	msg := fmt.Sprintf(format, args...)
	is := fhir.Issue{Severity: "error", Code: code, Diagnostics: msg}
	if path != "" {
		is.Expression = []string{path}
		is.Diagnostics = path + ": " + msg
	}
	w.issues = append(w.issues, is)
}

// resource validates a resource at at (nil for the top level). root marks a
// resource whose contained resources and references form their own scope:
// the top level and each Bundle entry.
func (w *walker) resource(v any, at *loc, root bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		w.report("structure", at, "a resource must be a JSON object, got %s", describe(v))
		return
	}
	rt, present := obj["resourceType"]
	name, isString := rt.(string)
	switch {
	case !present:
		w.report("required", at, "resourceType is missing")
		return
	case !isString:
		w.report("structure", at, "resourceType must be a string, got %s", describe(rt))
		return
	}
	td := w.v.types[name]
	if td == nil || !td.resource {
		switch {
		case !w.v.r4Types[name] || name == "Resource" || name == "DomainResource":
			w.report("invalid", at, "unknown resource type %s", quote(name))
		case at == nil:
			w.report("not-supported", at, "resource type %s is not supported", quote(name))
		}
		// A contained or bundled resource of an R4 type without a
		// StructureDefinition here is accepted unchecked.
		return
	}
	if at == nil {
		at = &loc{name: name, index: -1}
	}
	if root {
		saved := w.contained
		w.contained = containedIDs(obj)
		defer func() { w.contained = saved }()
	}
	w.object(obj, td, at, true)
}

// containedIDs maps the ids of a resource's contained resources to their types.
func containedIDs(obj map[string]any) map[string]string {
	list, _ := obj["contained"].([]any)
	if len(list) == 0 {
		return nil
	}
	ids := make(map[string]string, len(list))
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			id, _ := m["id"].(string)
			rt, _ := m["resourceType"].(string)
			if id != "" {
				ids[id] = rt
			}
		}
	}
	return ids
}

// object validates the members of a JSON object against a complex type.
func (w *walker) object(obj map[string]any, td *typeDef, at *loc, isResource bool) {
	if len(obj) == 0 {
		w.report("structure", at, "empty object is not allowed")
		return
	}
	start := len(w.keys)
	for k := range obj {
		w.keys = append(w.keys, k)
	}
	keys := w.keys[start:]
	slices.Sort(keys)
	var choices []*node // the choice variants seen so far
	for _, key := range keys {
		if isResource && key == "resourceType" {
			continue
		}
		name, ext := key, false
		if key != "" && key[0] == '_' {
			name, ext = key[1:], true
		}
		n := td.children[name]
		if n == nil || ext && n.typ.kind != primitiveType {
			w.report("structure", &loc{parent: at, name: key, index: -1}, "unknown element %s", quote(key))
			continue
		}
		var val, extVal any
		var hasVal, hasExt bool
		if ext {
			if _, both := obj[name]; both {
				continue // handled with its value
			}
			extVal, hasExt = obj[key], true
		} else {
			val, hasVal = obj[name], true
			if n.typ.kind == primitiveType {
				extVal, hasExt = obj["_"+name]
			}
		}
		if n.choice != "" {
			for _, c := range choices {
				if c.choice == n.choice && c != n {
					w.report("structure", &loc{parent: at, name: key, index: -1},
						"only one of %s[x] may be present, found %s and %s", n.choice, c.name, n.name)
				}
			}
			choices = append(choices, n)
		}
		w.element(n, val, hasVal, extVal, hasExt, &loc{parent: at, name: name, index: -1})
	}
	w.keys = w.keys[:start]

	for _, r := range td.required {
		if !present(obj, r) {
			w.report("required", &loc{parent: at, name: r.name, index: -1}, "required element is missing (min %d)", r.min)
		}
	}
	if isResource && at.name == "contained" {
		if _, nested := obj["contained"]; nested {
			w.report("invariant", &loc{parent: at, name: "contained", index: -1},
				"dom-2: a contained resource must not contain resources")
		}
	}
	for _, inv := range td.checks {
		if !inv.check(obj) {
			w.report("invariant", at, "%s: %s", inv.key, inv.human)
		}
	}
}

func present(obj map[string]any, r *node) bool {
	if r.choiceVars == nil {
		_, v := obj[r.name]
		_, x := obj["_"+r.name]
		return v || x
	}
	for _, c := range r.choiceVars {
		if present(obj, c) {
			return true
		}
	}
	return false
}

// element validates the value of one member (and its _name sibling for a
// primitive) against its element definition. hasVal and hasExt say which of
// the two members are present.
func (w *walker) element(n *node, val any, hasVal bool, extVal any, hasExt bool, at *loc) {
	if hasExt && extVal == nil {
		w.report("structure", &loc{parent: at.parent, name: "_" + at.name, index: -1}, "null is not allowed")
		hasExt = false
		if !hasVal {
			return
		}
	}
	if !n.array {
		if _, isArray := val.([]any); isArray {
			w.report("structure", at, "allows one value, got an array")
			return
		}
		if _, isArray := extVal.([]any); isArray {
			w.report("structure", &loc{parent: at.parent, name: "_" + at.name, index: -1}, "allows one value, got an array")
			return
		}
		w.item(n, val, hasVal, extVal, hasExt, at)
		return
	}
	var vals, exts []any
	if hasVal {
		list, ok := val.([]any)
		if !ok {
			w.report("structure", at, "must be an array, got %s", describe(val))
			return
		}
		vals = list
	}
	if hasExt {
		list, ok := extVal.([]any)
		if !ok {
			w.report("structure", &loc{parent: at.parent, name: "_" + at.name, index: -1}, "must be an array, got %s", describe(extVal))
			return
		}
		exts = list
		if hasVal && len(exts) != len(vals) {
			w.report("structure", &loc{parent: at.parent, name: "_" + at.name, index: -1},
				"_%s must have as many entries as %s (%d), got %d", at.name, at.name, len(vals), len(exts))
			return
		}
	}
	count := max(len(vals), len(exts))
	if count == 0 {
		w.report("structure", at, "empty array is not allowed")
		return
	}
	if n.max >= 0 && count > n.max {
		w.report("structure", at, "allows at most %d values, got %d", n.max, count)
	}
	if count < n.min {
		w.report("required", at, "needs at least %d values, got %d", n.min, count)
	}
	for i := range count {
		var v, x any
		if i < len(vals) {
			v = vals[i]
		}
		if i < len(exts) {
			x = exts[i]
		}
		at := &loc{parent: at.parent, name: at.name, index: i}
		if v == nil && x == nil {
			w.report("structure", at, "null is not allowed")
			continue
		}
		w.item(n, v, v != nil, x, x != nil, at)
	}
}

// item validates one value of an element. hasVal is false when the value is
// absent and only a _name extension object stands for it.
func (w *walker) item(n *node, v any, hasVal bool, x any, hasExt bool, at *loc) {
	td := n.typ
	if hasVal && v == nil {
		w.report("structure", at, "null is not allowed")
		return
	}
	switch td.kind {
	case primitiveType:
		if hasVal {
			if code, problem := checkPrimitive(td, v, n.maxLength); problem != "" {
				w.report(code, at, "%s", problem)
			} else if n.binding != nil {
				if s, ok := v.(string); ok && !n.binding.codes[s] {
					w.report("code-invalid", at, "%s is not in the required value set %s (%s)",
						quote(s), n.binding.url, strings.Join(n.binding.list, " | "))
				}
			}
		}
		if hasExt {
			m, ok := x.(map[string]any)
			if !ok {
				w.report("structure", at, "the extension object _%s must be a JSON object, got %s", at.name, describe(x))
				return
			}
			w.object(m, td, at, false)
		}
	case resourceType:
		// Contained resources share their container's scope; any other
		// resource (a Bundle entry) has its own.
		w.resource(v, at, n.name != "contained")
	default:
		m, ok := v.(map[string]any)
		if !ok {
			w.report("structure", at, "expected an object (%s), got %s", td.name, describe(v))
			return
		}
		w.object(m, td, at, false)
		if td.name == "Reference" {
			w.reference(n, m, at)
		}
	}
}

// describe names the JSON type of a value for a diagnostic.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + quote(x)
	case json.Number:
		return "number " + string(x)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
