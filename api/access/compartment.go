package access

// The patient compartment, as the official CompartmentDefinition defines
// it: which types can belong to a patient, a search filter for a patient's
// resources (compartmentFilter), the same test on one resource in memory
// (inCompartment), and the directory types that patient-level scopes still
// read.

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// directoryTypes stay readable and searchable with patient-level scopes:
// the directory of services and free slots is for everyone.
var directoryTypes = []string{"HealthcareService", "Location", "Organization", "Practitioner",
	"PractitionerRole", "Schedule", "Slot", "Endpoint", "Questionnaire"}

// compartmentParams returns, per resource type, the search parameters that
// put a resource in a Patient's compartment (the official
// CompartmentDefinition).
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

// inCompartmentType reports whether resources of typ can belong to a patient
// compartment.
func inCompartmentType(typ string) bool {
	return typ == "Patient" || len(compartmentParams()[typ]) > 0
}

func patientOf(p *auth.Principal) string {
	if p.Patient != "" {
		return p.Patient
	}
	return auth.UnresolvedPatient
}

// compartmentFilter matches typ's resources in patient's compartment.
func compartmentFilter(typ, patient string) search.Expr {
	if typ == "Patient" {
		return search.IDIn{IDs: []string{patient}}
	}
	var or search.Or
	for _, param := range compartmentParams()[typ] {
		or = append(or, search.RefIn{Param: param, Refs: []search.Ref{{Type: "Patient", ID: patient}}})
	}
	if len(or) == 1 {
		return or[0]
	}
	return or
}

// inCompartment reports whether the resource typ/id with body raw is in
// patient's compartment.
func (g *Guard) inCompartment(typ, id string, raw []byte, patient string) bool {
	if typ == "Patient" {
		return id == patient
	}
	params := compartmentParams()[typ]
	entries, err := g.cfg.Search.Extract(typ, raw)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Type == search.Reference && e.RefType == "Patient" && e.RefID == patient && slices.Contains(params, e.Param) {
			return true
		}
	}
	return false
}
