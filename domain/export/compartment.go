package export

// The patient compartment, as the official CompartmentDefinition defines
// it: which types a Patient export includes, a search filter for given
// patients' resources, and the same test for "some patient's" in memory.

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
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

// compartmentFilter matches typ's resources in the compartment of one of
// patients (ids).
func compartmentFilter(typ string, patients []string) search.Expr {
	if typ == "Patient" {
		return search.IDIn{IDs: slices.Clone(patients)}
	}
	refs := make([]search.Ref, len(patients))
	for i, p := range patients {
		refs[i] = search.Ref{Type: "Patient", ID: p}
	}
	var or search.Or
	for _, param := range compartmentParams()[typ] {
		or = append(or, search.RefIn{Param: param, Refs: refs})
	}
	if len(or) == 1 {
		return or[0]
	}
	return or
}

// inSomeCompartment reports whether res is in some patient's compartment:
// a Patient, or a resource referring to a Patient through one of its
// type's compartment parameters.
func (s *Service) inSomeCompartment(res *fhir.Resource) bool {
	if res.Type == "Patient" {
		return true
	}
	params := compartmentParams()[res.Type]
	entries, err := s.reg.Extract(res.Type, res.JSON)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Type == search.Reference && e.RefType == "Patient" && slices.Contains(params, e.Param) {
			return true
		}
	}
	return false
}
