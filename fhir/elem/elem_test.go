package elem_test

import (
	"encoding/json"
	"testing"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/fhir/elem"
)

func TestHelpers(t *testing.T) {
	var cc r4.CodeableConcept
	if err := json.Unmarshal([]byte(`{"coding":[{"system":"a","code":"1"},{"code":"2"},{"system":"b","code":"3"},{"system":"b","code":"4"}]}`), &cc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"Str(nil)", elem.Str(nil), ""},
		{"Opt(\"\")", elem.Opt(""), (*string)(nil)},
		{"Str(Opt(x))", elem.Str(elem.Opt("x")), "x"},
		{"Ref", elem.Str(elem.Ref("Patient/1").Reference), "Patient/1"},
		{"HasCoding a|1", elem.HasCoding(cc, "a", "1"), true},
		{"HasCoding |2", elem.HasCoding(cc, "", "2"), true},
		{"HasCoding a|2", elem.HasCoding(cc, "a", "2"), false},
		{"CodeIn b", elem.CodeIn(cc, "b"), "3"},
		{"CodeIn c", elem.CodeIn(cc, "c"), ""},
		{"Extensions", len(elem.Extensions([]r4.Extension{{Url: "u"}, {Url: "v"}, {Url: "u"}}, "u")), 2},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	b, _ := json.Marshal(elem.Ref(""))
	if string(b) != "{}" {
		t.Errorf("Ref(\"\") marshals as %s, want {}", b)
	}
}
