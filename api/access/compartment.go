package access

// The patient compartment confines patient-level scopes: the rule itself
// (which types a patient's compartment holds, the filter, the test on one
// resource) is fhir/search's (compartment.go), shared with Patient-level
// $export; here are the directory types that patient-level scopes still
// read, and the patient a principal is confined to.

import (
	"slices"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// directoryTypes stay readable and searchable with patient-level scopes:
// the directory of services and free slots is for everyone.
var directoryTypes = []string{"HealthcareService", "Location", "Organization", "Practitioner",
	"PractitionerRole", "Schedule", "Slot", "Endpoint", "Questionnaire"}

func patientOf(p *auth.Principal) string {
	if p.Patient != "" {
		return p.Patient
	}
	return auth.UnresolvedPatient
}

// inCompartment reports whether the resource typ/id with body raw is in
// patient's compartment.
func (g *Guard) inCompartment(typ, id string, raw []byte, patient string) bool {
	return slices.Contains(search.CompartmentPatients(g.cfg.Search, typ, id, raw), patient)
}
