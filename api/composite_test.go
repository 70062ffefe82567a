package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
)

// TestCompositeSearch searches composite parameters through the real
// server: the official DocumentReference example (relatesTo appends
// DocumentReference/example) and Questionnaires with use contexts, then
// malformed composite searches, each a 400 naming the parameter.
func TestCompositeSearch(t *testing.T) {
	s := newServer(t, app.Config{})
	s.must(request{method: "PUT", path: "DocumentReference/example", body: fixture(t, "examples/DocumentReference-example.json")}, http.StatusCreated)
	const usage = `"system":"http://terminology.hl7.org/CodeSystem/usage-context-type"`
	s.must(request{method: "PUT", path: "Questionnaire/adult", body: `{"resourceType":"Questionnaire","id":"adult","status":"active","useContext":[
		{"code":{` + usage + `,"code":"age"},"valueRange":{"low":{"value":18,"system":"http://unitsofmeasure.org","code":"a"},"high":{"value":65,"system":"http://unitsofmeasure.org","code":"a"}}},
		{"code":{` + usage + `,"code":"focus"},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"49601007"}]}}]}`}, http.StatusCreated)
	s.must(request{method: "PUT", path: "Questionnaire/child", body: `{"resourceType":"Questionnaire","id":"child","status":"active","useContext":[
		{"code":{` + usage + `,"code":"age"},"valueQuantity":{"value":8,"system":"http://unitsofmeasure.org","code":"a"}},
		{"code":{` + usage + `,"code":"venue"},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"49601007"}]}}]}`}, http.StatusCreated)

	tests := []struct {
		path string
		want []string
	}{
		{"DocumentReference?relationship=appends$DocumentReference/example", []string{"example"}},
		{"DocumentReference?relationship=appends$example", []string{"example"}},
		{"DocumentReference?relationship=replaces$DocumentReference/example", nil},
		{"DocumentReference?relationship:missing=false", []string{"example"}},
		{"Questionnaire?context-type-quantity=age$lt20", []string{"adult", "child"}},
		{"Questionnaire?context-type-quantity=age$gt60", []string{"adult"}},
		{"Questionnaire?context-type-quantity=age$8|http://unitsofmeasure.org|a", []string{"child"}},
		{"Questionnaire?context-type-value=focus$49601007", []string{"adult"}},
		// venue is 49601007 only in child, focus only in adult: same element.
		{"Questionnaire?context-type-value=venue$49601007", []string{"child"}},
		{"Questionnaire?context-type-value=focus$49601007,venue$49601007", []string{"adult", "child"}},
		{"Questionnaire?context-type-value=focus$49601007&context-type-quantity=age$8", nil},
	}
	for _, tt := range tests {
		r := s.must(request{method: "GET", path: strings.ReplaceAll(tt.path, "|", "%7C")}, http.StatusOK)
		var b bundleOf
		if err := jsonUnmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range b.Entry {
			got = append(got, e.Resource["id"].(string))
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.path, got, tt.want)
		}
	}

	// The CapabilityStatement lists them with type composite.
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type        string `json:"type"`
				SearchParam []struct{ Name, Type string }
			}
		}
	}
	if err := jsonUnmarshal(s.must(request{method: "GET", path: "metadata"}, http.StatusOK).body, &cs); err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, res := range cs.Rest[0].Resource {
		for _, p := range res.SearchParam {
			listed[res.Type+"."+p.Name] = p.Type
		}
	}
	for name, want := range map[string]string{"Questionnaire.context-type-quantity": "composite", "Questionnaire.context-type-value": "composite",
		"DocumentReference.relationship": "composite", "Questionnaire.status": "token", "Questionnaire._text": ""} {
		if got := listed[name]; got != want {
			t.Errorf("CapabilityStatement: %s has type %q, want %q", name, got, want)
		}
	}

	bad := []struct{ path, name string }{
		{"Questionnaire?context-type-quantity=age", "context-type-quantity"},
		{"Questionnaire?context-type-quantity=age$1$2", "context-type-quantity"},
		{"Questionnaire?context-type-quantity=age$lots", "context-type-quantity"},
		{"Questionnaire?context-type-quantity=age$xx10", "context-type-quantity"},
		{"Questionnaire?context-type-value:text=age$x", "context-type-value:text"},
		{"DocumentReference?relationship=appends$Patient/1", "relationship"},
	}
	for _, tt := range bad {
		r := s.do(request{method: "GET", path: tt.path})
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400; %s", tt.path, r.status, r.body)
			continue
		}
		if got := parseOutcome(t, r.body).expressions(); !slices.Equal(got, []string{tt.name}) {
			t.Errorf("%s: issue expressions %v, want [%s]", tt.path, got, tt.name)
		}
	}
}
