package search

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"
)

// TestDerivedParameters: the parameters over a derived value (waiting-time
// and next-free-slot, over the waiting-time extension) get no entries from
// a stored resource, whatever it carries; their entries come from the
// value alone (ExtractDerived), and a resource as served indexes both
// (ExtractServed).
func TestDerivedParameters(t *testing.T) {
	r := testRegistry(t)
	const wait = "https://signpost.example/fhir/StructureDefinition/waiting-time"
	if got := r.DerivedExtensions("HealthcareService"); !slices.Equal(got, []string{wait}) {
		t.Errorf("DerivedExtensions(HealthcareService) = %v, want [%s]", got, wait)
	}
	if got := r.DerivedExtensions("Slot"); len(got) != 0 {
		t.Errorf("DerivedExtensions(Slot) = %v, want none", got)
	}
	for _, code := range []string{"waiting-time", "next-free-slot"} {
		if p := r.Lookup("HealthcareService", code); p == nil || p.Derived != wait {
			t.Errorf("HealthcareService %s: Derived = %v, want %s", code, p, wait)
		}
	}
	ext := `{"url":"` + wait + `","extension":[{"url":"days","valueInteger":4},{"url":"next-slot","valueDateTime":"2026-03-05T10:00:00Z"}]}`
	body := `{"resourceType":"HealthcareService","id":"hs","name":"Clinic","extension":[` + ext + `]}`
	params := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			if !slices.Contains(out, e.Param) {
				out = append(out, e.Param)
			}
		}
		sort.Strings(out)
		return out
	}
	stored, err := r.Extract("HealthcareService", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	served, err := r.ExtractServed("HealthcareService", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	derived, err := r.ExtractDerived("HealthcareService", json.RawMessage(ext))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what   string
		got    []string
		want   []string
		absent []string
	}{
		{"Extract", params(stored), nil, []string{"waiting-time", "next-free-slot"}},
		{"ExtractDerived", params(derived), []string{"next-free-slot", "waiting-time"}, nil},
	} {
		if tc.want != nil && !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s params = %v, want %v", tc.what, tc.got, tc.want)
		}
		for _, p := range tc.absent {
			if slices.Contains(tc.got, p) {
				t.Errorf("%s gives %s entries: %v", tc.what, p, tc.got)
			}
		}
	}
	if !slices.Contains(params(stored), "name") {
		t.Errorf("Extract lost the resource's own entries: %v", params(stored))
	}
	if len(served) != len(stored)+len(derived) {
		t.Errorf("ExtractServed gives %d entries, want Extract's %d and ExtractDerived's %d", len(served), len(stored), len(derived))
	}
	for _, e := range derived {
		if e.Param == "waiting-time" && (e.Type != Number || e.NumLow > 4 || e.NumHigh < 4) {
			t.Errorf("waiting-time entry = %+v, want the number 4", e)
		}
	}
	// Another extension, or none, has no derived entries.
	for _, bad := range []string{`{"url":"urn:other","valueInteger":4}`, `{"valueInteger":4}`, `[]`} {
		es, err := r.ExtractDerived("HealthcareService", json.RawMessage(bad))
		if err == nil && len(es) != 0 {
			t.Errorf("ExtractDerived(%s) = %v, want no entries", bad, es)
		}
	}
}
