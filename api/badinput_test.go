package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
)

const slotBody = `{"resourceType":"Slot","schedule":{"reference":"Schedule/s1"},"status":"free","start":"2026-03-01T09:00:00Z","end":"2026-03-01T09:15:00Z"}`

// slot returns slotBody with old replaced by new.
func slot(old, new string) string {
	if !strings.Contains(slotBody, old) {
		panic("slot: " + old + " is not in the Slot")
	}
	return strings.Replace(slotBody, old, new, 1)
}

// pat returns a Patient whose members after resourceType are members.
func pat(members string) string { return `{"resourceType":"Patient",` + members + `}` }

func nested(depth int) string {
	return pat(`"extension":` + strings.Repeat("[", depth) + strings.Repeat("]", depth))
}

// entry is a Bundle entry as JSON.
func entry(method, url, resource string) string {
	e := `{"request":{"method":"` + method + `","url":"` + url + `"}`
	if resource != "" {
		e += `,"resource":` + resource
	}
	return e + "}"
}

func bundle(typ string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

// TestBadInput sends requests that must be refused. Each gets the status
// wanted and an OperationOutcome whose issues locate the problem (wantExpr,
// sorted; nil where the problem has no location in a resource), and the
// store must hold exactly what it held before.
func TestBadInput(t *testing.T) {
	const maxBody = 256 << 10
	s := newServer(t, app.Config{MaxBodyBytes: maxBody})
	s.must(request{method: "PUT", path: "Patient/p1", body: patientWithID("p1", "bad1", "One")}, http.StatusCreated)
	s.must(request{method: "PUT", path: "Patient/p1", body: patientWithID("p1", "bad1", "Two")}, http.StatusOK)
	s.must(request{method: "PUT", path: "Patient/dup1", body: patientWithID("dup1", "dup", "A")}, http.StatusCreated)
	s.must(request{method: "PUT", path: "Patient/dup2", body: patientWithID("dup2", "dup", "B")}, http.StatusCreated)
	const patchCT = "application/json-patch+json"
	huge := pat(`"name":[{"text":"` + strings.Repeat("x", maxBody) + `"}]`)

	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantExpr   []string
	}{
		// Not JSON, or not one JSON object.
		{"truncated JSON", request{method: "POST", path: "Patient", body: `{"resourceType":"Patient","name":[`}, 400, nil},
		{"truncated in a string", request{method: "POST", path: "Patient", body: `{"resourceType":"Patient","gender":"fem`}, 400, nil},
		{"trailing content", request{method: "POST", path: "Patient", body: `{"resourceType":"Patient"} {}`}, 400, nil},
		{"XML sent as JSON", request{method: "POST", path: "Patient", body: `<Patient xmlns="http://hl7.org/fhir"/>`}, 400, nil},
		{"NaN", request{method: "POST", path: "Patient", body: pat(`"multipleBirthInteger":NaN`)}, 400, nil},
		{"leading zero", request{method: "POST", path: "Patient", body: pat(`"multipleBirthInteger":01`)}, 400, nil},
		{"empty body", request{method: "POST", path: "Patient", body: " ", header: map[string]string{"Content-Type": "application/fhir+json"}}, 400, nil},
		{"no body", request{method: "POST", path: "Patient", header: map[string]string{"Content-Type": "application/fhir+json"}}, 400, nil},
		{"array body", request{method: "POST", path: "Patient", body: `[` + pat(`"gender":"male"`) + `]`}, 400, nil},
		{"string body", request{method: "POST", path: "Patient", body: `"Patient"`}, 400, nil},
		{"null body", request{method: "POST", path: "Patient", body: `null`}, 400, nil},
		{"10,000-deep nesting", request{method: "POST", path: "Patient", body: nested(10000)}, 400, nil},
		{"10,000-deep nesting in an update", request{method: "PUT", path: "Patient/p1", body: nested(10000)}, 400, nil},
		{"10,000-deep nesting in a Bundle", request{method: "POST", path: "", body: bundle("batch", entry("POST", "Patient", nested(10000)))}, 400, nil},
		{"10,000-deep nesting in a patch", request{method: "PATCH", path: "Patient/p1", body: strings.Repeat("[", 10000) + strings.Repeat("]", 10000), header: map[string]string{"Content-Type": patchCT}}, 400, nil},
		{"duplicate member", request{method: "POST", path: "Patient", body: pat(`"gender":"male","gender":"female"`)}, 400, []string{"Patient.gender"}},
		{"duplicate nested member", request{method: "POST", path: "Patient", body: pat(`"name":[{"family":"A","family":"B"}]`)}, 400, []string{"Patient.name[0].family"}},

		// Wrong JSON types and unknown content.
		{"date as a number", request{method: "POST", path: "Patient", body: pat(`"birthDate":19700101`)}, 400, []string{"Patient.birthDate"}},
		{"boolean as a string", request{method: "POST", path: "Patient", body: pat(`"active":"yes"`)}, 400, []string{"Patient.active"}},
		{"array as an object", request{method: "POST", path: "Patient", body: pat(`"name":{"family":"A"}`)}, 400, []string{"Patient.name"}},
		{"object as a string", request{method: "POST", path: "Patient", body: pat(`"maritalStatus":"M"`)}, 400, []string{"Patient.maritalStatus"}},
		{"unknown element", request{method: "POST", path: "Patient", body: pat(`"colour":"blue"`)}, 400, []string{"Patient.colour"}},
		{"unknown nested element", request{method: "POST", path: "Patient", body: pat(`"name":[{"family":"A","nickname":"B"}]`)}, 400, []string{"Patient.name[0].nickname"}},
		{"huge integer", request{method: "POST", path: "Patient", body: pat(`"multipleBirthInteger":123456789012345678901234567890`)}, 400, []string{"Patient.multipleBirthInteger"}},
		{"fractional integer", request{method: "POST", path: "Patient", body: pat(`"multipleBirthInteger":1.5`)}, 400, []string{"Patient.multipleBirthInteger"}},
		{"huge exponent", request{method: "POST", path: "Patient", body: pat(`"multipleBirthInteger":1e400`)}, 400, []string{"Patient.multipleBirthInteger"}},
		{"primitive extension of the wrong shape", request{method: "POST", path: "Patient", body: pat(`"birthDate":"1970-01-01","_birthDate":"x"`)}, 400, []string{"Patient.birthDate"}},
		{"null element", request{method: "POST", path: "Patient", body: pat(`"gender":null`)}, 400, []string{"Patient.gender"}},

		// Malformed primitives and codes.
		{"invalid date", request{method: "POST", path: "Patient", body: pat(`"birthDate":"1970-13-45"`)}, 400, []string{"Patient.birthDate"}},
		{"invalid dateTime", request{method: "POST", path: "Patient", body: pat(`"deceasedDateTime":"2020-01-01T25:00:00Z"`)}, 400, []string{"Patient.deceasedDateTime"}},
		{"instant without zone", request{method: "POST", path: "Slot", body: slot(`"2026-03-01T09:00:00Z"`, `"2026-03-01T09:00:00"`)}, 400, []string{"Slot.start"}},
		{"instant without seconds", request{method: "POST", path: "Slot", body: slot(`"2026-03-01T09:15:00Z"`, `"2026-03-01T09:15Z"`)}, 400, []string{"Slot.end"}},
		{"code outside a required binding", request{method: "POST", path: "Patient", body: pat(`"gender":"cat"`)}, 400, []string{"Patient.gender"}},
		{"Slot.status outside its binding", request{method: "POST", path: "Slot", body: slot(`"free"`, `"maybe"`)}, 400, []string{"Slot.status"}},
		{"missing required element", request{method: "POST", path: "Slot", body: slot(`"status":"free",`, ``)}, 400, []string{"Slot.status"}},
		{"Slot start after end", request{method: "POST", path: "Slot", body: slot(`"2026-03-01T09:00:00Z"`, `"2026-03-01T10:00:00Z"`)}, 400, []string{"Slot"}},
		{"bad reference", request{method: "POST", path: "Slot", body: slot(`"Schedule/s1"`, `"not a reference"`)}, 400, []string{"Slot.schedule.reference"}},
		{"reference to the wrong type", request{method: "POST", path: "Slot", body: slot(`"Schedule/s1"`, `"Patient/p1"`)}, 400, []string{"Slot.schedule.reference"}},
		{"invalid contained resource", request{method: "POST", path: "Patient", body: pat(`"contained":[{"resourceType":"Organization","id":"o","active":"yes"}],"managingOrganization":{"reference":"#o"}`)}, 400, []string{"Patient.contained[0].active"}},
		{"every problem at once", request{method: "POST", path: "Patient", body: pat(`"gender":"cat","birthDate":"x","colour":1`)}, 400, []string{"Patient.birthDate", "Patient.colour", "Patient.gender"}},

		// resourceType and id.
		{"wrong resourceType", request{method: "POST", path: "Patient", body: `{"resourceType":"Practitioner"}`}, 400, []string{"resourceType"}},
		{"missing resourceType", request{method: "POST", path: "Patient", body: `{"gender":"male"}`}, 400, []string{"resourceType"}},
		{"resourceType not a string", request{method: "POST", path: "Patient", body: `{"resourceType":7}`}, 400, []string{"resourceType"}},
		{"unknown resourceType", request{method: "POST", path: "Patient", body: `{"resourceType":"Frobnicator"}`}, 400, []string{"resourceType"}},
		{"id mismatch", request{method: "PUT", path: "Patient/p1", body: patientWithID("p2", "bad1", "X")}, 400, []string{"Patient.id"}},
		{"missing id on PUT", request{method: "PUT", path: "Patient/p1", body: patient("bad1", "X")}, 400, []string{"Patient.id"}},
		{"id not a string", request{method: "PUT", path: "Patient/p1", body: pat(`"id":1`)}, 400, []string{"Patient.id"}},
		{"invalid id in the URL", request{method: "PUT", path: "Patient/bad_id!", body: pat(`"id":"bad_id!"`)}, 400, nil},
		{"id too long", request{method: "PUT", path: "Patient/" + strings.Repeat("a", 65), body: pat(`"id":"` + strings.Repeat("a", 65) + `"`)}, 400, nil},

		// Preconditions.
		{"stale If-Match", request{method: "PUT", path: "Patient/p1", body: patientWithID("p1", "bad1", "X"), header: map[string]string{"If-Match": `W/"1"`}}, 412, nil},
		{"If-Match on a new resource", request{method: "PUT", path: "Patient/p9", body: patientWithID("p9", "bad1", "X"), header: map[string]string{"If-Match": `W/"1"`}}, 412, nil},
		{"malformed If-Match", request{method: "PUT", path: "Patient/p1", body: patientWithID("p1", "bad1", "X"), header: map[string]string{"If-Match": `yesterday`}}, 400, nil},
		{"malformed If-Match on delete", request{method: "DELETE", path: "Patient/p1", header: map[string]string{"If-Match": `W/""`}}, 400, nil},
		{"If-None-Exist matching several", request{method: "POST", path: "Patient", body: patient("dup", "C"), header: map[string]string{"If-None-Exist": "identifier=https://signpost.example/nhs|dup"}}, 412, nil},
		{"If-None-Exist with an unknown parameter", request{method: "POST", path: "Patient", body: patient("dup", "C"), header: map[string]string{"If-None-Exist": "colour=blue"}}, 400, nil},
		{"If-None-Exist malformed", request{method: "POST", path: "Patient", body: patient("dup", "C"), header: map[string]string{"If-None-Exist": "%zz"}}, 400, nil},
		{"conditional update matching several", request{method: "PUT", path: "Patient?identifier=https://signpost.example/nhs|dup", body: patient("dup", "C")}, 412, nil},

		// Bundles.
		{"Bundle.entry not an array", request{method: "POST", path: "", body: `{"resourceType":"Bundle","type":"transaction","entry":{}}`}, 400, []string{"Bundle.entry"}},
		{"Bundle entry not an object", request{method: "POST", path: "", body: `{"resourceType":"Bundle","type":"transaction","entry":[1]}`}, 400, []string{"Bundle.entry[0]"}},
		{"Bundle of type collection", request{method: "POST", path: "", body: bundle("collection", entry("POST", "Patient", patient("b", "B")))}, 400, []string{"Bundle.type"}},
		{"Bundle without a type", request{method: "POST", path: "", body: `{"resourceType":"Bundle","entry":[]}`}, 400, []string{"Bundle.type"}},
		{"not a Bundle", request{method: "POST", path: "", body: patient("b", "B")}, 400, []string{"resourceType"}},
		{"transaction whose last entry is invalid", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Patient", patient("t1", "A")), entry("PUT", "Patient/t2", patientWithID("t2", "t2", "B")),
			entry("POST", "Patient", pat(`"birthDate":"1970-13-45"`)))}, 400, []string{"Bundle.entry[2].resource.birthDate"}},
		{"transaction entry without request", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Patient", patient("t1", "A")), `{"resource":`+patient("t3", "C")+`}`)}, 400, []string{"Bundle.entry[1].request"}},
		{"transaction entry with an unknown method", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Patient", patient("t1", "A")), entry("MERGE", "Patient/p1", ""))}, 400, []string{"Bundle.entry[1].request.method"}},
		{"transaction entry of an unknown type", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Patient", patient("t1", "A")), entry("POST", "Observation", `{"resourceType":"Observation"}`))}, 400, []string{"Bundle.entry[1].request.url"}},
		{"transaction entry whose type differs from its url", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Practitioner", patient("t1", "A")))}, 400, []string{"Bundle.entry[0].resource.resourceType"}},
		{"transaction entry with a stale ifMatch", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Patient", patient("t1", "A")),
			`{"request":{"method":"PUT","url":"Patient/p1","ifMatch":"W/\"1\""},"resource":`+patientWithID("p1", "bad1", "X")+`}`)}, 412, nil},
		{"transaction entry with an id mismatch", request{method: "POST", path: "", body: bundle("transaction",
			entry("PUT", "Patient/p1", patientWithID("p2", "bad1", "X")))}, 400, []string{"Bundle.entry[0].resource.id"}},
		{"transaction with a conditional create matching several", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Patient", patient("t1", "A")),
			`{"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=https://signpost.example/nhs|dup"},"resource":`+patient("dup", "X")+`}`)}, 412, nil},
		{"transaction patching an unknown resource", request{method: "POST", path: "", body: bundle("transaction",
			entry("POST", "Patient", patient("t1", "A")),
			entry("PATCH", "Patient/nobody", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W10="}`))}, 404, nil},

		// Size, media types and methods.
		{"oversized body", request{method: "POST", path: "Patient", body: huge}, 413, nil},
		{"oversized body, chunked", request{method: "POST", path: "Patient", body: huge, chunked: true}, 413, nil},
		{"oversized Bundle, chunked", request{method: "POST", path: "", body: bundle("batch", entry("POST", "Patient", huge)), chunked: true}, 413, nil},
		{"wrong content type", request{method: "POST", path: "Patient", body: patient("x", "X"), header: map[string]string{"Content-Type": "text/plain"}}, 415, nil},
		{"XML content type", request{method: "PUT", path: "Patient/p1", body: `<Patient/>`, header: map[string]string{"Content-Type": "application/fhir+xml"}}, 415, nil},
		{"malformed content type", request{method: "POST", path: "Patient", body: patient("x", "X"), header: map[string]string{"Content-Type": "application/"}}, 415, nil},
		{"PATCH with a FHIR content type", request{method: "PATCH", path: "Patient/p1", body: `[{"op":"add","path":"/gender","value":"male"}]`}, 415, nil},
		{"PATCH with a merge-patch content type", request{method: "PATCH", path: "Patient/p1", body: `{"gender":"male"}`, header: map[string]string{"Content-Type": "application/merge-patch+json"}}, 415, nil},
		{"PATCH producing an invalid resource", request{method: "PATCH", path: "Patient/p1", body: `[{"op":"add","path":"/gender","value":"cat"}]`, header: map[string]string{"Content-Type": patchCT}}, 400, []string{"Patient.gender"}},
		{"PATCH removing the resourceType", request{method: "PATCH", path: "Patient/p1", body: `[{"op":"remove","path":"/resourceType"}]`, header: map[string]string{"Content-Type": patchCT}}, 400, []string{"resourceType"}},
		{"PATCH with an empty body", request{method: "PATCH", path: "Patient/p1", header: map[string]string{"Content-Type": patchCT}}, 400, nil},
		{"create on a read-only type", request{method: "POST", path: "ValueSet", body: `{"resourceType":"ValueSet","status":"draft"}`}, 405, nil},
		{"create of an unsupported type", request{method: "POST", path: "Observation", body: `{"resourceType":"Observation"}`}, 404, nil},
		{"oversized native Binary, chunked", request{method: "POST", path: "Binary", body: huge, chunked: true, header: map[string]string{"Content-Type": "application/octet-stream"}}, 413, nil},
		{"10,000-deep nesting in $validate", request{method: "POST", path: "Patient/$validate", body: nested(10000)}, 400, nil},
		{"$validate without a resource", request{method: "POST", path: "Patient/$validate", header: map[string]string{"Content-Type": "application/fhir+json"}}, 400, nil},
		{"unknown operation", request{method: "POST", path: "Patient/$frobnicate", body: `{"resourceType":"Parameters"}`}, 404, nil},
		{"a method FHIR does not define", request{method: "OPTIONS", path: "Patient/p1"}, 404, nil},
	}
	if len(tests) < 40 {
		t.Fatalf("the table has %d requests; keep at least 40", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.do(tt.req)
			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d: %.600s", r.status, tt.wantStatus, r.body)
			}
			oo := parseOutcome(t, r.body)
			got := oo.expressions()
			sortStrings(got)
			if tt.wantExpr != nil {
				if diff := cmp.Diff(tt.wantExpr, got); diff != "" {
					t.Errorf("issue locations (-want +got):\n%s%.600s", diff, oo)
				}
			}
			for _, is := range oo.Issue {
				if is.Severity != "error" && is.Severity != "fatal" {
					t.Errorf("issue severity %q, want error: %s", is.Severity, oo)
				}
			}
			s.assertUnchanged(before)
		})
	}
}
