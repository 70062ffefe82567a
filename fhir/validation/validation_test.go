package validation_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// issue is the part of a fhir.Issue the tests pin down: its IssueType code
// and its location.
type issue struct {
	Code, Expression string
}

func (i issue) String() string { return fmt.Sprintf("{%q, %q}", i.Code, i.Expression) }

func summarize(issues []fhir.Issue) []issue {
	out := []issue{}
	for _, is := range issues {
		out = append(out, issue{is.Code, strings.Join(is.Expression, ",")})
	}
	return out
}

// TestValidateInvalid validates each fixture in testdata/invalid and checks
// every issue reported, in order. A few fixtures are valid edge cases that
// must report nothing.
func TestValidateInvalid(t *testing.T) {
	tests := map[string][]issue{
		// Not a resource at all.
		"not-json":                 {{"structure", ""}},
		"trailing-garbage":         {{"structure", ""}},
		"not-object":               {{"structure", ""}},
		"missing-resourcetype":     {{"required", ""}},
		"unknown-resourcetype":     {{"invalid", ""}},
		"resourcetype-number":      {{"structure", ""}},
		"unsupported-resourcetype": {{"not-supported", ""}},

		// Elements and cardinality.
		"unknown-element":  {{"structure", "Slot.colour"}},
		"empty-key":        {{"structure", "Slot"}},
		"array-for-single": {{"structure", "Slot.status"}},
		"single-for-array": {{"structure", "Patient.name"}},
		"missing-required": {{"required", "Slot.schedule"}},
		"empty-object":     {{"structure", "Slot.meta"}},
		"empty-array":      {{"structure", "Patient.name"}},
		"null-value":       {{"structure", "Slot.comment"}},
		"null-in-array":    {{"structure", "Patient.identifier[0]"}},
		"choice-two-variants": {
			{"structure", "Patient.deceasedDateTime"},
		},

		// Primitive values.
		"instant-without-offset":        {{"value", "Slot.start"}},
		"date-bad-month":                {{"value", "Patient.birthDate"}},
		"date-bad-day":                  {{"value", "Patient.birthDate"}},
		"bad-id":                        {{"value", "Slot.id"}},
		"number-for-string":             {{"structure", "Patient.name[0].family"}},
		"boolean-as-string":             {{"structure", "Patient.active"}},
		"quantity-value-string":         {{"structure", "ServiceRequest.quantityQuantity.value"}},
		"empty-string":                  {{"value", "Slot.comment"}},
		"blank-string":                  {{"value", "Slot.comment"}},
		"code-with-space":               {{"value", "Slot.status"}},
		"uri-with-space":                {{"value", "Patient.implicitRules"}},
		"appointment-minutes-zero":      {{"value", "Appointment.minutesDuration"}},
		"appointment-priority-negative": {{"value", "Appointment.priority"}},
		"appointment-priority-fraction": {{"value", "Appointment.priority"}},
		"appointment-priority-too-big":  {{"value", "Appointment.priority"}},
		"primitive-types": { // one bad value per type, then some good ones
			{"value", "Patient.extension[0].valueTime"},
			{"value", "Patient.extension[1].valueBase64Binary"},
			{"value", "Patient.extension[2].valueOid"},
			{"value", "Patient.extension[3].valueUuid"},
			{"value", "Patient.extension[4].valueInteger"},
			{"value", "Patient.extension[5].valuePositiveInt"},
			{"value", "Patient.extension[6].valueUrl"},
			{"value", "Patient.extension[7].valueMarkdown"},
			{"value", "Patient.extension[8].valueDateTime"},
			{"value", "Patient.extension[9].valueCanonical"},
			{"structure", "Patient.extension[10].valueDecimal"},
		},

		// Required bindings.
		"slot-status-not-in-binding": {{"code-invalid", "Slot.status"}},
		"gender-not-in-binding":      {{"code-invalid", "Patient.gender"}},

		// References.
		"reference-bad-format":            {{"value", "Slot.schedule.reference"}},
		"reference-bad-uuid":              {{"value", "Slot.schedule.reference"}},
		"reference-wrong-target":          {{"invalid", "Slot.schedule.reference"}},
		"reference-wrong-target-absolute": {{"invalid", "Slot.schedule.reference"}},
		"reference-wrong-type-element":    {{"invalid", "Slot.schedule.type"}},
		"appointment-actor-slot":          {{"invalid", "Appointment.participant[0].actor.reference"}},
		"references-ok":                   {},

		// Extensions, primitive extensions.
		"extension-without-url":               {{"required", "Patient.extension[0].url"}},
		"extension-value-and-extension":       {{"invariant", "Patient.extension[0]"}},
		"extension-two-values":                {{"structure", "Patient.modifierExtension[0].valueString"}},
		"primitive-extension-ok":              {},
		"primitive-extension-length-mismatch": {{"structure", "Patient.name[0]._given"}},
		"primitive-extension-on-complex":      {{"structure", "Patient._name"}},
		"primitive-extension-bad-content":     {{"structure", "Patient.gender.colour"}},
		"primitive-extension-null":            {{"structure", "Patient._gender"}},

		// Contained and bundled resources.
		"contained-unknown-element":      {{"structure", "Patient.contained[0].colour"}},
		"contained-missing-resourcetype": {{"required", "Patient.contained[0]"}},
		"contained-nested":               {{"invariant", "Patient.contained[0].contained"}},
		"contained-unsupported-type-ok":  {},
		"contained-reference-missing":    {{"invariant", "Slot.schedule.reference"}},
		"contained-reference-wrong-type": {{"invalid", "Slot.schedule.reference"}},
		"contained-reference-ok":         {},
		"bundle-entry-invalid": {
			{"code-invalid", "Bundle.entry[0].resource.status"},
			{"invalid", "Bundle.entry[1].resource"},
		},
		"bundle-entry-contained-scope": { // each entry resolves #id in its own contained
			{"invariant", "Bundle.entry[1].resource.schedule.reference"},
		},

		// Invariants.
		"slot-start-after-end":                   {{"invariant", "Slot"}},
		"slot-start-equals-end-other-zone":       {{"invariant", "Slot"}},
		"slot-start-before-end-other-zone":       {},
		"period-start-after-end":                 {{"invariant", "Patient.name[0].period"}},
		"appointment-booked-without-participant": {{"required", "Appointment.participant"}},
		"appointment-booked-without-start-end":   {{"invariant", "Appointment"}},
		"appointment-proposed-without-start-end": {},
		"appointment-start-without-end": {
			{"invariant", "Appointment"}, // app-2
			{"invariant", "Appointment"}, // app-3
		},
		"appointment-participant-empty-roles": {
			{"required", "Appointment.participant[0].status"},
			{"invariant", "Appointment.participant[0]"}, // app-1
		},

		// Everything at once.
		"several-problems": {
			{"structure", "Slot.colour"},
			{"structure", "Slot.comment"},
			{"value", "Slot.start"},
			{"code-invalid", "Slot.status"},
			{"required", "Slot.schedule"},
		},
	}
	v := newValidator(t)
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := tests[strings.TrimSuffix(filepath.Base(f), ".json")]; !ok {
			t.Errorf("fixture %s has no expectation", f)
		}
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "invalid", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			issues := v.Validate(raw)
			got := summarize(issues)
			if want == nil {
				want = []issue{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("Validate(%s):\n got %v\nwant %v\n%s", name, got, want, diagnostics(issues))
			}
			for _, is := range issues {
				if is.Severity != "error" || is.Diagnostics == "" {
					t.Errorf("issue %+v: want severity error and a diagnostic", is)
				}
			}
		})
	}
}

func diagnostics(issues []fhir.Issue) string {
	var b strings.Builder
	for _, is := range issues {
		fmt.Fprintf(&b, "\t%s\n", is.Diagnostics)
	}
	return b.String()
}

// TestDiagnostics pins the wording of a few messages clients will read.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		fixture string
		want    []string
	}{
		{"date-bad-month", []string{`Patient.birthDate: "2026-13-45" is not a valid date`}},
		{"instant-without-offset", []string{`Slot.start: "2026-03-02T09:00:00" is not a valid instant`}},
		{"slot-status-not-in-binding", []string{`Slot.status: "open" is not in the required value set http://hl7.org/fhir/ValueSet/slotstatus (busy | busy-tentative | busy-unavailable | entered-in-error | free)`}},
		{"reference-wrong-target", []string{`Slot.schedule.reference: "Patient/pat-1" refers to a Patient, but Slot.schedule may only refer to Schedule`}},
		{"number-for-string", []string{`Patient.name[0].family: expected a string, got number 42`}},
		{"appointment-booked-without-start-end", []string{`Appointment: app-3: Only proposed or cancelled appointments can be missing start/end dates`}},
		{"missing-required", []string{`Slot.schedule: required element is missing (min 1)`}},
		{"choice-two-variants", []string{`Patient.deceasedDateTime: only one of deceased[x] may be present, found deceasedBoolean and deceasedDateTime`}},
	}
	v := newValidator(t)
	for _, tt := range tests {
		raw, err := os.ReadFile(filepath.Join("testdata", "invalid", tt.fixture+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, is := range v.Validate(raw) {
			got = append(got, is.Diagnostics)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Validate(%s) diagnostics:\n got %q\nwant %q", tt.fixture, got, tt.want)
		}
	}
}

// TestCheck checks the error form of the result.
func TestCheck(t *testing.T) {
	v := newValidator(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "examples", "Slot-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check("create Slot", raw); err != nil {
		t.Errorf("Check(Slot-1) = %v, want nil", err)
	}
	err = v.Check("create Slot", []byte(`{"resourceType":"Slot"}`))
	if got, want := fhir.KindOf(err), fhir.Invalid; got != want {
		t.Fatalf("Check(empty Slot) kind = %v, want %v (err %v)", got, want, err)
	}
	if got, want := len(fhir.AsError(err).Issues), 4; got != want { // schedule, status, start, end
		t.Errorf("Check(empty Slot) issues = %d, want %d: %v", got, want, err)
	}
}

// TestNewRejectsBrokenDefinitions checks that New reports definitions it
// cannot compile instead of validating against a partial tree.
func TestNewRejectsBrokenDefinitions(t *testing.T) {
	sds := conformance.StructureDefinitions()
	tests := map[string]func(map[string]json.RawMessage){
		"not JSON":     func(m map[string]json.RawMessage) { m["Slot"] = json.RawMessage(`{`) },
		"missing type": func(m map[string]json.RawMessage) { delete(m, "Reference") },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			m := map[string]json.RawMessage{}
			for k, v := range sds {
				m[k] = v
			}
			mutate(m)
			if _, err := validation.New(m, conformance.Terminology()); err == nil {
				t.Errorf("New succeeded, want an error")
			}
		})
	}
}
