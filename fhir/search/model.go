package search

import (
	"encoding/json"
	"fmt"
	"strings"
)

// element is what the type model knows about one element path: its types
// (more than one for a choice element) and, for an element defined by
// reference to another (Questionnaire.item.item), the path it repeats.
type element struct {
	types  []string // FHIR type codes: "Reference", "dateTime", "BackboneElement"…
	choice bool     // a value[x] element: JSON names carry the type as suffix
	ref    string   // contentReference target path, without '#'
}

// model is the element table of the StructureDefinitions, keyed by element
// path without "[x]" ("Slot.start", "Patient.deceased", "HumanName.family").
type model map[string]element

func newModel(sds map[string]json.RawMessage) (model, error) {
	m := model{}
	for name, raw := range sds {
		var sd struct {
			Snapshot struct {
				Element []struct {
					Path             string `json:"path"`
					ContentReference string `json:"contentReference"`
					Type             []struct {
						Code string `json:"code"`
					} `json:"type"`
				} `json:"element"`
			} `json:"snapshot"`
		}
		if err := json.Unmarshal(raw, &sd); err != nil {
			return nil, fmt.Errorf("StructureDefinition %s: %w", name, err)
		}
		for _, e := range sd.Snapshot.Element {
			p := e.Path
			var el element
			if strings.HasSuffix(p, "[x]") {
				p = strings.TrimSuffix(p, "[x]")
				el.choice = true
			}
			for _, t := range e.Type {
				code := t.Code
				if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
					code = "string" // id, extension url and the like
				}
				el.types = append(el.types, code)
			}
			el.ref = strings.TrimPrefix(e.ContentReference, "#")
			m[p] = el
		}
	}
	// Elements every resource has, whether or not Resource's own
	// StructureDefinition is loaded.
	for p, t := range map[string]string{"Resource.id": "id", "Resource.meta": "Meta",
		"Resource.implicitRules": "uri", "Resource.language": "code", "DomainResource.text": "Narrative",
		"Resource.extension": "Extension"} {
		if _, ok := m[p]; !ok {
			m[p] = element{types: []string{t}}
		}
	}
	return m, nil
}

// lookup finds child name of the element at ctx (a path or a type name).
// It returns the element and the path of the child.
func (m model) lookup(ctx, name string) (element, string, bool) {
	p := ctx + "." + name
	if el, ok := m[p]; ok {
		return el, p, true
	}
	// Resources inherit Resource's and DomainResource's elements.
	if !strings.Contains(ctx, ".") {
		for _, base := range []string{"Resource", "DomainResource"} {
			if el, ok := m[base+"."+name]; ok {
				return el, base + "." + name, true
			}
		}
	}
	// Every element may have extensions.
	if name == "extension" || name == "modifierExtension" {
		return element{types: []string{"Extension"}}, "Extension", true
	}
	return element{}, "", false
}

// childContext is the context for steps below an element of type typ found
// at path: the path itself for inline (backbone) elements, else the type.
func childContext(el element, path, typ string) string {
	if el.ref != "" {
		return el.ref
	}
	switch typ {
	case "BackboneElement", "Element", "":
		return path
	}
	return typ
}

// typeSuffix is how a type appears at the end of a choice element's JSON
// name: valueDateTime, valueCodeableConcept.
func typeSuffix(t string) string {
	if t == "" {
		return t
	}
	return strings.ToUpper(t[:1]) + t[1:]
}
