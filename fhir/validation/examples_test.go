package validation_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

var (
	validatorOnce sync.Once
	validator     *validation.Validator
	validatorErr  error
)

// newValidator compiles the embedded definitions once per test binary.
func newValidator(t testing.TB) *validation.Validator {
	t.Helper()
	validatorOnce.Do(func() {
		validator, validatorErr = validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	})
	if validatorErr != nil {
		t.Fatalf("New: %v", validatorErr)
	}
	return validator
}

// skipExamples lists official examples that are themselves invalid per the
// R4 specification, with the reason.
var skipExamples = map[string]string{
	// Eleven nested display items (e.g. item[0].item[0].item[0]) have no
	// linkId, which R4 requires (Questionnaire.item.linkId is 1..1).
	"Questionnaire-qs1": "items without the required linkId",
}

// TestOfficialExamples validates every official R4 example whose type has a
// StructureDefinition in conformance (copied into testdata/examples).
func TestOfficialExamples(t *testing.T) {
	v := newValidator(t)
	files, err := filepath.Glob(filepath.Join("testdata", "examples", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			if why, ok := skipExamples[name]; ok {
				t.Skip(why)
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, is := range v.Validate(raw) {
				t.Errorf("%s [%s]", is.Diagnostics, is.Code)
			}
		})
	}
}
