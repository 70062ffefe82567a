// Package conformance embeds the definitions Signpost serves and checks itself
// against: the official FHIR R4 StructureDefinitions, SearchParameters,
// required-binding terminology and patient CompartmentDefinition (in r4/),
// and Signpost's own definitions under https://signpost.example/fhir (in
// signpost/): extensions, code systems, search parameters and operations.
//
// The package only holds data; the packages that interpret it (fhir/search,
// fhir/validation, api) receive it from main.
package conformance

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Canonical is the base of every canonical URL Signpost defines.
const Canonical = "https://signpost.example/fhir"

//go:embed r4 signpost
var files embed.FS

// FS returns the embedded definitions.
func FS() fs.FS { return files }

// ResourceTypes lists the resource types Signpost serves.
type ResourceTypes struct {
	Writable []string `json:"writable"` // full read/write REST interactions
	ReadOnly []string `json:"readOnly"` // served from the embedded definitions
}

// Types returns the served resource types.
func Types() ResourceTypes {
	var t ResourceTypes
	mustJSON("signpost/resource-types.json", &t)
	return t
}

// StructureDefinitions returns the official R4 StructureDefinitions (resource
// types and data types), keyed by type name.
func StructureDefinitions() map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	matches, _ := fs.Glob(files, "r4/structure-definitions/*.json")
	for _, m := range matches {
		b, _ := files.ReadFile(m)
		var sd struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b, &sd); err != nil {
			panic(fmt.Sprintf("conformance: %s: %v", m, err))
		}
		out[sd.Type] = b
	}
	return out
}

// SearchParameters returns every SearchParameter Signpost supports: the
// official R4 definitions for the served types, then Signpost's own.
func SearchParameters() []json.RawMessage {
	out := bundleEntries("r4/search-parameters.json")
	return append(out, Definitions("SearchParameter")...)
}

// Terminology returns the ValueSets and CodeSystems behind required bindings.
func Terminology() []json.RawMessage {
	out := bundleEntries("r4/terminology.json")
	return append(out, Definitions("CodeSystem")...)
}

// PatientCompartment returns the official patient CompartmentDefinition.
func PatientCompartment() json.RawMessage {
	b, _ := files.ReadFile("r4/CompartmentDefinition-patient.json")
	return b
}

// Definitions returns Signpost's own conformance resources of one type
// (SearchParameter, OperationDefinition, StructureDefinition, CodeSystem,
// ValueSet), from signpost/<Type>-*.json, in file name order.
func Definitions(resourceType string) []json.RawMessage {
	matches, _ := fs.Glob(files, path.Join("signpost", resourceType+"-*.json"))
	sort.Strings(matches)
	var out []json.RawMessage
	for _, m := range matches {
		b, _ := files.ReadFile(m)
		out = append(out, b)
	}
	return out
}

func bundleEntries(name string) []json.RawMessage {
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	mustJSON(name, &b)
	out := make([]json.RawMessage, 0, len(b.Entry))
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

func mustJSON(name string, v any) {
	b, err := files.ReadFile(name)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		panic(fmt.Sprintf("conformance: embedded %s: %v", name, err)) // the binary is broken
	}
}

// All returns every definition Signpost serves read-only: its own first,
// then the official ones (search parameters, structure definitions,
// terminology).
func All() []json.RawMessage {
	var out []json.RawMessage
	for _, t := range []string{"SearchParameter", "OperationDefinition", "StructureDefinition", "CodeSystem", "ValueSet", "SubscriptionTopic"} {
		out = append(out, Definitions(t)...)
	}
	out = append(out, bundleEntries("r4/search-parameters.json")...)
	for _, sd := range StructureDefinitions() {
		out = append(out, sd)
	}
	return append(out, bundleEntries("r4/terminology.json")...)
}

// SummaryElements returns, per resource type, the top-level elements the
// StructureDefinitions mark isSummary (what _summary=true keeps), with
// choice elements given by their [x] stem (e.g. "deceased").
func SummaryElements() map[string][]string {
	out := map[string][]string{}
	for typ, raw := range StructureDefinitions() {
		var sd struct {
			Kind     string `json:"kind"`
			Snapshot struct {
				Element []struct {
					Path      string `json:"path"`
					IsSummary bool   `json:"isSummary"`
				} `json:"element"`
			} `json:"snapshot"`
		}
		if json.Unmarshal(raw, &sd) != nil || sd.Kind != "resource" {
			continue
		}
		for _, el := range sd.Snapshot.Element {
			name, ok := strings.CutPrefix(el.Path, typ+".")
			if !ok || strings.Contains(name, ".") || !el.IsSummary {
				continue
			}
			out[typ] = append(out[typ], strings.TrimSuffix(name, "[x]"))
		}
	}
	return out
}
