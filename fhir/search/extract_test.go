package search

import (
	"reflect"
	"strings"
	"testing"
)

// TestExtractExamples extracts the official examples in testdata and checks
// the entries of the parameters Signpost's searches rely on.
func TestExtractExamples(t *testing.T) {
	r := testRegistry(t)
	loc := london(t)
	day := func(s string) [2]int64 {
		lo, hi, err := DateRange(s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return [2]int64{lo, hi}
	}
	tests := []struct {
		file, typ, param string
		want             []Entry
	}{
		{"Slot-1.json", "Slot", "schedule", []Entry{{Param: "schedule", Type: Reference, RefType: "Schedule", RefID: "example"}}},
		{"Slot-1.json", "Slot", "start", []Entry{{Param: "start", Type: Date,
			Low: day("2013-12-25T09:00:00Z")[0], High: day("2013-12-25T09:00:01Z")[0]}}},
		{"Slot-1.json", "Slot", "service-category", []Entry{{Param: "service-category", Type: Token, Value: "17", Text: "general practice"}}},
		{"Patient-example.json", "Patient", "birthdate", []Entry{{Param: "birthdate", Type: Date,
			Low: day("1974-12-25")[0], High: day("1974-12-25")[1]}}},
		{"Patient-example.json", "Patient", "identifier", []Entry{
			{Param: "identifier", Type: Token, System: "urn:oid:1.2.36.146.595.217.0.1", Value: "12345"}}},
		{"Patient-example.json", "Patient", "identifier:of-type", []Entry{
			{Param: "identifier:of-type", Type: Token, System: "http://terminology.hl7.org/CodeSystem/v2-0203", Value: "MR|12345"}}},
		{"Patient-example.json", "Patient", "deceased", []Entry{{Param: "deceased", Type: Token, Value: "false"}}},
		{"Patient-example.json", "Patient", "email", nil},
		{"Patient-example.json", "Patient", "family", []Entry{
			{Param: "family", Type: String, Text: "chalmers", Value: "Chalmers"},
			{Param: "family", Type: String, Text: "windsor", Value: "Windsor"}}},
		{"Appointment-example.json", "Appointment", "patient", []Entry{{Param: "patient", Type: Reference, RefType: "Patient", RefID: "example"}}},
		{"Appointment-example.json", "Appointment", "practitioner", []Entry{{Param: "practitioner", Type: Reference, RefType: "Practitioner", RefID: "example"}}},
		{"Appointment-example.json", "Appointment", "end", []Entry{{Param: "end", Type: Date,
			Low: day("2013-12-10T11:00:00Z")[0], High: day("2013-12-10T11:00:01Z")[0]}}},
		{"Schedule-example.json", "Schedule", "date", []Entry{{Param: "date", Type: Date,
			Low: day("2013-12-25T09:15:00Z")[0], High: day("2013-12-25T09:30:00Z")[0] + 1e6}}},
		{"Location-1.json", "Location", "near", []Entry{{Param: "near", Type: Special, NumLow: 42.25475478, NumHigh: -83.6945691}}},
		{"HealthcareService-example.json", "HealthcareService", "specialty", []Entry{
			{Param: "specialty", Type: Token, System: "http://snomed.info/sct", Value: "47505003", Text: "posttraumatic stress disorder"}}},
		{"PractitionerRole-example.json", "PractitionerRole", "email", []Entry{
			{Param: "email", Type: Token, System: "email", Value: "adam.southern@example.org"}}},
	}
	for _, tt := range tests {
		all, err := r.Extract(tt.typ, readTestdata(t, tt.file))
		if err != nil {
			t.Errorf("Extract(%s): %v", tt.file, err)
			continue
		}
		var got []Entry
		for _, e := range all {
			if e.Param == tt.param {
				got = append(got, e)
			}
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s %s: got %+v, want %+v", tt.file, tt.param, got, tt.want)
			continue
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], tt.want[i]) {
				t.Errorf("%s %s[%d]:\n got %+v\nwant %+v", tt.file, tt.param, i, got[i], tt.want[i])
			}
		}
	}
}

func TestExtractErrors(t *testing.T) {
	r := testRegistry(t)
	for _, tt := range []struct{ typ, body, want string }{
		{"Slot", `{"resourceType":"Slot",`, "JSON"},
		{"Slot", `[1]`, "not a JSON object"},
		{"Nonsense", `{}`, "no search parameters"},
	} {
		_, err := r.Extract(tt.typ, []byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Extract(%s, %s) = %v, want an error containing %q", tt.typ, tt.body, err, tt.want)
		}
	}
}

func TestExtractEscapes(t *testing.T) {
	r := testRegistry(t)
	es, err := r.Extract("Patient", []byte(`{"resourceType":"Patient","id":"x","name":[{"family":"Zo\u00eb \"Q\"\n"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Param == "family" {
			if e.Value != "Zoë \"Q\"\n" || e.Text != `zoe "q"` {
				t.Errorf("family = %+v", e)
			}
			return
		}
	}
	t.Error("no family entry")
}
