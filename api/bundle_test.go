package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
)

const nhs = "https://signpost.example/nhs"

// postBundle posts a Bundle to the base and decodes the answer.
func (s *server) postBundle(t testing.TB, body string, wantStatus int) (bundleOf, response) {
	t.Helper()
	r := s.do(request{method: "POST", path: "", body: body})
	if r.status != wantStatus {
		t.Fatalf("POST a Bundle: status %d, want %d: %.600s", r.status, wantStatus, r.body)
	}
	var b bundleOf
	if wantStatus == http.StatusOK {
		if err := jsonUnmarshal(r.body, &b); err != nil {
			t.Fatalf("not a Bundle: %v: %.300s", err, r.body)
		}
	}
	return b, r
}

// statuses lists the entries' response status codes.
func (b bundleOf) statuses() []string {
	var out []string
	for _, e := range b.Entry {
		code, _, _ := strings.Cut(e.Response.Status, " ")
		out = append(out, code)
	}
	return out
}

func fullURLEntry(fullURL, method, url, resource string) string {
	return strings.Replace(entry(method, url, resource), "{", `{"fullUrl":"`+fullURL+`",`, 1)
}

func TestTransactionAllOrNothing(t *testing.T) {
	s := newServer(t, app.Config{})
	s.must(request{method: "PUT", path: "Patient/keep", body: patientWithID("keep", "k", "Keep")}, http.StatusCreated)
	s.must(request{method: "PUT", path: "Patient/keep", body: patientWithID("keep", "k", "Keep2")}, http.StatusOK)
	good := []string{
		entry("POST", "Patient", patient("t1", "A")),
		entry("PUT", "Patient/t2", patientWithID("t2", "t2", "B")),
		entry("DELETE", "Patient/t2", ""),
		entry("PATCH", "Patient/keep", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W10="}`),
	}
	tests := []struct {
		name       string
		last       string
		wantStatus int
		wantExpr   []string
	}{
		{"invalid last entry", entry("POST", "Patient", pat(`"gender":"cat"`)), 400, []string{"Bundle.entry[4].resource.gender"}},
		{"last entry with a stale ifMatch", `{"request":{"method":"PUT","url":"Patient/t2","ifMatch":"W/\"7\""},"resource":` + patientWithID("t2", "t2", "C") + `}`, 412, nil},
		{"last entry reads what does not exist", entry("GET", "Patient/nobody", ""), 404, nil},
		{"last entry deletes with a stale ifMatch", `{"request":{"method":"DELETE","url":"Patient/keep","ifMatch":"W/\"1\""}}`, 412, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.snapshot()
			_, r := s.postBundle(t, bundle("transaction", append(append([]string(nil), good...), tt.last)...), tt.wantStatus)
			oo := parseOutcome(t, r.body)
			if tt.wantExpr != nil {
				if diff := cmp.Diff(tt.wantExpr, oo.expressions()); diff != "" {
					t.Errorf("issue locations (-want +got):\n%s", diff)
				}
			}
			s.assertUnchanged(before)
			s.must(request{method: "GET", path: "Patient/t2"}, http.StatusNotFound)
			s.must(request{method: "GET", path: "Patient/keep"}, http.StatusOK)
		})
	}
}

func TestTransactionResolvesURNs(t *testing.T) {
	s := newServer(t, app.Config{})
	existing := s.create("Patient", patient("exists", "Existing"))
	const (
		newPatient = "urn:uuid:8a9f6f3e-4f77-4c1b-9a0e-0b1f0c6d2a11"
		oldPatient = "urn:uuid:1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
		practRole  = "urn:uuid:0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
	)
	appointment := `{"resourceType":"Appointment","status":"proposed","description":"refers to both",` +
		`"participant":[{"actor":{"reference":"` + newPatient + `"},"status":"needs-action"},` +
		`{"actor":{"reference":"` + oldPatient + `"},"status":"needs-action"},` +
		`{"actor":{"reference":"` + practRole + `"},"status":"needs-action"}]}`
	b, _ := s.postBundle(t, bundle("transaction",
		fullURLEntry("urn:uuid:5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "POST", "Appointment", appointment),
		fullURLEntry(newPatient, "POST", "Patient", patient("new", "New")),
		`{"fullUrl":"`+oldPatient+`","request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=`+nhs+`|exists"},"resource":`+patient("exists", "Ignored")+`}`,
		fullURLEntry(practRole, "POST", "PractitionerRole", `{"resourceType":"PractitionerRole","active":true}`),
	), http.StatusOK)
	if b.Type != "transaction-response" {
		t.Fatalf("Bundle.type %q, want transaction-response", b.Type)
	}
	if diff := cmp.Diff([]string{"201", "201", "200", "201"}, b.statuses()); diff != "" {
		t.Errorf("entry statuses in request order (-want +got):\n%s", diff)
	}
	ref := func(i int) string { // Type/id of response entry i
		loc := b.Entry[i].Response.Location
		parts := strings.Split(loc, "/")
		if len(parts) < 2 {
			t.Fatalf("entry %d: location %q", i, loc)
		}
		return parts[0] + "/" + parts[1]
	}
	if got := ref(2); got != "Patient/"+existing {
		t.Errorf("conditional create gave %s, want the existing Patient/%s", got, existing)
	}
	r := s.must(request{method: "GET", path: ref(0)}, http.StatusOK)
	var got []string
	for _, p := range decode(t, r.body)["participant"].([]any) {
		got = append(got, p.(map[string]any)["actor"].(map[string]any)["reference"].(string))
	}
	if diff := cmp.Diff([]string{ref(1), "Patient/" + existing, ref(3)}, got); diff != "" {
		t.Errorf("stored Appointment's references (-want +got):\n%s", diff)
	}
	// The existing Patient was not touched by the conditional create.
	if _, vid, _ := meta(t, s.must(request{method: "GET", path: "Patient/" + existing}, 200).body); vid != "1" {
		t.Errorf("the matched Patient is at version %s, want 1", vid)
	}
}

// TestTransactionOrder sends entries in the reverse of FHIR's processing
// order (DELETE, POST, PUT/PATCH, GET); each entry only succeeds, or only
// gives the result checked, if the server reorders them.
func TestTransactionOrder(t *testing.T) {
	s := newServer(t, app.Config{})
	old := s.create("Patient", patient("gone", "Old"))
	b, _ := s.postBundle(t, bundle("transaction",
		// GET runs after the PUT that creates Patient/x.
		entry("GET", "Patient/x", ""),
		// The conditional PUT runs after the POST, so it matches (and updates) the POSTed resource.
		entry("PUT", "Patient?identifier="+nhs+"|fresh", patient("fresh", "Updated")),
		entry("PUT", "Patient/x", patientWithID("x", "x", "X")),
		// The conditional POST runs after the DELETE, so it finds nothing and creates.
		`{"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=`+nhs+`|gone"},"resource":`+patient("gone", "New")+`}`,
		entry("POST", "Patient", patient("fresh", "Posted")),
		entry("DELETE", "Patient/"+old, ""),
	), http.StatusOK)
	if diff := cmp.Diff([]string{"200", "200", "201", "201", "201", "204"}, b.statuses()); diff != "" {
		t.Fatalf("entry statuses (-want +got):\n%s", diff)
	}
	if got := b.Entry[0].Resource["name"].([]any)[0].(map[string]any)["family"]; got != "X" {
		t.Errorf("GET Patient/x returned family %v, want X", got)
	}
	if b.Entry[1].Response.Location == "" || !strings.HasSuffix(b.Entry[1].Response.Location, "/_history/2") ||
		strings.TrimSuffix(b.Entry[1].Response.Location, "/_history/2") != strings.TrimSuffix(b.Entry[4].Response.Location, "/_history/1") {
		t.Errorf("conditional PUT location %q, want version 2 of the POSTed %q", b.Entry[1].Response.Location, b.Entry[4].Response.Location)
	}
	if strings.HasPrefix(b.Entry[3].Response.Location, "Patient/"+old+"/") {
		t.Errorf("conditional POST matched the deleted Patient/%s", old)
	}
	s.must(request{method: "GET", path: "Patient/" + old}, http.StatusGone)
}

func TestBatch(t *testing.T) {
	s := newServer(t, app.Config{})
	before := len(s.snapshot())
	b, _ := s.postBundle(t, bundle("batch",
		entry("POST", "Patient", patient("b1", "One")),
		entry("POST", "Patient", pat(`"birthDate":"1970-13-45"`)),
		entry("PUT", "Patient/b3", patientWithID("b3", "b3", "Three")),
		entry("GET", "Patient/nobody", ""),
		entry("POST", "Observation", `{"resourceType":"Observation"}`),
		`{"request":{"method":"PUT","url":"Patient/b3","ifMatch":"W/\"5\""},"resource":`+patientWithID("b3", "b3", "Stale")+`}`,
		entry("GET", "Patient/b3", ""),
	), http.StatusOK)
	if b.Type != "batch-response" {
		t.Fatalf("Bundle.type %q, want batch-response", b.Type)
	}
	if diff := cmp.Diff([]string{"201", "400", "201", "404", "404", "412", "200"}, b.statuses()); diff != "" {
		t.Errorf("entry statuses (-want +got):\n%s", diff)
	}
	wantExpr := map[int][]string{1: {"Bundle.entry[1].resource.birthDate"}, 4: {"Bundle.entry[4].request.url"}}
	for i, want := range wantExpr {
		var oo outcome
		if err := jsonUnmarshal(mustJSON(t, b.Entry[i].Response.Outcome), &oo); err != nil || oo.ResourceType != "OperationOutcome" {
			t.Errorf("entry %d: outcome %v is not an OperationOutcome", i, b.Entry[i].Response.Outcome)
			continue
		}
		if diff := cmp.Diff(want, oo.expressions()); diff != "" {
			t.Errorf("entry %d issue locations (-want +got):\n%s", i, diff)
		}
	}
	if got := len(s.snapshot()) - before; got != 2 {
		t.Errorf("the batch stored %d versions, want 2 (the two good writes)", got)
	}
	s.must(request{method: "GET", path: "Patient/b3"}, http.StatusOK)
}

// TestTransactionResolvesURNOfConditionalUpdate refers to a conditional
// update's urn:uuid fullUrl, with and without a match.
func TestTransactionResolvesURNOfConditionalUpdate(t *testing.T) {
	s := newServer(t, app.Config{})
	existing := s.create("Patient", patient("there", "There"))
	const (
		matched = "urn:uuid:8a9f6f3e-4f77-4c1b-9a0e-0b1f0c6d2a11"
		created = "urn:uuid:1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
	)
	b, _ := s.postBundle(t, bundle("transaction",
		entry("POST", "Appointment", `{"resourceType":"Appointment","status":"proposed","participant":[`+
			`{"actor":{"reference":"`+matched+`"},"status":"needs-action"},{"actor":{"reference":"`+created+`"},"status":"needs-action"}]}`),
		fullURLEntry(matched, "PUT", "Patient?identifier="+nhs+"|there", patient("there", "Updated")),
		fullURLEntry(created, "PUT", "Patient?identifier="+nhs+"|new", patient("new", "New")),
	), http.StatusOK)
	if diff := cmp.Diff([]string{"201", "200", "201"}, b.statuses()); diff != "" {
		t.Fatalf("entry statuses (-want +got):\n%s", diff)
	}
	newRef := strings.Join(strings.Split(b.Entry[2].Response.Location, "/")[:2], "/")
	var got []string
	for _, p := range b.Entry[0].Resource["participant"].([]any) {
		got = append(got, p.(map[string]any)["actor"].(map[string]any)["reference"].(string))
	}
	if diff := cmp.Diff([]string{"Patient/" + existing, newRef}, got); diff != "" {
		t.Errorf("stored Appointment's references (-want +got):\n%s", diff)
	}
}
