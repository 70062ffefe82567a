package stu3_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

var update = flag.Bool("update", false, "rewrite testdata/r4/*.json from the mapping's output")

// TestR4Golden: the R4 each published example maps to, beside it in
// testdata/r4 (refreshed with -update): what maps to what, reviewable.
// Bundles map to a list of their resources' R4.
func TestR4Golden(t *testing.T) {
	files, err := filepath.Glob("testdata/*_example.json")
	must(t, err)
	p := stu3.Practice{ODS: "A00001", Services: []string{"HealthcareService/gp-a00001"}, Refs: map[string]string{"Patient/p1": "Patient/2"}}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			must(t, err)
			var got any
			var head stu3.Bundle
			must(t, json.Unmarshal(raw, &head))
			if head.ResourceType == "Bundle" {
				var list []any
				for _, e := range head.Entry {
					list = append(list, toR4(t, p, e.Resource))
				}
				got = list
			} else {
				got = toR4(t, p, raw)
			}
			b, err := json.MarshalIndent(got, "", "  ")
			must(t, err)
			b = append(b, '\n')
			golden := filepath.Join("testdata", "r4", strings.TrimSuffix(filepath.Base(f), ".json")+".r4.json")
			if *update {
				must(t, os.MkdirAll(filepath.Dir(golden), 0o755))
				must(t, os.WriteFile(golden, b, 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(want, b) {
				t.Errorf("R4 differs from %s (-want +got):\n%s", golden, cmp.Diff(string(want), string(b)))
			}
		})
	}
}

// toR4 maps one STU3 resource to R4.
func toR4(t *testing.T, p stu3.Practice, raw []byte) any {
	t.Helper()
	var head struct{ ResourceType string }
	must(t, json.Unmarshal(raw, &head))
	var (
		out any
		err error
	)
	switch head.ResourceType {
	case "Appointment":
		var s stu3.Appointment
		must(t, json.Unmarshal(raw, &s))
		out, err = p.AppointmentToR4(&s)
	case "Slot":
		var s stu3.Slot
		must(t, json.Unmarshal(raw, &s))
		out, err = p.SlotToR4(&s)
	case "Schedule":
		var s stu3.Schedule
		must(t, json.Unmarshal(raw, &s))
		out, err = p.ScheduleToR4(&s)
	case "Practitioner":
		var s stu3.Practitioner
		must(t, json.Unmarshal(raw, &s))
		out, err = p.PractitionerToR4(&s)
	case "Location":
		var s stu3.Location
		must(t, json.Unmarshal(raw, &s))
		out, err = p.LocationToR4(&s)
	case "Organization":
		var s stu3.Organization
		must(t, json.Unmarshal(raw, &s))
		out, err = p.OrganizationToR4(&s)
	case "Patient":
		var s stu3.Patient
		must(t, json.Unmarshal(raw, &s))
		out, err = p.PatientToR4(&s)
	default:
		t.Fatalf("no mapping for %s", head.ResourceType)
	}
	must(t, err)
	return out
}

// FuzzSlotSearchToR4: whatever a practice sends as a slot search, the
// mapping answers with R4 or an error, never a panic.
func FuzzSlotSearchToR4(f *testing.F) {
	for _, name := range []string{"search_for_free_slots_response_example.json", "retrieve_patients_appts_response_example.json", "find_patient_response_example.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	p := stu3.Practice{ODS: "A00001", Services: []string{"HealthcareService/gp"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var bd stu3.Bundle
		if json.Unmarshal(b, &bd) != nil {
			return
		}
		s, err := p.SlotSearchToR4(&bd)
		if err == nil {
			if _, err := p.SlotSearchFromR4(s); err != nil && len(s.Slots) > 0 {
				t.Logf("back: %v", err)
			}
		}
	})
}
