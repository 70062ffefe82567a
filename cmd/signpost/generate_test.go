package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/signpost-fhir/signpost/fhir/search/synth"
)

// TestGenerateCommand writes a small region and checks every line is a
// resource and the counts are the plan's.
func TestGenerateCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.ndjson")
	if err := generate([]string{"--slots", "900", "--patients", "30", "--appointments", "4", "--out", out}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct{ ResourceType, ID string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID == "" {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got[r.ResourceType]++
	}
	n := synth.Plan(synth.Config{Slots: 900, Patients: 30, Appointments: 4})
	want := map[string]int{"Organization": n.Organizations, "Location": n.Locations, "HealthcareService": n.Services,
		"Practitioner": n.Practitioners, "Schedule": n.Schedules, "Slot": 900, "Patient": 30, "Appointment": 4}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d lines, want %d", k, got[k], v)
		}
	}
}
