package search

import (
	"encoding/json"
	"fmt"
)

// Coding is a (system, code) pair, as a ValueSet expansion lists them.
type Coding struct {
	System string
	Code   string
}

// terminology holds the local ValueSets (expanded) and CodeSystem
// hierarchies behind :in, :not-in, :above and :below.
type terminology struct {
	valueSets map[string][]Coding
	parents   map[Coding][]string // code → its parents, per system
	children  map[Coding][]string
}

func newTerminology(raws []json.RawMessage) (*terminology, error) {
	t := &terminology{valueSets: map[string][]Coding{}, parents: map[Coding][]string{}, children: map[Coding][]string{}}
	type concept struct {
		Code    string            `json:"code"`
		Concept []json.RawMessage `json:"concept"`
	}
	codes := map[string][]string{} // system → all codes
	var walk func(system, parent string, raws []json.RawMessage) error
	walk = func(system, parent string, raws []json.RawMessage) error {
		for _, raw := range raws {
			var c concept
			if err := json.Unmarshal(raw, &c); err != nil {
				return err
			}
			codes[system] = append(codes[system], c.Code)
			if parent != "" {
				t.parents[Coding{system, c.Code}] = append(t.parents[Coding{system, c.Code}], parent)
				t.children[Coding{system, parent}] = append(t.children[Coding{system, parent}], c.Code)
			}
			if err := walk(system, c.Code, c.Concept); err != nil {
				return err
			}
		}
		return nil
	}
	type valueSet struct {
		URL     string `json:"url"`
		Compose struct {
			Include []struct {
				System  string `json:"system"`
				Concept []struct {
					Code string `json:"code"`
				} `json:"concept"`
				Filter []json.RawMessage `json:"filter"`
			} `json:"include"`
		} `json:"compose"`
	}
	var sets []valueSet
	for _, raw := range raws {
		var head struct {
			ResourceType string            `json:"resourceType"`
			URL          string            `json:"url"`
			Concept      []json.RawMessage `json:"concept"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("terminology: %w", err)
		}
		switch head.ResourceType {
		case "CodeSystem":
			if err := walk(head.URL, "", head.Concept); err != nil {
				return nil, fmt.Errorf("terminology: CodeSystem %s: %w", head.URL, err)
			}
		case "ValueSet":
			var vs valueSet
			if err := json.Unmarshal(raw, &vs); err != nil {
				return nil, fmt.Errorf("terminology: ValueSet %s: %w", head.URL, err)
			}
			sets = append(sets, vs)
		}
	}
	for _, vs := range sets {
		var out []Coding
		for _, inc := range vs.Compose.Include {
			if len(inc.Filter) > 0 {
				continue // filters need a terminology server
			}
			if len(inc.Concept) == 0 {
				for _, c := range codes[inc.System] {
					out = append(out, Coding{inc.System, c})
				}
				continue
			}
			for _, c := range inc.Concept {
				out = append(out, Coding{inc.System, c.Code})
			}
		}
		t.valueSets[vs.URL] = out
	}
	return t, nil
}

// expand returns the codes of a local ValueSet; ok is false if unknown.
func (t *terminology) expand(url string) ([]Coding, bool) {
	cs, ok := t.valueSets[url]
	return cs, ok
}

// closure returns code and its descendants (below) or ancestors (above)
// in system; ok is false if the code is not in a local CodeSystem.
func (t *terminology) closure(system, code string, below bool) ([]Coding, bool) {
	rel := t.parents
	if below {
		rel = t.children
	}
	_, hasParents := t.parents[Coding{system, code}]
	_, hasChildren := t.children[Coding{system, code}]
	if !hasParents && !hasChildren {
		return nil, false
	}
	seen := map[string]bool{code: true}
	out := []Coding{{system, code}}
	for i := 0; i < len(out); i++ {
		for _, c := range rel[out[i]] {
			if !seen[c] {
				seen[c] = true
				out = append(out, Coding{system, c})
			}
		}
	}
	return out, true
}
