package search

// The patient compartment, as the official CompartmentDefinition defines
// it (conformance.PatientCompartment): which types can belong to a
// patient, a search filter for given patients' resources, and the same
// test on one resource in memory. The access layer (patient-level
// scopes) and the domain (Patient-level $export) both decide by it.

import (
	"encoding/json"
	"slices"
	"sort"
	"sync"

	"github.com/signpost-fhir/signpost/conformance"
)

// compartmentParams returns, per resource type, the search parameters that
// put a resource in a Patient's compartment.
var compartmentParams = sync.OnceValue(func() map[string][]string {
	var def struct {
		Resource []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	_ = json.Unmarshal(conformance.PatientCompartment(), &def)
	out := map[string][]string{}
	for _, r := range def.Resource {
		if len(r.Param) > 0 {
			out[r.Code] = r.Param
		}
	}
	return out
})

// InCompartmentType reports whether resources of typ can belong to a
// patient's compartment.
func InCompartmentType(typ string) bool {
	return typ == "Patient" || len(compartmentParams()[typ]) > 0
}

// CompartmentTypes returns the types whose resources can belong to a
// patient's compartment, Patient included, sorted.
func CompartmentTypes() []string {
	out := []string{"Patient"}
	for typ := range compartmentParams() {
		out = append(out, typ)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// CompartmentFilter matches typ's resources in the compartment of one of
// patients (their ids).
func CompartmentFilter(typ string, patients ...string) Expr {
	if typ == "Patient" {
		return IDIn{IDs: slices.Clone(patients)}
	}
	refs := make([]Ref, len(patients))
	for i, p := range patients {
		refs[i] = Ref{Type: "Patient", ID: p}
	}
	var or Or
	for _, param := range compartmentParams()[typ] {
		or = append(or, RefIn{Param: param, Refs: refs})
	}
	if len(or) == 1 {
		return or[0]
	}
	return or
}

// Extractor extracts a resource's search index entries (Registry.Extract).
type Extractor interface {
	Extract(resourceType string, body []byte) ([]Entry, error)
}

// CompartmentPatients lists, each once, the patients whose compartment
// the resource typ/id with body is in: a Patient is in its own; another
// resource is in the compartment of each Patient it refers to through
// one of its type's compartment parameters. None when body cannot be
// indexed.
func CompartmentPatients(x Extractor, typ, id string, body []byte) []string {
	if typ == "Patient" {
		return []string{id}
	}
	params := compartmentParams()[typ]
	if len(params) == 0 {
		return nil
	}
	entries, err := x.Extract(typ, body)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type == Reference && e.RefType == "Patient" && e.RefID != "" &&
			slices.Contains(params, e.Param) && !slices.Contains(out, e.RefID) {
			out = append(out, e.RefID)
		}
	}
	return out
}
