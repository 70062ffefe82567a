package directory_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// TestBuiltWaitingTimeValidates: the waiting-time extension the directory
// builds (samply's r4.Extension, kept beside the service as a derived
// value) leaves the HealthcareService as served valid for Signpost's own
// validator, with a wait (one free slot, an average of a decimal number of
// days) and without one (no free slot).
func TestBuiltWaitingTimeValidates(t *testing.T) {
	v, err := validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	if err != nil {
		t.Fatal(err)
	}
	c := setup(t)
	now := time.Now().UTC()
	for _, tc := range []struct {
		name    string
		service string
		slots   []int // days from today of free slots
	}{
		{"with a wait", "hs-derm-city", []int{3, 4}},
		{"no free slot", "hs-derm-far", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, sched := c.do("POST", "/Schedule", map[string]any{"resourceType": "Schedule",
				"actor": []any{map[string]any{"reference": "HealthcareService/" + tc.service}}})
			for _, days := range tc.slots {
				start := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, days)
				if status, out := c.do("POST", "/Slot", map[string]any{"resourceType": "Slot", "status": "free",
					"schedule": map[string]any{"reference": "Schedule/" + sched["id"].(string)},
					"start":    start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)}); status != 201 {
					t.Fatalf("POST Slot: %d %v", status, out)
				}
			}
			_, hs := c.do("GET", "/HealthcareService/"+tc.service, nil)
			if _, ok := hs["extension"]; !ok && len(tc.slots) > 0 {
				t.Fatalf("HealthcareService/%s has no waiting-time extension: %v", tc.service, hs)
			}
			raw, _ := json.Marshal(hs)
			for _, is := range v.Validate(raw) {
				if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
					t.Errorf("HealthcareService/%s: %s at %v\n%s", tc.service, is.Diagnostics, is.Expression, raw)
				}
			}
		})
	}
}
