package referral_test

import (
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestOwnSearchParametersCompile checks that every SearchParameter this
// package's features rely on is supported by the search engine.
func TestOwnSearchParametersCompile(t *testing.T) {
	reg := storetest.Registry(t)
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
