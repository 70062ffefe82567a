package referral_test

import (
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// TestOwnSearchParametersCompile checks that every SearchParameter this
// package's features rely on is supported by the search engine.
func TestOwnSearchParametersCompile(t *testing.T) {
	reg, err := search.NewRegistry(conformance.SearchParameters(), search.Options{
		StructureDefinitions: conformance.StructureDefinitions(), Terminology: conformance.Terminology(),
		ResourceTypes: conformance.Types().Writable})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ typ, code string }{
		{"HealthcareService", "commissioner"}, {"HealthcareService", "bookability"},
		{"HealthcareService", "accepting-referrals"}, {"HealthcareService", "min-age"},
		{"HealthcareService", "max-age"}, {"HealthcareService", "eligible-gender"},
		{"HealthcareService", "waiting-time"}, {"HealthcareService", "next-free-slot"},
		{"Task", "worklist"},
	} {
		p := reg.Lookup(tc.typ, tc.code)
		if p == nil || p.Unsupported != "" || !strings.HasPrefix(p.URL, conformance.Canonical) {
			t.Errorf("%s.%s: got %+v, want a supported Signpost parameter", tc.typ, tc.code, p)
		}
	}
}
