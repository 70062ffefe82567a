// Package search is Signpost's storage-agnostic FHIR search engine: the
// registry of search parameters (data: the official R4 SearchParameter
// definitions plus Signpost's own), the extraction of index entries from a
// resource's JSON at write time, the parsing of a client's search into a
// backend-neutral expression (Query) that each store translates, and an
// in-memory oracle that evaluates the same expressions directly.
//
// Nothing here dispatches on resource names: behaviour follows the
// parameter's type (token, string, date, reference, …) and the element
// types found in the StructureDefinitions.
package search

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configures a Registry.
type Options struct {
	// StructureDefinitions, keyed by type name, give the element types the
	// expressions walk through (conformance.StructureDefinitions()).
	StructureDefinitions map[string]json.RawMessage
	// Terminology holds ValueSets and CodeSystems for :in, :not-in, :above
	// and :below on tokens (conformance.Terminology()).
	Terminology []json.RawMessage
	// ResourceTypes are the searchable types. Empty means every type named
	// in a definition's base.
	ResourceTypes []string
	// Location reads date values without a zone (and date-only values);
	// nil means Europe/London.
	Location *time.Location
	// Base is the server's base URL (e.g. "https://host/fhir"); absolute
	// references under it are indexed and searched as relative ones.
	Base string
	// Pairs are the parameter pairs to index together (see Pair); one
	// whose parameters the registry does not support is an error. nil
	// means DefaultPairs, less those the registry cannot support. Pairs
	// of types the registry lacks are dropped.
	Pairs []Pair
}

// Param is one search parameter as it applies to one resource type.
type Param struct {
	Resource    string // the resource type it applies to
	Code        string // e.g. "start"
	Type        ParamType
	URL         string // the SearchParameter's canonical URL
	Description string
	Expression  string // the part of the definition's expression for Resource
	Targets     []string
	Components  []Component // composite parameters
	// Chain, when not empty, makes the parameter a named chain
	// ("location.near"): it is searched as that chained search, through
	// the reference parameter before the dot, so every store handles it
	// with its chain translation; it has no index entries of its own. A
	// definition says so with the extension ChainExtension.
	Chain string
	// Unsupported, when not empty, says why the parameter can be neither
	// indexed nor searched; such parameters are listed but never applied.
	Unsupported string
	// Derived, when not empty, makes the parameter one over a derived
	// value (see DerivedExtension): the url of the server-owned extension
	// the server keeps beside the resource (store.Deriver) and adds when
	// it serves it. Its entries come from that value (ExtractDerived),
	// never from the stored resource (Extract).
	Derived string

	prog *program
	// For a composite: one compiled form per alternative of the base
	// expression, and the pseudo-parameters its components are indexed
	// and parsed as (Code and Type of each component's definition).
	comp       []compositeAlt
	compParams []*Param
}

// ChainExtension on a SearchParameter definition (valueString, e.g.
// "location.near") defines the parameter as that chained search: Signpost's
// HealthcareService near searches through the service's locations.
const ChainExtension = "https://signpost.example/fhir/StructureDefinition/searchparameter-chain"

// DerivedExtension on a SearchParameter definition (valueCanonical or
// valueUri: an extension's url) defines the parameter as one over that
// extension, a value the server derives for the resource from other
// resources and keeps beside it (a service's waiting time): see
// Param.Derived.
const DerivedExtension = "https://signpost.example/fhir/StructureDefinition/searchparameter-derived"

// Component is one part of a composite parameter: the SearchParameter that
// defines how its values are indexed and searched (Definition, resolved to
// its Code, Type and Targets), and the expression that finds them relative
// to each element the composite's base expression reaches.
type Component struct {
	Definition string
	Expression string
	Code       string    // the component definition's code, e.g. "context-type"
	Type       ParamType // the component definition's type
	Targets    []string  // for a reference component
}

// MaxComponents is the most components a supported composite parameter may
// have (R4's largest composites, MolecularSequence's coordinates, have 3).
const MaxComponents = 3

// definition is the part of a SearchParameter resource the registry reads.
type definition struct {
	URL         string   `json:"url"`
	Code        string   `json:"code"`
	Base        []string `json:"base"`
	Type        string   `json:"type"`
	Description string   `json:"description"`
	Expression  string   `json:"expression"`
	Target      []string `json:"target"`
	Component   []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
	Extension []struct {
		URL            string `json:"url"`
		ValueString    string `json:"valueString"`
		ValueURI       string `json:"valueUri"`
		ValueCanonical string `json:"valueCanonical"`
	} `json:"extension"`
}

// Registry is the set of search parameters of every served type. It is
// built once and read concurrently.
type Registry struct {
	types   map[string]map[string]*Param
	ordered map[string][]*Param // indexable parameters, in code order
	derived map[string][]string // per type, the urls of its parameters' derived extensions, sorted
	pairs   []Pair              // parameters indexed together (Pairs)
	model   model
	loc     *time.Location
	base    string
	terms   *terminology
	// refHeads memoizes, per "type.param" asked of References, the root
	// members its expressions start from ([]step).
	refHeads sync.Map
	// refs remembers References' entries by body, pages Targets' answers
	// by page (refmemo.go).
	refs  *refMemo
	pages *pageMemo
}

// NewRegistry builds a registry from SearchParameter resources (as from
// conformance.SearchParameters()). A later definition with the same code
// on the same type as an earlier one is ignored. Parameters whose
// expression cannot be compiled are kept with Unsupported set.
func NewRegistry(defs []json.RawMessage, opts Options) (*Registry, error) {
	r := &Registry{
		types:   map[string]map[string]*Param{},
		ordered: map[string][]*Param{},
		derived: map[string][]string{},
		loc:     opts.Location,
		base:    strings.TrimSuffix(opts.Base, "/"),
		refs:    newRefMemo(refMemoBudget),
		pages:   newPageMemo(pageMemoBudget),
	}
	if r.loc == nil {
		loc, err := time.LoadLocation("Europe/London")
		if err != nil {
			return nil, fmt.Errorf("search registry: time zone: %w", err)
		}
		r.loc = loc
	}
	var err error
	if r.model, err = newModel(opts.StructureDefinitions); err != nil {
		return nil, fmt.Errorf("search registry: %w", err)
	}
	if r.terms, err = newTerminology(opts.Terminology); err != nil {
		return nil, fmt.Errorf("search registry: %w", err)
	}
	defsParsed := make([]definition, 0, len(defs))
	byURL := map[string]*definition{}
	served := map[string]bool{}
	for _, t := range opts.ResourceTypes {
		served[t] = true
	}
	for i, raw := range defs {
		var d definition
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("search registry: SearchParameter %d: %w", i, err)
		}
		if d.Code == "" || d.Type == "" {
			return nil, fmt.Errorf("search registry: SearchParameter %q has no code or type", d.URL)
		}
		defsParsed = append(defsParsed, d)
		if len(opts.ResourceTypes) == 0 {
			for _, b := range d.Base {
				if b != "Resource" && b != "DomainResource" {
					served[b] = true
				}
			}
		}
	}
	for i := range defsParsed {
		if d := &defsParsed[i]; byURL[d.URL] == nil {
			byURL[d.URL] = d
		}
	}
	for _, d := range defsParsed {
		var bases []string
		for _, b := range d.Base {
			if b == "Resource" || b == "DomainResource" {
				for t := range served {
					bases = append(bases, t)
				}
			} else if served[b] {
				bases = append(bases, b)
			}
		}
		for _, rt := range bases {
			if _, dup := r.types[rt][d.Code]; dup {
				continue
			}
			p := &Param{Resource: rt, Code: d.Code, Type: ParamType(d.Type), URL: d.URL,
				Description: d.Description, Targets: d.Target}
			for _, c := range d.Component {
				p.Components = append(p.Components, Component{Definition: c.Definition, Expression: c.Expression})
			}
			for _, e := range d.Extension {
				switch e.URL {
				case ChainExtension:
					p.Chain = e.ValueString
				case DerivedExtension:
					p.Derived = e.ValueCanonical
					if p.Derived == "" {
						p.Derived = e.ValueURI
					}
				}
			}
			switch {
			case p.Chain != "":
				p.Expression = d.Expression
			case p.Type == Composite:
				r.bindComposite(p, d.Expression, byURL)
			default:
				r.bind(p, d.Expression)
			}
			if r.types[rt] == nil {
				r.types[rt] = map[string]*Param{}
			}
			r.types[rt][d.Code] = p
		}
	}
	for rt, ps := range r.types {
		for _, p := range ps {
			if p.Chain != "" {
				r.checkChain(p)
				continue // searched through the chain; nothing to index
			}
			if p.Derived != "" && p.comp != nil {
				p.Unsupported = "a composite parameter cannot be derived"
			}
			if p.Unsupported == "" {
				r.ordered[rt] = append(r.ordered[rt], p)
				if p.Derived != "" && !slices.Contains(r.derived[rt], p.Derived) {
					r.derived[rt] = append(r.derived[rt], p.Derived)
				}
			}
		}
		sort.Slice(r.ordered[rt], func(i, j int) bool { return r.ordered[rt][i].Code < r.ordered[rt][j].Code })
		slices.Sort(r.derived[rt])
	}
	pairs, strict := opts.Pairs, true
	if pairs == nil {
		pairs, strict = defaultPairs, false
	}
	if err := r.setPairs(pairs, strict); err != nil {
		return nil, err
	}
	return r, nil
}

// checkChain marks a named chain Unsupported unless its head is a
// reference parameter of the type and its tail a parameter of a target.
func (r *Registry) checkChain(p *Param) {
	head, rest, ok := strings.Cut(p.Chain, ".")
	ref := r.types[p.Resource][head]
	if !ok || ref == nil || ref.Type != Reference || ref.Chain != "" {
		p.Unsupported = fmt.Sprintf("chain %q does not start with a reference parameter of %s", p.Chain, p.Resource)
		return
	}
	tail, _, _ := strings.Cut(rest, ".")
	for _, t := range ref.Targets {
		if r.types[t][tail] != nil {
			return
		}
	}
	p.Unsupported = fmt.Sprintf("chain %q: no target of %s has a parameter %q", p.Chain, head, tail)
}

// bind compiles the part of expr that applies to p.Resource.
func (r *Registry) bind(p *Param, expr string) {
	switch {
	case p.Code == "_text" || p.Code == "_content":
		p.Unsupported = "full-text search is not supported"
		return
	case p.Code == "_query" || p.Code == "_filter":
		p.Unsupported = "named queries and _filter are not supported"
		return
	case p.Type == Special && p.Code != "near":
		p.Unsupported = "special parameter without a defined search behaviour"
		return
	case expr == "":
		p.Unsupported = "the definition has no expression"
		return
	}
	prog, err := r.model.compile(p.Resource, expr)
	if err != nil {
		p.Unsupported = "expression not supported: " + err.Error()
		return
	}
	if len(prog.paths) == 0 {
		p.Unsupported = "the expression has no path for " + p.Resource
		return
	}
	var parts []string
	for _, alt := range splitTop(expr, '|') {
		a := strings.TrimSpace(alt)
		head := strings.TrimLeft(a, "(")
		if strings.HasPrefix(head, p.Resource+".") || strings.HasPrefix(head, "Resource.") ||
			strings.HasPrefix(head, "DomainResource.") || (head != "" && head[0] >= 'a' && head[0] <= 'z') {
			parts = append(parts, a)
		}
	}
	p.Expression = strings.Join(parts, " | ")
	p.prog = prog
}

// Lookup returns the parameter code of resourceType ("" for the
// system-level parameters common to all types), or nil.
func (r *Registry) Lookup(resourceType, code string) *Param {
	if resourceType == "" {
		for _, ps := range r.types {
			if p := ps[code]; p != nil && strings.HasPrefix(p.URL, "http://hl7.org/fhir/SearchParameter/Resource-") {
				return p
			}
		}
		return nil
	}
	return r.types[resourceType][code]
}

// Params lists every parameter of resourceType, supported or not, in code
// order: what the CapabilityStatement publishes.
func (r *Registry) Params(resourceType string) []*Param {
	out := make([]*Param, 0, len(r.types[resourceType]))
	for _, p := range r.types[resourceType] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// Types lists the resource types that have parameters, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.types))
	for t := range r.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// DerivedExtensions returns the urls of the derived extensions (see
// Param.Derived) that parameters of resourceType are over, sorted: the
// server-owned values the server keeps beside resources of that type and
// adds when it serves them. The caller must not change the slice.
func (r *Registry) DerivedExtensions(resourceType string) []string { return r.derived[resourceType] }

// Location is the time zone zone-less dates are read in.
func (r *Registry) Location() *time.Location { return r.loc }
