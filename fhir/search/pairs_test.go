package search

import (
	"reflect"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/conformance"
)

func TestRegistryPairs(t *testing.T) {
	r := testRegistry(t)
	if got, want := r.Pairs(), DefaultPairs(); !reflect.DeepEqual(got, want) {
		t.Errorf("Pairs() = %v, want the default %v", got, want)
	}
	got := r.PairsOf("Slot")
	want := []Pair{{Type: "Slot", Ref: "schedule", Date: "start", Code: "status"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf(`PairsOf("Slot") = %v, want %v`, got, want)
	}
	if got[0].Key() != "schedule+start" {
		t.Errorf("Key() = %q", got[0].Key())
	}
	if ps := r.PairsOf("Patient"); len(ps) != 0 {
		t.Errorf(`PairsOf("Patient") = %v, want none`, ps)
	}
}

func TestRegistryPairsChecked(t *testing.T) {
	tests := []struct {
		name    string
		pairs   []Pair
		wantErr string // "" for none
		want    int    // pairs kept
	}{
		{"none", []Pair{}, "", 0},
		{"type not in the registry", []Pair{{Type: "Observation", Ref: "subject", Date: "date"}}, "", 0},
		{"date is not a date", []Pair{{Type: "Slot", Ref: "schedule", Date: "status"}}, "status is not a supported date parameter", 0},
		{"unknown code parameter", []Pair{{Type: "Slot", Ref: "schedule", Date: "start", Code: "colour"}}, "colour", 0},
		{"no code", []Pair{{Type: "Slot", Ref: "schedule", Date: "start"}}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRegistry(conformance.SearchParameters(), Options{StructureDefinitions: conformance.StructureDefinitions(),
				ResourceTypes: []string{"Slot", "Schedule"}, Pairs: tt.pairs})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewRegistry: error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(r.Pairs()); got != tt.want {
				t.Errorf("kept %d pairs, want %d", got, tt.want)
			}
		})
	}
}
