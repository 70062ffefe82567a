package search

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/fhir"
)

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseFilter(t *testing.T) {
	r := testRegistry(t)
	day := func(s string) (int64, int64) {
		lo, hi, err := DateRange(s, r.Location())
		if err != nil {
			t.Fatal(err)
		}
		return lo, hi
	}
	d1, d1h := day("2026-03-01")
	i1, i1h := day("2026-03-01T10:00:00+01:00")
	tests := []struct {
		typ, query string
		want       []Expr
	}{
		{"Slot", "status=free", []Expr{TokenIn{Param: "status", Codes: []string{"free"}}}},
		{"Slot", "status=free,busy-tentative", []Expr{TokenIn{Param: "status", Codes: []string{"free", "busy-tentative"}}}},
		{"Slot", "status:not=busy", []Expr{Not{TokenIn{Param: "status", Codes: []string{"busy"}}}}},
		{"Patient", "identifier=|123", []Expr{TokenIn{Param: "identifier", HasSystem: true, Codes: []string{"123"}}}},
		{"Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009",
			[]Expr{TokenIn{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", HasSystem: true, Codes: []string{"9000000009"}}}},
		{"Patient", "identifier=sys|",
			[]Expr{TokenIn{Param: "identifier", System: "sys", HasSystem: true, Codes: []string{""}}}},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345",
			[]Expr{TokenIn{Param: "identifier:of-type", System: "http://terminology.hl7.org/CodeSystem/v2-0203", HasSystem: true, Codes: []string{"MR|12345"}}}},
		{"Slot", "service-type:text=Général", []Expr{TokenText{Param: "service-type", Text: "general"}}},
		// Escaping: \, is not an OR, \| not a system separator.
		{"Patient", `identifier=a\,b,c\|d`, []Expr{TokenIn{Param: "identifier", Codes: []string{"a,b", "c|d"}}}},
		{"Patient", "family=Zoë", []Expr{StringMatch{Param: "family", Value: "zoe"}}},
		{"Patient", "family:exact=Zoë", []Expr{StringMatch{Param: "family", Mode: StringExact, Value: "Zoë"}}},
		{"Patient", "family:contains=OE", []Expr{StringMatch{Param: "family", Mode: StringContains, Value: "oe"}}},
		{"Slot", "start=ge2026-03-01", []Expr{DateMatch{Param: "start", Prefix: Ge, Low: d1, High: d1h}}},
		{"Slot", "start=2026-03-01", []Expr{DateMatch{Param: "start", Prefix: Eq, Low: d1, High: d1h}}},
		{"Slot", "start=lt2026-03-01T10:00:00%2B01:00", []Expr{DateMatch{Param: "start", Prefix: Lt, Low: i1, High: i1h}}},
		// An unencoded '+' arrives as a space; it is read as '+'.
		{"Slot", "start=lt2026-03-01T10:00:00+01:00", []Expr{DateMatch{Param: "start", Prefix: Lt, Low: i1, High: i1h}}},
		{"Slot", "_lastUpdated=gt2026-03-01", []Expr{DateMatch{Param: "_lastUpdated", Prefix: Gt, Low: d1, High: d1h}}},
		{"Slot", "schedule=Schedule/s1", []Expr{RefIn{Param: "schedule", Refs: []Ref{{Type: "Schedule", ID: "s1"}}}}},
		{"Slot", "schedule=s1", []Expr{RefIn{Param: "schedule", Refs: []Ref{{ID: "s1"}}}}},
		{"Slot", "schedule=" + url.QueryEscape(testBase+"/Schedule/s1"), []Expr{RefIn{Param: "schedule", Refs: []Ref{{Type: "Schedule", ID: "s1"}}}}},
		{"Slot", "schedule=https://elsewhere.example/fhir/Schedule/s1",
			[]Expr{RefIn{Param: "schedule", Refs: []Ref{{URL: "https://elsewhere.example/fhir/Schedule/s1"}}}}},
		{"Appointment", "actor:Patient=p1", []Expr{RefIn{Param: "actor", Refs: []Ref{{Type: "Patient", ID: "p1"}}}}},
		{"Appointment", "based-on:identifier=https://fhir.nhs.uk/Id/UBRN|000000000001",
			[]Expr{TokenIn{Param: "based-on:identifier", System: "https://fhir.nhs.uk/Id/UBRN", HasSystem: true, Codes: []string{"000000000001"}}}},
		{"Slot", "specialty:missing=true", []Expr{Missing{Param: "specialty", Missing: true}}},
		{"Slot", "_id=a,b", []Expr{IDIn{IDs: []string{"a", "b"}}}},
		{"Questionnaire", "url:below=http://example.org/q", []Expr{URIMatch{Param: "url", Mode: URIBelow, Value: "http://example.org/q"}}},
		{"Location", "near=51.5|-0.12|5|km", []Expr{Near{Param: "near", Lat: 51.5, Lon: -0.12, KM: 5}}},
		// AND by repetition.
		{"Slot", "start=ge2026-03-01&start=le2026-03-01", []Expr{
			DateMatch{Param: "start", Prefix: Ge, Low: d1, High: d1h}, DateMatch{Param: "start", Prefix: Le, Low: d1, High: d1h}}},
		// Chaining, two levels, with a type qualifier.
		{"Slot", "schedule.actor:HealthcareService.specialty=http://snomed.info/sct|394814009", []Expr{
			Chain{Param: "schedule", Target: "Schedule", Filter: Chain{Param: "actor", Target: "HealthcareService",
				Filter: TokenIn{Param: "specialty", System: "http://snomed.info/sct", HasSystem: true, Codes: []string{"394814009"}}}}}},
		// Reverse chaining, nested.
		{"Patient", "_has:Appointment:patient:status=booked", []Expr{
			Has{Type: "Appointment", Param: "patient", Filter: TokenIn{Param: "status", Codes: []string{"booked"}}}}},
		{"Schedule", "_has:Slot:schedule:_has:Appointment:slot:status=booked", []Expr{
			Has{Type: "Slot", Param: "schedule", Filter: Has{Type: "Appointment", Param: "slot",
				Filter: TokenIn{Param: "status", Codes: []string{"booked"}}}}}},
	}
	for _, tt := range tests {
		q, err := r.Parse(tt.typ, mustQuery(t, tt.query), ParseOptions{Strict: true})
		if err != nil {
			t.Errorf("Parse(%s?%s): %v", tt.typ, tt.query, err)
			continue
		}
		if !reflect.DeepEqual(q.Filter, tt.want) {
			t.Errorf("Parse(%s?%s).Filter\n got %#v\nwant %#v", tt.typ, tt.query, q.Filter, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		typ, query string
		strict     bool
		wantExpr   []string // the parameters named, in order
	}{
		{"Slot", "status:exact=free", false, []string{"status:exact"}}, // unsupported modifier: always 400
		{"Slot", "status:nonsense=free", false, []string{"status:nonsense"}},
		{"Slot", "start=2026-02-30", false, []string{"start"}},
		{"Slot", "start=xx2026-02-01", false, []string{"start"}}, // unknown prefix
		{"Slot", "start:missing=maybe", false, []string{"start:missing"}},
		{"Slot", "schedule:Patient=x", false, []string{"schedule:Patient"}},
		{"Slot", "schedule.nonsense=x", false, []string{"schedule.nonsense"}},
		{"Slot", "_count=-1", false, []string{"_count"}},
		{"Slot", "_sort=nonsense", false, []string{"_sort"}},
		{"Slot", "_include=Slot:status", false, []string{"_include"}},
		{"Slot", "_total=some", false, []string{"_total"}},
		{"Slot", "foo=1&bar=2&status=free", true, []string{"bar", "foo"}},
		{"Patient", "_text=cough", true, []string{"_text"}},
	}
	for _, tt := range tests {
		_, err := r.Parse(tt.typ, mustQuery(t, tt.query), ParseOptions{Strict: tt.strict})
		var fe *fhir.Error
		if !errors.As(err, &fe) || fe.Kind != fhir.Invalid {
			t.Errorf("Parse(%s?%s) = %v, want an Invalid *fhir.Error", tt.typ, tt.query, err)
			continue
		}
		var got []string
		for _, is := range fe.Issues {
			got = append(got, is.Expression...)
		}
		if !reflect.DeepEqual(got, tt.wantExpr) {
			t.Errorf("Parse(%s?%s) issues name %v, want %v (%v)", tt.typ, tt.query, got, tt.wantExpr, err)
		}
	}
}

func TestParseLenient(t *testing.T) {
	r := testRegistry(t)
	q, err := r.Parse("Slot", mustQuery(t, "foo=1&status=free&_text=x&_count=5000&_format=json"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.Ignored, []string{"_text", "foo"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ignored = %v, want %v", got, want)
	}
	if got, want := q.Canonical(), "_count=1000&status=free"; got != want {
		t.Errorf("Canonical() = %q, want %q", got, want)
	}
	if q.Count != 1000 {
		t.Errorf("Count = %d, want the maximum 1000", q.Count)
	}
}

func TestParseResultParams(t *testing.T) {
	r := testRegistry(t)
	q, err := r.Parse("Slot", mustQuery(t,
		"schedule.actor:HealthcareService=hs1&status=free&start=ge2026-03-01&start=le2026-03-14"+
			"&_include=Slot:schedule&_include:iterate=Schedule:actor:Practitioner&_include:recurse=Schedule:actor:Location"+
			"&_revinclude=Appointment:slot&_sort=start,-_lastUpdated&_count=10&_total=accurate&_summary=data"+
			"&_elements=start,end&_cursor=abc"), ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	wantInc := []Include{
		{Source: "Slot", Param: "schedule"},
		{Source: "Schedule", Param: "actor", Target: "Practitioner", Iterate: true}, // _include:iterate
		{Source: "Schedule", Param: "actor", Target: "Location", Iterate: true},     // _include:recurse (STU3)
	}
	if !reflect.DeepEqual(q.Include, wantInc) {
		t.Errorf("Include = %+v, want %+v", q.Include, wantInc)
	}
	if want := []Include{{Source: "Appointment", Param: "slot"}}; !reflect.DeepEqual(q.RevInclude, want) {
		t.Errorf("RevInclude = %+v, want %+v", q.RevInclude, want)
	}
	if want := []SortKey{{Param: "start", Type: Date}, {Param: "_lastUpdated", Type: Date, Desc: true}}; !reflect.DeepEqual(q.Sort, want) {
		t.Errorf("Sort = %+v, want %+v", q.Sort, want)
	}
	if q.Count != 10 || q.Total != TotalAccurate || q.Summary != SummaryData || q.Cursor != "abc" ||
		!reflect.DeepEqual(q.Elements, []string{"start", "end"}) {
		t.Errorf("got Count %d Total %q Summary %q Cursor %q Elements %v", q.Count, q.Total, q.Summary, q.Cursor, q.Elements)
	}
	if got := q.Canonical(); strings.Contains(got, "_cursor") || !strings.Contains(got, "_include%3Aiterate=Schedule%3Aactor%3APractitioner") {
		t.Errorf("Canonical() = %q: want the include and no cursor", got)
	}
	if len(q.Filter) != 4 {
		t.Errorf("Filter has %d expressions, want 4: %#v", len(q.Filter), q.Filter)
	}
}
