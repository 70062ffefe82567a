package search

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
)

// extraDefs are test-only SearchParameters: a three-component composite
// whose first component is read from the resource (%resource), as R4's
// MolecularSequence coordinates are.
const extraDefs = `[
{"resourceType":"SearchParameter","url":"https://signpost.test/SearchParameter/Observation-status","code":"status",
 "base":["Observation"],"type":"token","expression":"Observation.status"},
{"resourceType":"SearchParameter","url":"https://signpost.test/SearchParameter/Observation-status-component","code":"status-component",
 "base":["Observation"],"type":"composite","expression":"Observation.component","component":[
  {"definition":"https://signpost.test/SearchParameter/Observation-status","expression":"%resource.status"},
  {"definition":"http://hl7.org/fhir/SearchParameter/Observation-component-code","expression":"code"},
  {"definition":"http://hl7.org/fhir/SearchParameter/Observation-component-value-quantity","expression":"value.as(Quantity)"}]}
]`

// obsRegistry is a registry for Observation alone, from the official R4
// Observation composites and their components (testdata), the subset of
// the Observation StructureDefinition they walk, and extraDefs. Signpost
// does not serve Observation; its composites are R4's richest, so they
// test the engine's forms.
func obsRegistry(t testing.TB) *Registry {
	t.Helper()
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(readTestdata(t, "observation-search-parameters.json"), &bundle); err != nil {
		t.Fatal(err)
	}
	var defs []json.RawMessage
	for _, e := range bundle.Entry {
		defs = append(defs, e.Resource)
	}
	var extra []json.RawMessage
	if err := json.Unmarshal([]byte(extraDefs), &extra); err != nil {
		t.Fatal(err)
	}
	defs = append(defs, extra...)
	sds := conformance.StructureDefinitions()
	sds["Observation"] = readTestdata(t, "StructureDefinition-Observation-subset.json")
	r, err := NewRegistry(defs, Options{StructureDefinitions: sds, ResourceTypes: []string{"Observation"}, Base: testBase})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCompositeRegistry(t *testing.T) {
	tests := []struct {
		reg        *Registry
		typ, code  string
		components string // code:type of each component, in order
	}{
		{obsRegistry(t), "Observation", "code-value-quantity", "code:token value-quantity:quantity"},
		{obsRegistry(t), "Observation", "code-value-concept", "code:token value-concept:token"},
		{obsRegistry(t), "Observation", "code-value-date", "code:token value-date:date"},
		{obsRegistry(t), "Observation", "code-value-string", "code:token value-string:string"},
		{obsRegistry(t), "Observation", "combo-code-value-quantity", "combo-code:token combo-value-quantity:quantity"},
		{obsRegistry(t), "Observation", "component-code-value-concept", "component-code:token component-value-concept:token"},
		{obsRegistry(t), "Observation", "status-component", "status:token component-code:token component-value-quantity:quantity"},
		{testRegistry(t), "Questionnaire", "context-type-quantity", "context-type:token context-quantity:quantity"},
		{testRegistry(t), "Questionnaire", "context-type-value", "context-type:token context:token"},
		// R4 pairs relationship's definitions with each other's
		// expressions; the registry pairs them by expression.
		{testRegistry(t), "DocumentReference", "relationship", "relation:token relatesto:reference"},
	}
	for _, tt := range tests {
		p := tt.reg.Lookup(tt.typ, tt.code)
		if p == nil {
			t.Errorf("%s.%s: not in the registry", tt.typ, tt.code)
			continue
		}
		if p.Unsupported != "" || p.Type != Composite {
			t.Errorf("%s.%s: type %s, unsupported %q", tt.typ, tt.code, p.Type, p.Unsupported)
			continue
		}
		var got []string
		for _, c := range p.Components {
			got = append(got, c.Code+":"+string(c.Type))
		}
		if g := strings.Join(got, " "); g != tt.components {
			t.Errorf("%s.%s components = %s, want %s", tt.typ, tt.code, g, tt.components)
		}
	}
}

// TestCompositeUnsupported checks that definitions the engine cannot bind
// stay listed with a reason.
func TestCompositeUnsupported(t *testing.T) {
	defs := []json.RawMessage{
		json.RawMessage(`{"url":"u:tok","code":"tok","base":["Questionnaire"],"type":"token","expression":"Questionnaire.status"}`),
		json.RawMessage(`{"url":"u:one","code":"one","base":["Questionnaire"],"type":"composite","expression":"Questionnaire",
			"component":[{"definition":"u:tok","expression":"status"}]}`),
		json.RawMessage(`{"url":"u:four","code":"four","base":["Questionnaire"],"type":"composite","expression":"Questionnaire",
			"component":[{"definition":"u:tok","expression":"status"},{"definition":"u:tok","expression":"status"},
			{"definition":"u:tok","expression":"status"},{"definition":"u:tok","expression":"status"}]}`),
		json.RawMessage(`{"url":"u:unknown","code":"unknown","base":["Questionnaire"],"type":"composite","expression":"Questionnaire",
			"component":[{"definition":"u:tok","expression":"status"},{"definition":"u:nowhere","expression":"status"}]}`),
		json.RawMessage(`{"url":"u:bad","code":"bad","base":["Questionnaire"],"type":"composite","expression":"Questionnaire",
			"component":[{"definition":"u:tok","expression":"status"},{"definition":"u:tok","expression":"nosuch"}]}`),
	}
	r, err := NewRegistry(defs, Options{StructureDefinitions: conformance.StructureDefinitions(), ResourceTypes: []string{"Questionnaire"}})
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[string]string{"one": "at least 2", "four": "at most 3", "unknown": "u:nowhere is not known", "bad": "nosuch"} {
		p := r.Lookup("Questionnaire", code)
		if p == nil || !strings.Contains(p.Unsupported, want) {
			t.Errorf("%s: Unsupported = %q, want it to mention %q", code, p.Unsupported, want)
		}
	}
}

// observations are the fixtures of the composite search tests.
var observations = map[string]string{
	// A blood pressure panel: systolic 120, diastolic 80, as components.
	"bp": `{"resourceType":"Observation","id":"bp","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
		"component":[
			{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	"bp-high": `{"resourceType":"Observation","id":"bp-high","status":"preliminary",
		"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
		"component":[
			{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":95,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	"weight": `{"resourceType":"Observation","id":"weight","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"},{"system":"http://snomed.info/sct","code":"27113001"}]},
		"valueQuantity":{"value":72.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`,
	"abo": `{"resourceType":"Observation","id":"abo","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"882-1"}]},
		"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"278149003","display":"Blood group A Rh(D) positive"}]}}`,
	"lmp": `{"resourceType":"Observation","id":"lmp","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8665-2"}]},"valueDateTime":"2026-03-10"}`,
	"lmp-period": `{"resourceType":"Observation","id":"lmp-period","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8665-2"}]},"valuePeriod":{"start":"2026-02-01","end":"2026-02-05"}}`,
	"note": `{"resourceType":"Observation","id":"note","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8251-1"}]},"valueString":"Feeling Better today"}`,
	// A code with a $ in it, searched with \$.
	"dollar": `{"resourceType":"Observation","id":"dollar","status":"final",
		"code":{"coding":[{"system":"urn:x","code":"a$b"}]},"valueQuantity":{"value":1}}`,
	// The same-element rule: A is 1 and B is 2, so A$2 must not match.
	"ab": `{"resourceType":"Observation","id":"ab","status":"final","code":{"text":"pair"},
		"component":[
			{"code":{"coding":[{"system":"urn:t","code":"A"}]},"valueQuantity":{"value":1}},
			{"code":{"coding":[{"system":"urn:t","code":"B"}]},"valueQuantity":{"value":2}}]}`,
}

func obsOracle(t *testing.T, r *Registry) *Oracle {
	t.Helper()
	var rs []*fhir.Resource
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	keys := make([]string, 0, len(observations))
	for id := range observations {
		keys = append(keys, id)
	}
	slices.Sort(keys)
	for i, id := range keys {
		rs = append(rs, &fhir.Resource{Type: "Observation", ID: id, JSON: []byte(observations[id]), LastUpdated: t0.Add(time.Duration(i) * time.Second)})
	}
	o, err := NewOracle(r, rs)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCompositeExtract(t *testing.T) {
	r := obsRegistry(t)
	es, err := r.Extract("Observation", []byte(observations["bp"]))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.Type != Composite {
			continue
		}
		var parts []string
		for _, c := range e.Components {
			switch c.Type {
			case Quantity:
				parts = append(parts, fmt.Sprintf("%s=[%g,%g)%s", c.Param, c.NumLow, c.NumHigh, c.Value))
			default:
				parts = append(parts, fmt.Sprintf("%s=%s|%s", c.Param, c.System, c.Value))
			}
		}
		got = append(got, e.Param+": "+strings.Join(parts, " "))
	}
	want := []string{
		"combo-code-value-quantity: combo-code=http://loinc.org|8480-6 combo-value-quantity=[119.5,120.5)mm[Hg]",
		"combo-code-value-quantity: combo-code=http://loinc.org|8462-4 combo-value-quantity=[79.5,80.5)mm[Hg]",
		"component-code-value-quantity: component-code=http://loinc.org|8480-6 component-value-quantity=[119.5,120.5)mm[Hg]",
		"component-code-value-quantity: component-code=http://loinc.org|8462-4 component-value-quantity=[79.5,80.5)mm[Hg]",
		"status-component: status=|final component-code=http://loinc.org|8480-6 component-value-quantity=[119.5,120.5)mm[Hg]",
		"status-component: status=|final component-code=http://loinc.org|8462-4 component-value-quantity=[79.5,80.5)mm[Hg]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("composite entries of bp:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Two codings and one value: one tuple per coding.
	es, _ = r.Extract("Observation", []byte(observations["weight"]))
	n := 0
	for _, e := range es {
		if e.Param == "code-value-quantity" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("weight: %d code-value-quantity tuples, want 2 (one per coding)", n)
	}
}

// TestCompositeSearch runs composite searches through the parser and the
// oracle, which defines their semantics for every store.
func TestCompositeSearch(t *testing.T) {
	r := obsRegistry(t)
	o := obsOracle(t, r)
	tests := []struct {
		query string
		want  string // ids in result order, space separated
	}{
		// token$quantity: prefixes, units, systems.
		{"code-value-quantity=http://loinc.org|29463-7$72.5", "weight"},
		{"code-value-quantity=29463-7$gt70", "weight"},
		{"code-value-quantity=29463-7$lt70", ""},
		{"code-value-quantity=http://snomed.info/sct|27113001$ge72.5", "weight"},
		{"code-value-quantity=29463-7$72.5|http://unitsofmeasure.org|kg", "weight"},
		{"code-value-quantity=29463-7$72.5||kg", "weight"},
		{"code-value-quantity=29463-7$72.5|http://unitsofmeasure.org|g", ""},
		{"code-value-quantity=29463-7$ap75", "weight"},
		{"code-value-quantity=29463-7$ne72.5", ""},
		{"code-value-quantity=http://other|29463-7$72.5", ""},
		// The panel's code has no value; its components are not the code.
		{"code-value-quantity=http://loinc.org|8480-6$gt100", ""},
		{"component-code-value-quantity=http://loinc.org|8480-6$gt100", "bp bp-high"},
		{"component-code-value-quantity=http://loinc.org|8480-6$gt130", "bp-high"},
		{"component-code-value-quantity=8462-4$80", "bp"},
		// Same element: bp's diastolic is 80 but its systolic is 120.
		{"component-code-value-quantity=8480-6$80", ""},
		{"component-code-value-quantity=urn:t|A$1", "ab"},
		{"component-code-value-quantity=urn:t|A$2", ""},
		{"component-code-value-quantity=urn:t|B$2", "ab"},
		{"combo-code-value-quantity=urn:t|A$2", ""},
		{"combo-code-value-quantity=8480-6$ge150", "bp-high"},
		{"combo-code-value-quantity=29463-7$72.5", "weight"},
		// OR of whole tuples; AND of parameters.
		{"component-code-value-quantity=8480-6$gt140,8462-4$lt85", "bp bp-high"},
		{"component-code-value-quantity=urn:t|A$2,urn:t|B$1", ""},
		{"component-code-value-quantity=8480-6$gt100&component-code-value-quantity=8462-4$gt90", "bp-high"},
		// token$concept.
		{"code-value-concept=http://loinc.org|882-1$http://snomed.info/sct|278149003", "abo"},
		{"code-value-concept=882-1$278149003", "abo"},
		{"code-value-concept=882-1$278149004", ""},
		{"code-value-concept=882-1$http://loinc.org|278149003", ""},
		// token$date at several precisions.
		{"code-value-date=8665-2$2026-03", "lmp"},
		{"code-value-date=8665-2$2026-03-10", "lmp"},
		{"code-value-date=8665-2$2026", "lmp lmp-period"},
		{"code-value-date=8665-2$ge2026-03-11", ""},
		{"code-value-date=8665-2$lt2026-02-03", "lmp-period"},
		{"code-value-date=8665-2$sa2026-02-28", "lmp"},
		{"code-value-date=8251-1$2026", ""},
		// token$string: prefix, case- and accent-insensitive.
		{"code-value-string=8251-1$feeling", "note"},
		{"code-value-string=8251-1$FÉELING%20b", "note"},
		{"code-value-string=8251-1$better", ""},
		// Escaping: \$ is part of the code.
		{`code-value-quantity=urn:x|a\$b$1`, "dollar"},
		// Three components, the first from the resource.
		{"status-component=final$8480-6$120", "bp"},
		{"status-component=preliminary$8480-6$120", ""},
		{"status-component=preliminary$8480-6$gt120", "bp-high"},
		// :missing on the composite.
		{"code-value-string:missing=false", "note"},
		{"component-code-value-quantity:missing=true", "abo dollar lmp lmp-period note weight"},
	}
	for _, tt := range tests {
		q, err := r.Parse("Observation", mustQuery(t, tt.query), ParseOptions{Strict: true})
		if err != nil {
			t.Errorf("%s: %v", tt.query, err)
			continue
		}
		var got []string
		for _, res := range o.Search(q) {
			got = append(got, res.ID)
		}
		slices.Sort(got)
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%s = [%s], want [%s]", tt.query, g, tt.want)
		}
	}
}

func TestCompositeParse(t *testing.T) {
	r := obsRegistry(t)
	q, err := r.Parse("Observation", mustQuery(t, "code-value-quantity=http://loinc.org|8480-6$gt100|http://unitsofmeasure.org|mm[Hg],8462-4$le9e1"), ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Expr{Or{
		CompositeMatch{Param: "code-value-quantity", Components: []Expr{
			TokenIn{Param: "code", System: "http://loinc.org", HasSystem: true, Codes: []string{"8480-6"}},
			NumberMatch{Param: "value-quantity", Prefix: Gt, Low: 99.5, High: 100.5, System: "http://unitsofmeasure.org", Unit: "mm[Hg]", HasUnit: true}}},
		CompositeMatch{Param: "code-value-quantity", Components: []Expr{
			TokenIn{Param: "code", Codes: []string{"8462-4"}},
			NumberMatch{Param: "value-quantity", Prefix: Le, Low: 85, High: 95}}},
	}}
	if !reflect.DeepEqual(q.Filter, want) {
		t.Errorf("Filter = %#v\nwant %#v", q.Filter, want)
	}
}

// TestCompositeBadInput checks that every malformed composite search is a
// client error naming the parameter.
func TestCompositeBadInput(t *testing.T) {
	r := obsRegistry(t)
	tests := []struct {
		query, name, diag string
	}{
		{"code-value-quantity=8480-6", "code-value-quantity", "takes 2 values separated by $"},
		{"code-value-quantity=8480-6$1$2", "code-value-quantity", "not 3"},
		{"code-value-quantity=8480-6$abc", "code-value-quantity", "component 2 (value-quantity)"},
		{"code-value-quantity=8480-6$zz100", "code-value-quantity", "unknown prefix"},
		{"code-value-quantity=8480-6$100|kg", "code-value-quantity", "number|system|code"},
		{"code-value-quantity=$100", "code-value-quantity", "component 1 (code) is empty"},
		{"code-value-quantity=8480-6$", "code-value-quantity", "component 2 (value-quantity) is empty"},
		{"code-value-date=8665-2$2026-13", "code-value-date", "not a valid date"},
		{"code-value-quantity:exact=8480-6$1", "code-value-quantity:exact", "modifier :exact"},
		{"code-value-quantity:not=8480-6$1", "code-value-quantity:not", "modifier :not"},
		{"code-value-quantity:missing=maybe", "code-value-quantity:missing", ":missing must be true or false"},
		{"code-value-quantity=", "code-value-quantity", "empty value"},
		{"_sort=code-value-quantity", "_sort", "cannot sort by composite"},
	}
	for _, tt := range tests {
		_, err := r.Parse("Observation", mustQuery(t, tt.query), ParseOptions{})
		var fe *fhir.Error
		if !errors.As(err, &fe) || len(fe.Issues) != 1 {
			t.Errorf("%s: error %v, want one issue", tt.query, err)
			continue
		}
		is := fe.Issues[0]
		if fe.Kind != fhir.Invalid || !slices.Equal(is.Expression, []string{tt.name}) || !strings.Contains(is.Diagnostics, tt.diag) {
			t.Errorf("%s: %v %v %q; want invalid, [%s], %q", tt.query, fe.Kind, is.Expression, is.Diagnostics, tt.name, tt.diag)
		}
	}
}

// TestCompositeServed checks the served types' composites on their official
// forms: Questionnaire useContext and DocumentReference relatesTo.
func TestCompositeServed(t *testing.T) {
	r := testRegistry(t)
	resources := []*fhir.Resource{
		{Type: "Questionnaire", ID: "q1", JSON: []byte(`{"resourceType":"Questionnaire","id":"q1","status":"active","useContext":[
			{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"age"},
			 "valueRange":{"low":{"value":18,"system":"http://unitsofmeasure.org","code":"a"},"high":{"value":65,"system":"http://unitsofmeasure.org","code":"a"}}},
			{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"focus"},
			 "valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"49601007"}]}}]}`)},
		{Type: "Questionnaire", ID: "q2", JSON: []byte(`{"resourceType":"Questionnaire","id":"q2","status":"active","useContext":[
			{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"age"},"valueQuantity":{"value":70,"system":"http://unitsofmeasure.org","code":"a"}},
			{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"venue"},
			 "valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"49601007"}]}}]}`)},
		{Type: "DocumentReference", ID: "d1", JSON: []byte(`{"resourceType":"DocumentReference","id":"d1","status":"current","content":[{"attachment":{"url":"x"}}],
			"relatesTo":[{"code":"appends","target":{"reference":"DocumentReference/d0"}},{"code":"replaces","target":{"reference":"DocumentReference/d9"}}]}`)},
	}
	for i, res := range resources {
		res.LastUpdated = time.Date(2026, 3, 1, 9, 0, i, 0, time.UTC)
	}
	o, err := NewOracle(r, resources)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, query, want string
	}{
		// A range (18 to 65) equals no single value; prefixes compare its ends.
		{"Questionnaire", "context-type-quantity=age$40", ""},
		{"Questionnaire", "context-type-quantity=age$lt20", "q1"},
		{"Questionnaire", "context-type-quantity=age$ge70", "q2"},
		{"Questionnaire", "context-type-quantity=age$gt60", "q1 q2"},
		{"Questionnaire", "context-type-quantity=focus$40", ""},
		{"Questionnaire", "context-type-value=focus$49601007", "q1"},
		{"Questionnaire", "context-type-value=http://terminology.hl7.org/CodeSystem/usage-context-type|venue$http://snomed.info/sct|49601007", "q2"},
		{"Questionnaire", "context-type-value=age$49601007", ""},
		{"DocumentReference", "relationship=appends$DocumentReference/d0", "d1"},
		{"DocumentReference", "relationship=replaces$d9", "d1"},
		{"DocumentReference", "relationship=replaces$DocumentReference/d0", ""},
	}
	for _, tt := range tests {
		q, err := r.Parse(tt.typ, url.Values{strings.SplitN(tt.query, "=", 2)[0]: {strings.SplitN(tt.query, "=", 2)[1]}}, ParseOptions{Strict: true})
		if err != nil {
			t.Errorf("%s?%s: %v", tt.typ, tt.query, err)
			continue
		}
		var got []string
		for _, res := range o.Search(q) {
			got = append(got, res.ID)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%s?%s = [%s], want [%s]", tt.typ, tt.query, g, tt.want)
		}
	}
}

func BenchmarkExtractObservationComposites(b *testing.B) {
	r := obsRegistry(b)
	body := []byte(observations["bp"])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract("Observation", body); err != nil {
			b.Fatal(err)
		}
	}
}
