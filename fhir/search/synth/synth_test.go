package synth

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestNHSNumber(t *testing.T) {
	seen := map[string]bool{}
	for n := range 20000 {
		s := NHSNumber(n)
		if !ValidNHSNumber(s) {
			t.Fatalf("NHSNumber(%d) = %s, not valid", n, s)
		}
		if seen[s] {
			t.Fatalf("NHSNumber(%d) = %s repeats", n, s)
		}
		seen[s] = true
	}
	tests := []struct {
		in   string
		want bool
	}{
		{"9434765919", true}, {"9434765918", false}, {"943476591", false}, {"943476591x", false}, {"4010232137", true},
	}
	for _, tt := range tests {
		if got := ValidNHSNumber(tt.in); got != tt.want {
			t.Errorf("ValidNHSNumber(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestGenerate(t *testing.T) {
	cfg := Config{Seed: 1, Slots: 3000, Patients: 200, Appointments: 50, SlotsPerSchedule: 100}
	got := map[string]int{}
	var first []byte
	err := Generate(cfg, func(r Resource) error {
		var head struct {
			ResourceType, ID string
		}
		if err := json.Unmarshal(r.JSON, &head); err != nil {
			return fmt.Errorf("%s/%s: %v: %s", r.Type, r.ID, err, r.JSON)
		}
		if head.ResourceType != r.Type || head.ID != r.ID {
			return fmt.Errorf("%s/%s has resourceType %s id %s", r.Type, r.ID, head.ResourceType, head.ID)
		}
		if first == nil {
			first = r.JSON
		}
		got[r.Type]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := Plan(cfg)
	want := map[string]int{"Organization": n.Organizations, "Location": n.Locations, "HealthcareService": n.Services,
		"Practitioner": n.Practitioners, "Schedule": n.Schedules, "Slot": 3000, "Patient": 200, "Appointment": 50}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("generated %v, want %v", got, want)
	}
	// Deterministic for a seed.
	var again []byte
	Generate(cfg, func(r Resource) error {
		if again == nil {
			again = r.JSON
		}
		return nil
	})
	if string(again) != string(first) {
		t.Errorf("a second run differs:\n%s\n%s", first, again)
	}
}
