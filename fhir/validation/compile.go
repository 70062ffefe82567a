package validation

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// kind says how a type is represented in JSON and walked.
type kind int

const (
	complexType   kind = iota // a JSON object with the type's elements
	primitiveType             // a JSON string, number or boolean, plus an optional _name object
	resourceType              // any resource, dispatched on its resourceType (Resource, DomainResource)
)

// jsonKind is the JSON representation of a primitive value.
type jsonKind int

const (
	jsonString jsonKind = iota
	jsonNumber
	jsonBool
)

func (k jsonKind) String() string {
	switch k {
	case jsonNumber:
		return "a number"
	case jsonBool:
		return "a boolean"
	}
	return "a string"
}

// typeDef is a compiled type: a datatype, a resource, or the inline type of a
// BackboneElement path (e.g. Appointment.participant).
type typeDef struct {
	name     string // the FHIR type name, or the element path of an inline type
	kind     kind
	resource bool             // a resource type (kind complexType with resourceType member)
	children map[string]*node // JSON member name → element; choice variants appear by full name
	required []*node          // elements with min ≥ 1 (one entry per choice group)
	prim     *primitive       // for primitiveType
	checks   []invariant      // hand-coded constraints attached from the SD
}

// node is one element of a type, as found under its JSON member name.
type node struct {
	path       string // the SD path, e.g. "Slot.status" or "Extension.value[x]"
	name       string // the JSON member name, e.g. "status" or "valueString"
	choice     string // for a choice variant, the group name without [x] (e.g. "value")
	min        int
	max        int // -1 is unbounded
	array      bool
	typ        *typeDef
	binding    *valueSet       // a checkable required binding, or nil
	targets    map[string]bool // allowed reference target types; nil means any
	maxLength  int             // for strings; 0 is the primitive's default
	choiceVars []*node         // for the required entry of a choice group: every variant
}

// primitive holds the rules of a primitive type from its SD's value element.
type primitive struct {
	json     jsonKind
	regex    *regexp.Regexp
	min, max *int64 // integer ranges
	// calendar marks date, dateTime and instant, whose day must exist in its month.
	calendar bool
}

type sdJSON struct {
	URL            string `json:"url"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	BaseDefinition string `json:"baseDefinition"`
	Snapshot       struct {
		Element []elemJSON `json:"element"`
	} `json:"snapshot"`
}

type elemJSON struct {
	Path             string `json:"path"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	MaxLength        int    `json:"maxLength"`
	MinValueInteger  *int64 `json:"minValueInteger"`
	MaxValueInteger  *int64 `json:"maxValueInteger"`
	Base             struct {
		Max string `json:"max"`
	} `json:"base"`
	Type []struct {
		Code          string          `json:"code"`
		TargetProfile []string        `json:"targetProfile"`
		Extension     []extensionJSON `json:"extension"`
	} `json:"type"`
	Binding *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
	Constraint []struct {
		Key   string `json:"key"`
		Human string `json:"human"`
	} `json:"constraint"`
}

type extensionJSON struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl"`
	ValueString string `json:"valueString"`
}

const (
	extFHIRType = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	extRegex    = "http://hl7.org/fhir/StructureDefinition/regex"
	systemType  = "http://hl7.org/fhirpath/System."
	sdBase      = "http://hl7.org/fhir/StructureDefinition/"
)

// compiler turns StructureDefinitions into typeDefs.
type compiler struct {
	sds    map[string]*sdJSON
	types  map[string]*typeDef
	inline map[string]*typeDef // element path → inline (backbone) type, for contentReference
	vs     map[string]*valueSet
	crefs  []cref
}

type cref struct {
	n    *node
	path string
}

func (c *compiler) compile(defs map[string]json.RawMessage) error {
	names := make([]string, 0, len(defs))
	for name, raw := range defs {
		sd := new(sdJSON)
		if err := json.Unmarshal(raw, sd); err != nil {
			return fmt.Errorf("StructureDefinition %s: %w", name, err)
		}
		if sd.Type == "" {
			sd.Type = name
		}
		c.sds[sd.Type] = sd
		names = append(names, sd.Type)
		td := &typeDef{name: sd.Type, children: map[string]*node{}}
		switch sd.Kind {
		case "primitive-type":
			td.kind = primitiveType
		case "resource":
			td.resource = true
		}
		c.types[sd.Type] = td
	}
	// The abstract bases are not needed as SDs: their elements are in every
	// snapshot; as element types they mean "any resource".
	for _, name := range []string{"Resource", "DomainResource"} {
		if _, ok := c.types[name]; !ok {
			c.types[name] = &typeDef{name: name, kind: resourceType}
		}
	}
	sort.Strings(names) // deterministic compilation and errors
	for _, name := range names {
		if err := c.compileSD(c.sds[name]); err != nil {
			return fmt.Errorf("StructureDefinition %s: %w", name, err)
		}
	}
	for _, r := range c.crefs {
		td := c.inline[r.path]
		if td == nil {
			return fmt.Errorf("element %s: contentReference #%s not found", r.n.path, r.path)
		}
		r.n.typ = td
	}
	for _, name := range names {
		if c.types[name].kind == primitiveType {
			if err := c.compilePrimitive(c.sds[name]); err != nil {
				return fmt.Errorf("StructureDefinition %s: %w", name, err)
			}
		}
	}
	return nil
}

func (c *compiler) compileSD(sd *sdJSON) error {
	root := c.types[sd.Type]
	owner := map[string]*typeDef{sd.Type: root} // element path → the type holding its children
	for i := range sd.Snapshot.Element {
		e := &sd.Snapshot.Element[i]
		if e.Path == sd.Type {
			c.attachChecks(root, e)
			continue
		}
		dot := strings.LastIndexByte(e.Path, '.')
		parent := owner[e.Path[:dot]]
		if parent == nil {
			return fmt.Errorf("element %s: parent is not a backbone element", e.Path)
		}
		name := e.Path[dot+1:]
		if root.kind == primitiveType && name == "value" {
			continue // the JSON value itself; its rules are read by compilePrimitive
		}
		if e.Max == "0" {
			continue // prohibited: leaving it out makes it unknown
		}
		proto := node{path: e.Path, min: e.Min, max: parseMax(e.Max), maxLength: e.MaxLength}
		baseMax := e.Base.Max
		if baseMax == "" {
			baseMax = e.Max
		}
		proto.array = baseMax != "1"
		if e.Binding != nil && e.Binding.Strength == "required" {
			proto.binding = c.vs[strings.SplitN(e.Binding.ValueSet, "|", 2)[0]]
		}
		if e.ContentReference != "" {
			n := proto
			n.name = name
			c.crefs = append(c.crefs, cref{&n, strings.TrimPrefix(e.ContentReference, "#")})
			parent.children[name] = &n
			if n.min > 0 {
				parent.required = append(parent.required, &n)
			}
			continue
		}
		if len(e.Type) == 0 {
			return fmt.Errorf("element %s has no type", e.Path)
		}
		if base, ok := strings.CutSuffix(name, "[x]"); ok {
			group := proto
			group.name = name
			for _, t := range e.Type {
				td, err := c.typeOf(sd, e, t.Code, t.Extension)
				if err != nil {
					return err
				}
				v := proto
				v.name = base + strings.ToUpper(t.Code[:1]) + t.Code[1:]
				v.choice = base
				v.typ = td
				v.targets = targets(t.TargetProfile)
				parent.children[v.name] = &v
				group.choiceVars = append(group.choiceVars, &v)
			}
			if group.min > 0 {
				parent.required = append(parent.required, &group)
			}
			continue
		}
		if len(e.Type) > 1 {
			return fmt.Errorf("element %s has several types but is not a choice", e.Path)
		}
		t := e.Type[0]
		n := proto
		n.name = name
		n.targets = targets(t.TargetProfile)
		if t.Code == "BackboneElement" || t.Code == "Element" && sd.Type != "Element" && hasChildren(sd, e.Path) {
			td := &typeDef{name: e.Path, children: map[string]*node{}}
			c.inline[e.Path] = td
			owner[e.Path] = td
			n.typ = td
		} else {
			td, err := c.typeOf(sd, e, t.Code, t.Extension)
			if err != nil {
				return err
			}
			n.typ = td
		}
		c.attachChecks(n.typ, e)
		parent.children[name] = &n
		if n.min > 0 {
			parent.required = append(parent.required, &n)
		}
	}
	return nil
}

// typeOf resolves an element type code to its compiled type.
func (c *compiler) typeOf(sd *sdJSON, e *elemJSON, code string, exts []extensionJSON) (*typeDef, error) {
	if strings.HasPrefix(code, systemType) {
		// FHIRPath system types stand for a FHIR primitive named by an extension.
		code = ""
		for _, x := range exts {
			if x.URL == extFHIRType {
				code = x.ValueURL
			}
		}
		if code == "" {
			code = "string"
		}
		// R4 4.0.1 types Resource.id as string in snapshots, but the
		// specification (and every server) requires an id: a resource's own id
		// is validated as one.
		if sd.Kind == "resource" && e.Path == sd.Type+".id" {
			code = "id"
		}
	}
	td := c.types[code]
	if td == nil {
		return nil, fmt.Errorf("element %s: type %q has no StructureDefinition", e.Path, code)
	}
	return td, nil
}

func (c *compiler) compilePrimitive(sd *sdJSON) error {
	p := &primitive{}
	c.types[sd.Type].prim = p
	var rx string
	for cur := sd; cur != nil; cur = c.sds[strings.TrimPrefix(cur.BaseDefinition, sdBase)] {
		val := valueElement(cur)
		if val == nil {
			break
		}
		if rx == "" {
			for _, t := range val.Type {
				for _, x := range t.Extension {
					if x.URL == extRegex {
						rx = x.ValueString
					}
				}
			}
		}
		if p.min == nil {
			p.min = val.MinValueInteger
		}
		if p.max == nil {
			p.max = val.MaxValueInteger
		}
		if p.json == jsonString && len(val.Type) > 0 {
			switch strings.TrimPrefix(val.Type[0].Code, systemType) {
			case "Boolean":
				p.json = jsonBool
			case "Integer", "Decimal":
				p.json = jsonNumber
			}
		}
	}
	switch sd.Type {
	case "date", "dateTime", "instant":
		p.calendar = true
	}
	if rx != "" {
		re, err := regexp.Compile("^(?:" + rx + ")$")
		if err != nil {
			return fmt.Errorf("regex %q: %w", rx, err)
		}
		p.regex = re
	}
	return nil
}

func valueElement(sd *sdJSON) *elemJSON {
	for i := range sd.Snapshot.Element {
		if sd.Snapshot.Element[i].Path == sd.Type+".value" {
			return &sd.Snapshot.Element[i]
		}
	}
	return nil
}

// attachChecks adds the hand-coded invariants for the constraints an element
// declares to the type that holds them.
func (c *compiler) attachChecks(td *typeDef, e *elemJSON) {
	for _, con := range e.Constraint {
		fn := invariants[con.Key]
		if fn == nil {
			continue
		}
		dup := false
		for _, have := range td.checks {
			dup = dup || have.key == con.Key
		}
		if !dup {
			td.checks = append(td.checks, invariant{key: con.Key, human: con.Human, check: fn})
		}
	}
}

func hasChildren(sd *sdJSON, path string) bool {
	prefix := path + "."
	for _, e := range sd.Snapshot.Element {
		if strings.HasPrefix(e.Path, prefix) {
			return true
		}
	}
	return false
}

func parseMax(s string) int {
	if s == "*" {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// targets returns the resource types a Reference may point to, or nil for
// any (no profile, or Resource).
func targets(profiles []string) map[string]bool {
	if len(profiles) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, p := range profiles {
		t := strings.TrimPrefix(p, sdBase)
		if t == "Resource" || t == "DomainResource" {
			return nil
		}
		out[t] = true
	}
	return out
}
