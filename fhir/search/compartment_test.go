package search

import (
	"reflect"
	"slices"
	"testing"
)

// TestCompartmentTypes: the types follow the official patient
// CompartmentDefinition: Patient, and the types it gives parameters.
func TestCompartmentTypes(t *testing.T) {
	types := CompartmentTypes()
	if !slices.IsSorted(types) {
		t.Errorf("CompartmentTypes not sorted: %v", types)
	}
	for _, tt := range []struct {
		typ string
		in  bool
	}{
		{"Patient", true},
		{"Appointment", true},
		{"ServiceRequest", true},
		{"Slot", false},
		{"HealthcareService", false},
	} {
		if got := InCompartmentType(tt.typ); got != tt.in {
			t.Errorf("InCompartmentType(%s) = %v, want %v", tt.typ, got, tt.in)
		}
		if got := slices.Contains(types, tt.typ); got != tt.in {
			t.Errorf("CompartmentTypes has %s: %v, want %v", tt.typ, got, tt.in)
		}
	}
}

// TestCompartmentFilter: a Patient by id; another type by each of its
// compartment parameters referring to one of the patients.
func TestCompartmentFilter(t *testing.T) {
	refs := []Ref{{Type: "Patient", ID: "p1"}, {Type: "Patient", ID: "p2"}}
	for _, tt := range []struct {
		typ  string
		want Expr
	}{
		{"Patient", IDIn{IDs: []string{"p1", "p2"}}},
		{"Appointment", RefIn{Param: "actor", Refs: refs}},
		{"ServiceRequest", Or{RefIn{Param: "subject", Refs: refs}, RefIn{Param: "performer", Refs: refs}}},
		{"Slot", Or(nil)}, // no compartment parameters: an empty Or
	} {
		if got := CompartmentFilter(tt.typ, "p1", "p2"); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CompartmentFilter(%s) = %#v, want %#v", tt.typ, got, tt.want)
		}
	}
}

// TestCompartmentPatients: the patients a resource's compartment
// parameters refer to, each once; not those it refers to otherwise.
func TestCompartmentPatients(t *testing.T) {
	r := testRegistry(t)
	for _, tt := range []struct {
		name, typ, id, body string
		want                []string
	}{
		{"a Patient is in its own", "Patient", "p1", `{"resourceType":"Patient","id":"p1"}`, []string{"p1"}},
		{"an Appointment's actors", "Appointment", "a1", `{"resourceType":"Appointment","id":"a1","status":"booked",
			"participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"},{"actor":{"reference":"Patient/p2"},"status":"accepted"},
			{"actor":{"reference":"Patient/p1"},"status":"accepted"},{"actor":{"reference":"HealthcareService/hs"},"status":"accepted"}]}`, []string{"p1", "p2"}},
		{"a ServiceRequest's subject", "ServiceRequest", "sr", `{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order",
			"subject":{"reference":"Patient/p3"},"requester":{"reference":"Patient/p4"}}`, []string{"p3"}},
		{"a Slot is in none", "Slot", "s1", `{"resourceType":"Slot","id":"s1","status":"free","schedule":{"reference":"Schedule/x"}}`, nil},
		{"an unreadable body", "Appointment", "a2", `{`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := CompartmentPatients(r, tt.typ, tt.id, []byte(tt.body)); !slices.Equal(got, tt.want) {
				t.Errorf("CompartmentPatients = %v, want %v", got, tt.want)
			}
		})
	}
}
