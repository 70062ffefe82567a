package search

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
)

// TestFingerprint builds registries from edited copies of the embedded
// definitions and checks that the fingerprint changes exactly when the
// edit changes what extraction gives.
func TestFingerprint(t *testing.T) {
	base := fingerprintOf(t, nil, Options{})
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(base) {
		t.Fatalf("Fingerprint() = %q, want 32 hexadecimal digits", base)
	}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(url string, d map[string]any) // applied to every definition
		opts    Options
		changed bool
	}{
		{name: "built again", changed: false},
		{name: "description", changed: false, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/Slot-start" {
				d["description"] = "when the slot begins"
			}
		}},
		{name: "targets reordered", changed: false, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/Appointment-actor" {
				ts := d["target"].([]any)
				slices.Reverse(ts)
			}
		}},
		{name: "expression", changed: true, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/Slot-start" {
				d["expression"] = "Slot.end"
			}
		}},
		{name: "type", changed: true, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/Slot-schedule" {
				d["type"] = "token"
			}
		}},
		{name: "code", changed: true, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/Slot-start" {
				d["code"] = "begins"
			}
		}},
		{name: "target added", changed: true, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/Slot-schedule" {
				d["target"] = []any{"Schedule", "Location"}
			}
		}},
		{name: "parameter removed", changed: true, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/Slot-start" {
				d["base"] = []any{}
			}
		}},
		{name: "composite component", changed: true, edit: func(url string, d map[string]any) {
			if url == "http://hl7.org/fhir/SearchParameter/DocumentReference-relationship" {
				d["component"] = d["component"].([]any)[:1]
			}
		}},
		{name: "derived no longer", changed: true, edit: func(url string, d map[string]any) {
			if url == "https://signpost.example/fhir/SearchParameter/HealthcareService-waiting-time" {
				delete(d, "extension") // its entries would come from the stored service again
			}
		}},
		{name: "derived from another extension", changed: true, edit: func(url string, d map[string]any) {
			if url == "https://signpost.example/fhir/SearchParameter/HealthcareService-waiting-time" {
				d["extension"] = []any{map[string]any{"url": DerivedExtension, "valueCanonical": "https://signpost.example/fhir/StructureDefinition/other"}}
			}
		}},
		{name: "time zone", changed: true, opts: Options{Location: paris}},
		{name: "base", changed: true, opts: Options{Base: "https://elsewhere.test/fhir"}},
		{name: "structure definitions", changed: true, opts: Options{StructureDefinitions: withoutSD(t, "Slot")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fingerprintOf(t, tt.edit, tt.opts)
			if (got != base) != tt.changed {
				t.Errorf("fingerprint %s, unedited %s: changed = %v, want %v", got, base, got != base, tt.changed)
			}
		})
	}
}

// fingerprintOf builds a registry as the server does (testBase, Europe/
// London) from the embedded definitions, each passed through edit, with
// opts' Location, Base and StructureDefinitions where set, and returns its
// fingerprint.
func fingerprintOf(t *testing.T, edit func(url string, d map[string]any), opts Options) string {
	t.Helper()
	defs := conformance.SearchParameters()
	if edit != nil {
		edited := make([]json.RawMessage, len(defs))
		for i, raw := range defs {
			var d map[string]any
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			url, _ := d["url"].(string)
			edit(url, d)
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			edited[i] = b
		}
		defs = edited
	}
	if opts.Base == "" {
		opts.Base = testBase
	}
	if opts.StructureDefinitions == nil {
		opts.StructureDefinitions = conformance.StructureDefinitions()
	}
	opts.Terminology = conformance.Terminology()
	opts.ResourceTypes = conformance.Types().Writable
	r, err := NewRegistry(defs, opts)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r.Fingerprint()
}

// withoutSD returns the embedded StructureDefinitions without typ's.
func withoutSD(t *testing.T, typ string) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for k, v := range conformance.StructureDefinitions() {
		if k != typ {
			out[k] = v
		}
	}
	if len(out) == len(conformance.StructureDefinitions()) {
		t.Fatalf("no StructureDefinition %q to leave out", typ)
	}
	return out
}

// TestFingerprintParamsCovered guards Fingerprint against a field added to
// Param or Component that it does not hash: a new field either decides
// entries (hash it) or not (list it here).
func TestFingerprintParamsCovered(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"Param", fieldNames(Param{}), []string{"Resource", "Code", "Type", "URL", "Description", "Expression", "Targets",
			"Components", "Chain", "Unsupported", "Derived", "prog", "comp", "compParams"}},
		{"Component", fieldNames(Component{}), []string{"Definition", "Expression", "Code", "Type", "Targets"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s fields = %v, want %v: decide whether Fingerprint must hash the new ones", tt.name, tt.got, tt.want)
		}
	}
}

// fieldNames lists the fields of struct v in order.
func fieldNames(v any) []string {
	rt := reflect.TypeOf(v)
	out := make([]string, rt.NumField())
	for i := range out {
		out[i] = rt.Field(i).Name
	}
	return out
}
