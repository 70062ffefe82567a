package search

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
)

const testBase = "https://signpost.test/fhir"

var (
	registryOnce sync.Once
	registry     *Registry
	registryErr  error
)

// testRegistry is the registry built from the embedded definitions, as the
// server builds it, with the server base testBase.
func testRegistry(t testing.TB) *Registry {
	t.Helper()
	registryOnce.Do(func() {
		registry, registryErr = NewRegistry(conformance.SearchParameters(), Options{
			StructureDefinitions: conformance.StructureDefinitions(),
			Terminology:          conformance.Terminology(),
			ResourceTypes:        conformance.Types().Writable,
			Base:                 testBase,
		})
	})
	if registryErr != nil {
		t.Fatalf("NewRegistry: %v", registryErr)
	}
	return registry
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func london(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestCompileAllDefinitions checks that every definition of the served
// types compiles, except the ones listed here with the reason.
func TestCompileAllDefinitions(t *testing.T) {
	r := testRegistry(t)
	wantUnsupported := map[string]bool{
		"_text": true, "_content": true, "_query": true, "_filter": true, // no full text, no named queries
		"Patient.age": true, "Patient.birthOrderBoolean": true, // extension examples without an expression
		"Patient.part-agree": true, // an example whose expression is on DocumentReference
	}
	for _, typ := range r.Types() {
		for _, p := range r.Params(typ) {
			if p.Unsupported == "" {
				continue
			}
			if wantUnsupported[p.Code] || wantUnsupported[typ+"."+p.Code] {
				continue
			}
			t.Errorf("%s.%s (%s): %s", typ, p.Code, p.Expression, p.Unsupported)
		}
	}
}

func BenchmarkExtractSlot(b *testing.B) {
	r := testRegistry(b)
	body := readTestdata(b, "Slot-1.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract("Slot", body); err != nil {
			b.Fatal(err)
		}
	}
}
