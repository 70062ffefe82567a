package validation

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// valueSet is the enumerated content of a ValueSet behind a required binding.
type valueSet struct {
	url   string
	codes map[string]bool // code alone (a code element carries no system)
	pairs map[string]bool // system + "|" + code
	list  []string        // sorted codes, for messages
}

type codeSystemJSON struct {
	ResourceType string        `json:"resourceType"`
	URL          string        `json:"url"`
	Version      string        `json:"version"`
	Content      string        `json:"content"`
	Concept      []conceptJSON `json:"concept"`
	// ValueSet members.
	Compose *struct {
		Include []includeJSON `json:"include"`
		Exclude []includeJSON `json:"exclude"`
	} `json:"compose"`
	Expansion *struct {
		Contains []containsJSON `json:"contains"`
	} `json:"expansion"`
}

type conceptJSON struct {
	Code    string        `json:"code"`
	Concept []conceptJSON `json:"concept"`
}

type includeJSON struct {
	System   string            `json:"system"`
	Concept  []conceptJSON     `json:"concept"`
	Filter   []json.RawMessage `json:"filter"`
	ValueSet []string          `json:"valueSet"`
}

type containsJSON struct {
	System   string         `json:"system"`
	Code     string         `json:"code"`
	Contains []containsJSON `json:"contains"`
}

// loadTerminology returns the enumerated ValueSets by URL and the codes of
// every complete CodeSystem by URL. It enumerates every ValueSet it can:
// those given as an expansion, as explicit concept lists, or as whole
// CodeSystems present with complete content. A ValueSet that draws on anything else (a filter, an
// external system such as BCP-13 MIME types) is left out, so its bindings
// are not checked.
func loadTerminology(resources []json.RawMessage) (map[string]*valueSet, map[string][]string, error) {
	systems := map[string][]string{}
	var sets []*codeSystemJSON
	for i, raw := range resources {
		r := new(codeSystemJSON)
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, nil, fmt.Errorf("terminology resource %d: %w", i, err)
		}
		switch r.ResourceType {
		case "CodeSystem":
			if r.Content != "" && r.Content != "complete" {
				continue
			}
			var codes []string
			walkConcepts(r.Concept, func(c string) { codes = append(codes, c) })
			systems[r.URL] = codes
		case "ValueSet":
			sets = append(sets, r)
		}
	}
	byURL := map[string]*codeSystemJSON{}
	for _, s := range sets {
		byURL[s.URL] = s
	}
	out := map[string]*valueSet{}
	for _, s := range sets {
		if vs := expand(s, byURL, systems, 0); vs != nil {
			out[s.URL] = vs
		}
	}
	return out, systems, nil
}

func expand(s *codeSystemJSON, byURL map[string]*codeSystemJSON, systems map[string][]string, depth int) *valueSet {
	if depth > 8 {
		return nil // a cycle of imports
	}
	vs := &valueSet{url: s.URL, codes: map[string]bool{}, pairs: map[string]bool{}}
	add := func(system, code string) {
		vs.codes[code] = true
		vs.pairs[system+"|"+code] = true
	}
	switch {
	case s.Expansion != nil:
		var walk func([]containsJSON)
		walk = func(cs []containsJSON) {
			for _, c := range cs {
				if c.Code != "" {
					add(c.System, c.Code)
				}
				walk(c.Contains)
			}
		}
		walk(s.Expansion.Contains)
	case s.Compose != nil:
		for _, inc := range s.Compose.Include {
			if len(inc.Filter) > 0 {
				return nil
			}
			for _, u := range inc.ValueSet {
				sub := byURL[strings.SplitN(u, "|", 2)[0]]
				if sub == nil {
					return nil
				}
				x := expand(sub, byURL, systems, depth+1)
				if x == nil {
					return nil
				}
				for p := range x.pairs {
					system, code, _ := strings.Cut(p, "|")
					add(system, code)
				}
			}
			switch {
			case len(inc.Concept) > 0:
				walkConcepts(inc.Concept, func(c string) { add(inc.System, c) })
			case inc.System != "":
				codes, ok := systems[inc.System]
				if !ok {
					return nil
				}
				for _, c := range codes {
					add(inc.System, c)
				}
			}
		}
		for _, exc := range s.Compose.Exclude {
			if len(exc.Concept) == 0 {
				return nil // excluding a filter or a whole system: not enumerated
			}
			walkConcepts(exc.Concept, func(c string) {
				delete(vs.pairs, exc.System+"|"+c)
			})
		}
		// Recompute the bare codes after exclusions.
		vs.codes = map[string]bool{}
		for p := range vs.pairs {
			_, code, _ := strings.Cut(p, "|")
			vs.codes[code] = true
		}
	default:
		return nil
	}
	if len(vs.codes) == 0 {
		return nil
	}
	for c := range vs.codes {
		vs.list = append(vs.list, c)
	}
	sort.Strings(vs.list)
	return vs
}

func walkConcepts(cs []conceptJSON, fn func(string)) {
	for _, c := range cs {
		fn(c.Code)
		walkConcepts(c.Concept, fn)
	}
}
