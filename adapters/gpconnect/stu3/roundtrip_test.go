package stu3_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

var (
	validatorOnce sync.Once
	validator     *validation.Validator
	validatorErr  error
)

// validR4 fails t when v, encoded, does not pass Signpost's R4 validator.
func validR4(t *testing.T, what string, v any) {
	t.Helper()
	validatorOnce.Do(func() {
		validator, validatorErr = validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	})
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, is := range validator.Validate(b) {
		if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
			t.Errorf("%s: R4 does not validate: %s at %v\n%s", what, is.Diagnostics, is.Expression, b)
		}
	}
}

// generic decodes JSON into maps and slices, for comparison.
func generic(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// lossless undoes, in a published STU3 resource (as generic JSON), what
// the mapping is documented not to keep, so the rest must survive
// exactly:
//   - meta.versionId and meta.lastUpdated: the practice's version, not
//     Signpost's (Signpost stamps its own; the profile comes back).
//   - the contained booking organisation's type and telecom: R4 keeps the
//     booking organisation as a logical reference (ODS code and name),
//     since samply's R4 Appointment has no contained resources; the
//     adapter supplies its own full organisation when it books.
//   - Location.telecom, Organization.telecom and Organization.address as
//     a single object (as GP Connect's examples send them): STU3 defines
//     arrays, and that is what comes back.
func lossless(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
	}
	switch m["resourceType"] {
	case "Location", "Organization":
		for _, k := range []string{"telecom", "address"} {
			if one, ok := m[k].(map[string]any); ok && !(k == "address" && m["resourceType"] == "Location") {
				m[k] = []any{one}
			}
		}
	case "Appointment":
		for _, c := range asSlice(m["contained"]) {
			org := c.(map[string]any)
			delete(org, "type")
			delete(org, "telecom")
		}
	}
	return m
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// roundTrip maps one STU3 resource to R4 (checking it validates) and back.
func roundTrip(t *testing.T, p stu3.Practice, raw []byte) []byte {
	t.Helper()
	var head struct{ ResourceType string }
	if err := json.Unmarshal(raw, &head); err != nil {
		t.Fatal(err)
	}
	var back any
	var err error
	switch head.ResourceType {
	case "Appointment":
		var s stu3.Appointment
		must(t, json.Unmarshal(raw, &s))
		r, err := p.AppointmentToR4(&s)
		must(t, err)
		validR4(t, "Appointment", r)
		back, err = p.AppointmentFromR4(r, stu3.AppointmentOptions{})
	case "Slot":
		var s stu3.Slot
		must(t, json.Unmarshal(raw, &s))
		r, err := p.SlotToR4(&s)
		must(t, err)
		validR4(t, "Slot", r)
		back, err = p.SlotFromR4(r)
	case "Schedule":
		var s stu3.Schedule
		must(t, json.Unmarshal(raw, &s))
		r, err := p.ScheduleToR4(&s)
		must(t, err)
		validR4(t, "Schedule", r)
		back, err = p.ScheduleFromR4(r)
	case "Practitioner":
		var s stu3.Practitioner
		must(t, json.Unmarshal(raw, &s))
		r, err := p.PractitionerToR4(&s)
		must(t, err)
		validR4(t, "Practitioner", r)
		back, err = p.PractitionerFromR4(r)
	case "Location":
		var s stu3.Location
		must(t, json.Unmarshal(raw, &s))
		r, err := p.LocationToR4(&s)
		must(t, err)
		validR4(t, "Location", r)
		back, err = p.LocationFromR4(r)
	case "Organization":
		var s stu3.Organization
		must(t, json.Unmarshal(raw, &s))
		r, err := p.OrganizationToR4(&s)
		must(t, err)
		validR4(t, "Organization", r)
		back, err = p.OrganizationFromR4(r)
	case "Patient":
		var s stu3.Patient
		must(t, json.Unmarshal(raw, &s))
		r, err := p.PatientToR4(&s)
		must(t, err)
		validR4(t, "Patient", r)
		back, err = p.PatientFromR4(r)
	default:
		t.Fatalf("no mapping for %s", head.ResourceType)
	}
	must(t, err)
	b, err := json.Marshal(back)
	must(t, err)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRoundTripPublishedExamples: every published GP Connect example
// (testdata, copied from the specification), and every resource in the
// published Bundles, maps to R4 that passes Signpost's validator and back
// to STU3 equal to the original but for the documented lossy points
// (lossless). The slot search Bundle also goes through SlotSearchToR4 and
// SlotSearchFromR4 as a whole.
func TestRoundTripPublishedExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/*_example.json")
	must(t, err)
	if len(files) < 9 {
		t.Fatalf("only %d published examples in testdata", len(files))
	}
	p := stu3.Practice{ODS: "A00001", Services: []string{"HealthcareService/gp-a00001"}}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			must(t, err)
			var b stu3.Bundle
			must(t, json.Unmarshal(raw, &b))
			resources := []json.RawMessage{raw}
			if b.ResourceType == "Bundle" {
				resources = resources[:0]
				for _, e := range b.Entry {
					resources = append(resources, e.Resource)
				}
			}
			for _, r := range resources {
				got := generic(t, roundTrip(t, p, r))
				want := lossless(generic(t, r))
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("round trip (-published +back):\n%s", d)
				}
			}
			if strings.Contains(f, "slots") {
				s, err := p.SlotSearchToR4(&b)
				must(t, err)
				if len(s.Slots) != 2 || len(s.Schedules) != 1 || len(s.Practitioners) != 1 || len(s.Locations) != 1 || len(s.Organizations) != 1 {
					t.Fatalf("slot search: %d slots, %d schedules, %d practitioners, %d locations, %d organisations",
						len(s.Slots), len(s.Schedules), len(s.Practitioners), len(s.Locations), len(s.Organizations))
				}
				back, err := p.SlotSearchFromR4(s)
				must(t, err)
				if len(back.Entry) != len(b.Entry) {
					t.Fatalf("slot search back has %d entries, want %d", len(back.Entry), len(b.Entry))
				}
				for i := range b.Entry {
					if d := cmp.Diff(lossless(generic(t, b.Entry[i].Resource)), generic(t, back.Entry[i].Resource)); d != "" {
						t.Errorf("entry %d (-published +back):\n%s", i, d)
					}
				}
			}
		})
	}
}
