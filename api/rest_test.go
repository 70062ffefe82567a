package api_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
)

const patientBody = `{"resourceType":"Patient","identifier":[{"system":"https://signpost.example/nhs","value":"%s"}],"name":[{"family":"%s"}],"birthDate":"1970-01-01"}`

func patient(identifier, family string) string { return fmt.Sprintf(patientBody, identifier, family) }

func patientWithID(id, identifier, family string) string {
	return strings.Replace(patient(identifier, family), `"Patient",`, `"Patient","id":"`+id+`",`, 1)
}

// meta returns the resource's id, meta.versionId and meta.lastUpdated.
func meta(t testing.TB, b []byte) (id, versionID, lastUpdated string) {
	t.Helper()
	v := decode(t, b)
	m, _ := v["meta"].(map[string]any)
	id, _ = v["id"].(string)
	versionID, _ = m["versionId"].(string)
	lastUpdated, _ = m["lastUpdated"].(string)
	return id, versionID, lastUpdated
}

func TestCreate(t *testing.T) {
	s := newServer(t, app.Config{})
	r := s.must(request{method: "POST", path: "Patient", body: patient("c1", "Create")}, http.StatusCreated)

	id, vid, lu := meta(t, r.body)
	if !regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`).MatchString(id) {
		t.Fatalf("server id %q is not a FHIR id", id)
	}
	last, err := time.Parse(time.RFC3339Nano, lu)
	if err != nil {
		t.Fatalf("meta.lastUpdated %q: %v", lu, err)
	}
	loc := s.base + "/Patient/" + id + "/_history/1"
	got := map[string]string{
		"Location":         r.header.Get("Location"),
		"Content-Location": r.header.Get("Content-Location"),
		"ETag":             r.header.Get("ETag"),
		"Last-Modified":    r.header.Get("Last-Modified"),
		"Content-Type":     r.header.Get("Content-Type"),
		"versionId":        vid,
	}
	want := map[string]string{
		"Location":         loc,
		"Content-Location": loc,
		"ETag":             `W/"1"`,
		"Last-Modified":    last.UTC().Format(http.TimeFormat),
		"Content-Type":     "application/fhir+json; charset=utf-8",
		"versionId":        "1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("create (-want +got):\n%s", diff)
	}
	// The client's content is served back unchanged apart from id and meta.
	if diff := cmp.Diff(decode(t, []byte(patient("c1", "Create"))), withoutServerMeta(decode(t, r.body))); diff != "" {
		t.Errorf("created resource (-sent +served):\n%s", diff)
	}
	// A client id in a POST body is replaced by the server's.
	r = s.must(request{method: "POST", path: "Patient", body: patientWithID("mine", "c2", "Create")}, http.StatusCreated)
	if id, _, _ := meta(t, r.body); id == "mine" {
		t.Errorf("POST kept the client's id %q; the server assigns ids on create", id)
	}
}

func TestReadAndVread(t *testing.T) {
	s := newServer(t, app.Config{})
	id := s.create("Patient", patient("r1", "One"))
	s.must(request{method: "PUT", path: "Patient/" + id, body: patientWithID(id, "r1", "Two")}, http.StatusOK)
	s.must(request{method: "DELETE", path: "Patient/" + id + "x"}, http.StatusNoContent) // deleting nothing is fine

	tests := []struct {
		path       string
		wantStatus int
		wantFamily string
		wantETag   string
	}{
		{"Patient/" + id, 200, "Two", `W/"2"`},
		{"Patient/" + id + "/_history/1", 200, "One", `W/"1"`},
		{"Patient/" + id + "/_history/2", 200, "Two", `W/"2"`},
		{"Patient/" + id + "/_history/3", 404, "", ""},
		{"Patient/" + id + "/_history/0", 404, "", ""},
		{"Patient/" + id + "/_history/x", 404, "", ""},
		{"Patient/unknown", 404, "", ""},
		{"Practitioner/" + id, 404, "", ""},
		{"Patient/" + id + "x", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := s.do(request{method: "GET", path: tt.path})
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus != 200 {
				parseOutcome(t, r.body)
				return
			}
			v := decode(t, r.body)
			got := v["name"].([]any)[0].(map[string]any)["family"]
			if got != tt.wantFamily || r.header.Get("ETag") != tt.wantETag {
				t.Errorf("got family %v ETag %s, want %s %s", got, r.header.Get("ETag"), tt.wantFamily, tt.wantETag)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	s := newServer(t, app.Config{})
	// Steps run in order against one resource.
	steps := []struct {
		name       string
		ifMatch    string
		body       string
		wantStatus int
		wantETag   string
	}{
		{"update as create with a client id", "", patientWithID("u1", "u1", "A"), 201, `W/"1"`},
		{"update", "", patientWithID("u1", "u1", "B"), 200, `W/"2"`},
		{"If-Match weak current", `W/"2"`, patientWithID("u1", "u1", "C"), 200, `W/"3"`},
		{"If-Match strong current", `"3"`, patientWithID("u1", "u1", "D"), 200, `W/"4"`},
		{"If-Match stale", `W/"1"`, patientWithID("u1", "u1", "E"), 412, ""},
		{"If-Match ahead", `W/"9"`, patientWithID("u1", "u1", "E"), 412, ""},
		{"If-Match malformed", `W/"x"`, patientWithID("u1", "u1", "E"), 400, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.do(request{method: "PUT", path: "Patient/u1", body: st.body, header: map[string]string{"If-Match": st.ifMatch}})
			if r.status != st.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, st.wantStatus, r.body)
			}
			if st.wantStatus >= 400 {
				parseOutcome(t, r.body)
				s.assertUnchanged(before)
				return
			}
			want := s.base + "/Patient/u1/_history/" + strings.Trim(strings.TrimPrefix(st.wantETag, "W/"), `"`)
			if r.header.Get("ETag") != st.wantETag || r.header.Get("Location") != want || r.header.Get("Content-Location") != want {
				t.Errorf("ETag %s Location %s Content-Location %s, want %s and %s", r.header.Get("ETag"),
					r.header.Get("Location"), r.header.Get("Content-Location"), st.wantETag, want)
			}
		})
	}
	r := s.must(request{method: "GET", path: "Patient/u1"}, 200)
	if got := decode(t, r.body)["name"].([]any)[0].(map[string]any)["family"]; got != "D" {
		t.Errorf("after the failed updates family is %v, want D", got)
	}
}

func TestConditionalCreate(t *testing.T) {
	s := newServer(t, app.Config{})
	dupA := s.create("Patient", patient("dup", "A"))
	dupB := s.create("Patient", patient("dup", "B"))
	_ = dupB
	var first string
	tests := []struct {
		name       string
		cond       string
		wantStatus int
		wantID     func() string // "" = any new id
	}{
		{"no match creates", "identifier=https://signpost.example/nhs|cc1", 201, nil},
		{"one match returns it", "identifier=https://signpost.example/nhs|cc1", 200, func() string { return first }},
		{"type-prefixed condition", "Patient?identifier=https://signpost.example/nhs|cc1", 200, func() string { return first }},
		{"by _id", "_id=" + dupA, 200, func() string { return dupA }},
		{"several matches", "identifier=https://signpost.example/nhs|dup", 412, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.do(request{method: "POST", path: "Patient", body: patient("cc1", "Cond"),
				header: map[string]string{"If-None-Exist": tt.cond}})
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == 412 {
				parseOutcome(t, r.body)
				s.assertUnchanged(before)
				return
			}
			id, _, _ := meta(t, r.body)
			if tt.wantID == nil {
				first = id
				return
			}
			if id != tt.wantID() {
				t.Errorf("returned %s, want the existing %s", id, tt.wantID())
			}
			s.assertUnchanged(before)
		})
	}
}

func TestConditionalUpdateAndDelete(t *testing.T) {
	s := newServer(t, app.Config{})
	s.create("Patient", patient("dup", "A"))
	s.create("Patient", patient("dup", "B"))
	byIdent := "Patient?identifier=https://signpost.example/nhs|cu1"

	// No match: created with a server id (the body has none).
	r := s.must(request{method: "PUT", path: byIdent, body: patient("cu1", "A")}, http.StatusCreated)
	id, _, _ := meta(t, r.body)
	// One match: updated.
	r = s.must(request{method: "PUT", path: byIdent, body: patient("cu1", "B")}, http.StatusOK)
	if gotID, vid, _ := meta(t, r.body); gotID != id || vid != "2" {
		t.Errorf("conditional update gave %s v%s, want %s v2", gotID, vid, id)
	}
	// By _id.
	r = s.must(request{method: "PUT", path: "Patient?_id=" + id, body: patient("cu1", "C")}, http.StatusOK)
	if gotID, vid, _ := meta(t, r.body); gotID != id || vid != "3" {
		t.Errorf("conditional update by _id gave %s v%s, want %s v3", gotID, vid, id)
	}

	failures := []struct {
		name       string
		req        request
		wantStatus int
	}{
		{"update with several matches", request{method: "PUT", path: "Patient?identifier=https://signpost.example/nhs|dup", body: patient("dup", "C")}, 412},
		{"update whose body id differs from the match", request{method: "PUT", path: byIdent, body: patientWithID("other", "cu1", "C")}, 400},
		{"update with no match whose body id names another resource", request{method: "PUT", path: "Patient?identifier=https://signpost.example/nhs|nomatch", body: patientWithID(id, "nomatch", "C")}, 409},
		{"update without a condition", request{method: "PUT", path: "Patient", body: patient("cu1", "C")}, 400},
		{"update with an unknown parameter", request{method: "PUT", path: "Patient?nonsense=1", body: patient("cu1", "C")}, 400},
		{"delete with several matches", request{method: "DELETE", path: "Patient?identifier=https://signpost.example/nhs|dup"}, 412},
		{"delete without a condition", request{method: "DELETE", path: "Patient"}, 400},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.do(tt.req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			parseOutcome(t, r.body)
			s.assertUnchanged(before)
		})
	}

	// Conditional delete by identifier, then by _id.
	s.must(request{method: "DELETE", path: byIdent}, http.StatusNoContent)
	s.must(request{method: "GET", path: "Patient/" + id}, http.StatusGone)
	other := s.create("Patient", patient("cu2", "X"))
	s.must(request{method: "DELETE", path: "Patient?_id=" + other}, http.StatusNoContent)
	s.must(request{method: "GET", path: "Patient/" + other}, http.StatusGone)
	// No match: nothing to do.
	before := s.snapshot()
	s.must(request{method: "DELETE", path: byIdent}, http.StatusNoContent)
	s.assertUnchanged(before)
}

func TestDelete(t *testing.T) {
	s := newServer(t, app.Config{})
	id := s.create("Patient", patient("d1", "Del"))
	r := s.must(request{method: "DELETE", path: "Patient/" + id}, http.StatusNoContent)
	if got := r.header.Get("ETag"); got != `W/"2"` {
		t.Errorf("delete ETag %s, want W/\"2\"", got)
	}
	r = s.must(request{method: "GET", path: "Patient/" + id}, http.StatusGone)
	parseOutcome(t, r.body)
	if got := r.header.Get("ETag"); got != `W/"2"` {
		t.Errorf("410 ETag %s, want W/\"2\" (the tombstone)", got)
	}
	// The old version stays readable; the tombstone is gone.
	s.must(request{method: "GET", path: "Patient/" + id + "/_history/1"}, http.StatusOK)
	s.must(request{method: "GET", path: "Patient/" + id + "/_history/2"}, http.StatusGone)
	// Deleting again changes nothing.
	before := s.snapshot()
	s.must(request{method: "DELETE", path: "Patient/" + id}, http.StatusNoContent)
	s.assertUnchanged(before)
	// A stale If-Match on delete fails.
	other := s.create("Patient", patient("d2", "Del"))
	s.must(request{method: "PUT", path: "Patient/" + other, body: patientWithID(other, "d2", "Del2")}, http.StatusOK)
	before = s.snapshot()
	s.must(request{method: "DELETE", path: "Patient/" + other, header: map[string]string{"If-Match": `W/"1"`}}, http.StatusPreconditionFailed)
	s.assertUnchanged(before)
	// An update brings a deleted resource back as a new version.
	r = s.must(request{method: "PUT", path: "Patient/" + id, body: patientWithID(id, "d1", "Back")}, http.StatusCreated)
	if _, vid, _ := meta(t, r.body); vid != "3" {
		t.Errorf("re-created versionId %s, want 3", vid)
	}
}

// bundleOf is the part of a Bundle the tests check.
type bundleOf struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
		Request  *struct {
			Method, URL string
		} `json:"request"`
		Response *struct {
			Status, Location, Etag string
			Outcome                map[string]any
		} `json:"response"`
	} `json:"entry"`
}

func (b bundleOf) next() string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// historyRefs follows next links from path and returns each entry as
// "METHOD Type/id/_history/n".
func (s *server) historyRefs(path string) []string {
	s.t.Helper()
	var out []string
	for pages := 0; path != ""; pages++ {
		if pages > 100 {
			s.t.Fatalf("history paging does not end")
		}
		r := s.must(request{method: "GET", path: path}, http.StatusOK)
		var b bundleOf
		if err := jsonUnmarshal(r.body, &b); err != nil || b.Type != "history" {
			s.t.Fatalf("GET %s: not a history Bundle: %.300s", path, r.body)
		}
		for _, e := range b.Entry {
			_, vid := "", strings.Trim(strings.TrimPrefix(e.Response.Etag, "W/"), `"`)
			ref := strings.TrimPrefix(e.FullURL, s.base+"/")
			out = append(out, e.Request.Method+" "+ref+"/_history/"+vid)
		}
		path = b.next()
	}
	return out
}

func TestHistory(t *testing.T) {
	s := newServer(t, app.Config{})
	a := s.create("Patient", patient("h1", "A"))
	time.Sleep(5 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	b := s.create("Practitioner", `{"resourceType":"Practitioner","name":[{"family":"B"}]}`)
	s.must(request{method: "PUT", path: "Patient/" + a, body: patientWithID(a, "h1", "A2")}, http.StatusOK)
	s.must(request{method: "DELETE", path: "Patient/" + a}, http.StatusNoContent)
	c := s.create("Patient", patient("h2", "C"))

	since := mid.Format(time.RFC3339Nano)
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"instance", "Patient/" + a + "/_history", []string{
			"DELETE Patient/" + a + "/_history/3", "PUT Patient/" + a + "/_history/2", "POST Patient/" + a + "/_history/1"}},
		{"type", "Patient/_history", []string{
			"POST Patient/" + c + "/_history/1", "DELETE Patient/" + a + "/_history/3",
			"PUT Patient/" + a + "/_history/2", "POST Patient/" + a + "/_history/1"}},
		{"system", "_history", []string{
			"POST Patient/" + c + "/_history/1", "DELETE Patient/" + a + "/_history/3",
			"PUT Patient/" + a + "/_history/2", "POST Practitioner/" + b + "/_history/1", "POST Patient/" + a + "/_history/1"}},
		{"system paged by 2", "_history?_count=2", []string{
			"POST Patient/" + c + "/_history/1", "DELETE Patient/" + a + "/_history/3",
			"PUT Patient/" + a + "/_history/2", "POST Practitioner/" + b + "/_history/1", "POST Patient/" + a + "/_history/1"}},
		{"system paged by 1", "_history?_count=1", []string{
			"POST Patient/" + c + "/_history/1", "DELETE Patient/" + a + "/_history/3",
			"PUT Patient/" + a + "/_history/2", "POST Practitioner/" + b + "/_history/1", "POST Patient/" + a + "/_history/1"}},
		{"system _since", "_history?_since=" + urlEscape(since), []string{
			"POST Patient/" + c + "/_history/1", "DELETE Patient/" + a + "/_history/3",
			"PUT Patient/" + a + "/_history/2", "POST Practitioner/" + b + "/_history/1"}},
		{"type _since paged", "Patient/_history?_count=1&_since=" + urlEscape(since), []string{
			"POST Patient/" + c + "/_history/1", "DELETE Patient/" + a + "/_history/3", "PUT Patient/" + a + "/_history/2"}},
		{"instance _since in the future", "Patient/" + a + "/_history?_since=2999-01-01T00:00:00Z", nil},
		{"type with no versions", "Endpoint/_history", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, s.historyRefs(tt.path)); diff != "" {
				t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
			}
		})
	}

	bad := []struct {
		path       string
		wantStatus int
		wantExpr   string
	}{
		{"_history?_since=yesterday", 400, "_since"},
		{"_history?_since=2026-01-01T10:00:00", 400, "_since"}, // no zone
		{"_history?_count=x", 400, "_count"},
		{"Patient/nobody/_history", 404, ""},
	}
	for _, tt := range bad {
		t.Run(tt.path, func(t *testing.T) {
			r := s.do(request{method: "GET", path: tt.path})
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			oo := parseOutcome(t, r.body)
			if tt.wantExpr != "" && !cmp.Equal(oo.expressions(), []string{tt.wantExpr}) {
				t.Errorf("expressions %v, want [%s]", oo.expressions(), tt.wantExpr)
			}
		})
	}
}

func TestPatch(t *testing.T) {
	s := newServer(t, app.Config{})
	id := s.create("Patient", patient("p1", "Patch"))
	const patchType = "application/json-patch+json"

	ok := s.must(request{method: "PATCH", path: "Patient/" + id, header: map[string]string{"Content-Type": patchType},
		body: `[{"op":"replace","path":"/birthDate","value":"1980-02-03"},{"op":"add","path":"/gender","value":"female"}]`}, http.StatusOK)
	v := decode(t, ok.body)
	if v["birthDate"] != "1980-02-03" || v["gender"] != "female" || ok.header.Get("ETag") != `W/"2"` {
		t.Errorf("patched resource %s (ETag %s), want birthDate 1980-02-03, gender female, version 2", ok.body, ok.header.Get("ETag"))
	}

	tests := []struct {
		name       string
		path       string
		ct         string
		body       string
		ifMatch    string
		wantStatus int
		wantExpr   []string
	}{
		{"not a patch document", "Patient/" + id, patchType, `{"op":"replace"}`, "", 400, nil},
		{"unknown op", "Patient/" + id, patchType, `[{"op":"frobnicate","path":"/gender"}]`, "", 400, nil},
		{"failed test op", "Patient/" + id, patchType, `[{"op":"test","path":"/gender","value":"male"}]`, "", 422, nil},
		{"path that does not exist", "Patient/" + id, patchType, `[{"op":"replace","path":"/deceasedBoolean","value":true}]`, "", 422, nil},
		{"truncated", "Patient/" + id, patchType, `[{"op":"replace",`, "", 400, nil},
		{"result is invalid", "Patient/" + id, patchType, `[{"op":"replace","path":"/birthDate","value":"1980-13-45"}]`, "", 400, []string{"Patient.birthDate"}},
		{"result has an unknown element", "Patient/" + id, patchType, `[{"op":"add","path":"/colour","value":"blue"}]`, "", 400, []string{"Patient.colour"}},
		{"changes the id", "Patient/" + id, patchType, `[{"op":"replace","path":"/id","value":"other"}]`, "", 400, []string{"Patient.id"}},
		{"fhir+json content type", "Patient/" + id, "application/fhir+json", `[{"op":"add","path":"/gender","value":"male"}]`, "", 415, nil},
		{"stale If-Match", "Patient/" + id, patchType, `[{"op":"add","path":"/gender","value":"male"}]`, `W/"1"`, 412, nil},
		{"unknown resource", "Patient/nobody", patchType, `[{"op":"add","path":"/gender","value":"male"}]`, "", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.do(request{method: "PATCH", path: tt.path, body: tt.body,
				header: map[string]string{"Content-Type": tt.ct, "If-Match": tt.ifMatch}})
			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			oo := parseOutcome(t, r.body)
			if tt.wantExpr != nil {
				if diff := cmp.Diff(tt.wantExpr, oo.expressions()); diff != "" {
					t.Errorf("expressions (-want +got):\n%s\n%s", diff, oo)
				}
			}
			s.assertUnchanged(before)
		})
	}
}

func TestPrefer(t *testing.T) {
	s := newServer(t, app.Config{})
	tests := []struct {
		prefer   string
		wantBody string // "resource", "outcome" or "empty"
	}{
		{"", "resource"},
		{"return=representation", "resource"},
		{"return=minimal", "empty"},
		{"return=OperationOutcome", "outcome"},
		{`return="minimal"`, "empty"},
		{"respond-async; return=minimal", "empty"},
	}
	for i, tt := range tests {
		t.Run(tt.prefer, func(t *testing.T) {
			for _, req := range []request{
				{method: "POST", path: "Patient", body: patient(fmt.Sprint("pr", i), "Pref")},
				{method: "PUT", path: fmt.Sprint("Patient/pref", i), body: patientWithID(fmt.Sprint("pref", i), "x", "Pref")},
			} {
				req.header = map[string]string{"Prefer": tt.prefer}
				r := s.must(req, http.StatusCreated)
				if r.header.Get("Location") == "" || r.header.Get("ETag") != `W/"1"` || r.header.Get("Last-Modified") == "" {
					t.Errorf("%s: headers %v lack Location, ETag or Last-Modified", req.method, r.header)
				}
				var got string
				switch {
				case len(r.body) == 0:
					got = "empty"
				case decode(t, r.body)["resourceType"] == "OperationOutcome":
					got = "outcome"
				case decode(t, r.body)["resourceType"] == "Patient":
					got = "resource"
				}
				if got != tt.wantBody {
					t.Errorf("%s with Prefer %q: body %q, want %s", req.method, tt.prefer, r.body, tt.wantBody)
				}
			}
		})
	}
}

func TestConditionalRead(t *testing.T) {
	s := newServer(t, app.Config{})
	r := s.must(request{method: "POST", path: "Patient", body: patient("cr", "Read")}, http.StatusCreated)
	id, _, _ := meta(t, r.body)
	lastMod := r.header.Get("Last-Modified")
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
	}{
		{"If-None-Match current weak", map[string]string{"If-None-Match": `W/"1"`}, 304},
		{"If-None-Match current strong", map[string]string{"If-None-Match": `"1"`}, 304},
		{"If-None-Match star", map[string]string{"If-None-Match": `*`}, 304},
		{"If-None-Match in a list", map[string]string{"If-None-Match": `W/"7", W/"1"`}, 304},
		{"If-None-Match other", map[string]string{"If-None-Match": `W/"2"`}, 200},
		{"If-Modified-Since Last-Modified", map[string]string{"If-Modified-Since": lastMod}, 304},
		{"If-Modified-Since later", map[string]string{"If-Modified-Since": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, 304},
		{"If-Modified-Since earlier", map[string]string{"If-Modified-Since": time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}, 200},
		{"If-Modified-Since malformed", map[string]string{"If-Modified-Since": "yesterday"}, 200},
		{"If-None-Match wins over If-Modified-Since", map[string]string{"If-None-Match": `W/"2"`, "If-Modified-Since": lastMod}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(request{method: "GET", path: "Patient/" + id, header: tt.header})
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d", r.status, tt.wantStatus)
			}
			if r.header.Get("ETag") != `W/"1"` {
				t.Errorf("ETag %q, want W/\"1\"", r.header.Get("ETag"))
			}
			if tt.wantStatus == 304 && len(r.body) != 0 {
				t.Errorf("304 with a body: %s", r.body)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	s := newServer(t, app.Config{})
	id := s.create("Patient", patient("f1", "Format"))
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantCT     string
	}{
		{"_format=json", request{method: "GET", path: "Patient/" + id + "?_format=json"}, 200, "application/fhir+json; charset=utf-8"},
		{"_format=application/fhir+json", request{method: "GET", path: "Patient/" + id + "?_format=application/fhir%2Bjson"}, 200, "application/fhir+json; charset=utf-8"},
		{"_format=xml", request{method: "GET", path: "Patient/" + id + "?_format=xml"}, 406, "application/fhir+json; charset=utf-8"},
		{"Accept fhir+json", request{method: "GET", path: "Patient/" + id, header: map[string]string{"Accept": "application/fhir+json"}}, 200, "application/fhir+json; charset=utf-8"},
		{"Accept json", request{method: "GET", path: "Patient/" + id, header: map[string]string{"Accept": "application/json"}}, 200, "application/fhir+json; charset=utf-8"},
		{"Accept with parameters", request{method: "GET", path: "Patient/" + id, header: map[string]string{"Accept": "application/fhir+json; fhirVersion=4.0"}}, 200, "application/fhir+json; charset=utf-8"},
		{"Accept anything", request{method: "GET", path: "Patient/" + id, header: map[string]string{"Accept": "*/*"}}, 200, "application/fhir+json; charset=utf-8"},
		{"Accept xml", request{method: "GET", path: "Patient/" + id, header: map[string]string{"Accept": "application/fhir+xml"}}, 406, "application/fhir+json; charset=utf-8"},
		{"Accept text/html", request{method: "GET", path: "Patient/" + id, header: map[string]string{"Accept": "text/html"}}, 406, "application/fhir+json; charset=utf-8"},
		{"Accept xml on metadata", request{method: "GET", path: "metadata", header: map[string]string{"Accept": "application/xml"}}, 406, "application/fhir+json; charset=utf-8"},
		{"Content-Type xml", request{method: "POST", path: "Patient", body: `<Patient xmlns="http://hl7.org/fhir"/>`, header: map[string]string{"Content-Type": "application/fhir+xml"}}, 415, "application/fhir+json; charset=utf-8"},
		{"Content-Type application/json", request{method: "POST", path: "Patient", body: patient("f2", "Json"), header: map[string]string{"Content-Type": "application/json"}}, 201, "application/fhir+json; charset=utf-8"},
		{"Content-Type with charset", request{method: "POST", path: "Patient", body: patient("f3", "Json"), header: map[string]string{"Content-Type": "application/fhir+json; charset=utf-8"}}, 201, "application/fhir+json; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.req)
			if r.status != tt.wantStatus || r.header.Get("Content-Type") != tt.wantCT {
				t.Fatalf("status %d %q, want %d %q: %s", r.status, r.header.Get("Content-Type"), tt.wantStatus, tt.wantCT, r.body)
			}
			if tt.wantStatus >= 400 {
				parseOutcome(t, r.body)
			}
		})
	}

	compact := s.must(request{method: "GET", path: "Patient/" + id}, 200)
	pretty := s.must(request{method: "GET", path: "Patient/" + id + "?_pretty=true"}, 200)
	if strings.Contains(string(compact.body), "\n") {
		t.Errorf("default body is not compact: %s", compact.body)
	}
	if !strings.Contains(string(pretty.body), "\n  \"") {
		t.Errorf("_pretty=true body is not indented: %s", pretty.body)
	}
	if !cmp.Equal(decode(t, compact.body), decode(t, pretty.body)) {
		t.Errorf("_pretty changed the content:\n%s\n%s", compact.body, pretty.body)
	}
}

func TestBinary(t *testing.T) {
	s := newServer(t, app.Config{})
	data := "\x89PNG\r\n\x1a\n\x00binary\xff"
	r := s.must(request{method: "POST", path: "Binary", body: data, header: map[string]string{"Content-Type": "image/png"}}, http.StatusCreated)
	id, _, _ := meta(t, r.body)
	v := decode(t, r.body)
	if v["contentType"] != "image/png" || v["data"] != "iVBORw0KGgoAYmluYXJ5/w==" {
		t.Errorf("stored Binary %s, want contentType image/png and the data in base64", r.body)
	}
	native := s.must(request{method: "GET", path: "Binary/" + id, header: map[string]string{"Accept": "image/png"}}, 200)
	if string(native.body) != data || native.header.Get("Content-Type") != "image/png" {
		t.Errorf("native read gave %q (%s), want the bytes sent as image/png", native.body, native.header.Get("Content-Type"))
	}
	asJSON := s.must(request{method: "GET", path: "Binary/" + id, header: map[string]string{"Accept": "application/fhir+json"}}, 200)
	if decode(t, asJSON.body)["data"] != "iVBORw0KGgoAYmluYXJ5/w==" {
		t.Errorf("JSON read gave %s", asJSON.body)
	}
	// Update with native content.
	s.must(request{method: "PUT", path: "Binary/" + id, body: "plain text", header: map[string]string{"Content-Type": "text/plain"}}, http.StatusOK)
	native = s.must(request{method: "GET", path: "Binary/" + id, header: map[string]string{"Accept": "text/plain"}}, 200)
	if string(native.body) != "plain text" || !strings.HasPrefix(native.header.Get("Content-Type"), "text/plain") {
		t.Errorf("native read after update gave %q (%s)", native.body, native.header.Get("Content-Type"))
	}
	// A FHIR JSON Binary still works.
	s.must(request{method: "POST", path: "Binary", body: `{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}`}, http.StatusCreated)
}

func TestTypes(t *testing.T) {
	s := newServer(t, app.Config{})
	tests := []struct {
		name       string
		req        request
		wantStatus int
		check      func(t *testing.T, body []byte)
	}{
		{"unknown type read", request{method: "GET", path: "Observation/1"}, 404, nil},
		{"unknown type search", request{method: "GET", path: "Observation"}, 404, nil},
		{"unknown type create", request{method: "POST", path: "Observation", body: `{"resourceType":"Observation"}`}, 404, nil},
		{"made-up type", request{method: "GET", path: "Frobnicator"}, 404, nil},
		{"lower-case type", request{method: "GET", path: "patient"}, 404, nil},
		{"StructureDefinition/Slot", request{method: "GET", path: "StructureDefinition/Slot"}, 200, func(t *testing.T, b []byte) {
			v := decode(t, b)
			if v["resourceType"] != "StructureDefinition" || v["url"] != "http://hl7.org/fhir/StructureDefinition/Slot" {
				t.Errorf("got %.200s", b)
			}
		}},
		{"SearchParameter by url", request{method: "GET", path: "SearchParameter?url=https://signpost.example/fhir/SearchParameter/Slot-end"}, 200, func(t *testing.T, b []byte) {
			var bu bundleOf
			if err := jsonUnmarshal(b, &bu); err != nil || bu.Total == nil || *bu.Total != 1 || len(bu.Entry) != 1 ||
				bu.Entry[0].Resource["url"] != "https://signpost.example/fhir/SearchParameter/Slot-end" {
				t.Errorf("got %.300s", b)
			}
		}},
		{"SearchParameter by unknown url", request{method: "GET", path: "SearchParameter?url=https://nowhere.example/x"}, 200, func(t *testing.T, b []byte) {
			var bu bundleOf
			if err := jsonUnmarshal(b, &bu); err != nil || bu.Total == nil || *bu.Total != 0 {
				t.Errorf("got %.300s", b)
			}
		}},
		{"unknown StructureDefinition", request{method: "GET", path: "StructureDefinition/Nope"}, 404, nil},
		{"create a StructureDefinition", request{method: "POST", path: "StructureDefinition", body: `{"resourceType":"StructureDefinition"}`}, 405, nil},
		{"update a SearchParameter", request{method: "PUT", path: "SearchParameter/x", body: `{"resourceType":"SearchParameter","id":"x"}`}, 405, nil},
		{"delete a CodeSystem", request{method: "DELETE", path: "CodeSystem/x"}, 405, nil},
		{"CapabilityStatement by id", request{method: "GET", path: "CapabilityStatement/signpost"}, 200, nil},
		{"not an endpoint", request{method: "GET", path: "/elsewhere"}, 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.do(tt.req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %.300s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus >= 400 {
				parseOutcome(t, r.body)
			}
			if tt.check != nil {
				tt.check(t, r.body)
			}
			s.assertUnchanged(before)
		})
	}
}

func TestMetadata(t *testing.T) {
	s := newServer(t, app.Config{})
	r := s.must(request{method: "GET", path: "metadata"}, 200)
	var cs struct {
		ResourceType string `json:"resourceType"`
		FHIRVersion  string `json:"fhirVersion"`
		Rest         []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
				SearchParam []struct{ Name, Type, Documentation string } `json:"searchParam"`
			} `json:"resource"`
			SearchParam []struct{ Name, Type string } `json:"searchParam"`
		} `json:"rest"`
	}
	if err := jsonUnmarshal(r.body, &cs); err != nil || cs.ResourceType != "CapabilityStatement" || len(cs.Rest) != 1 {
		t.Fatalf("metadata is not a CapabilityStatement with one rest: %.300s", r.body)
	}
	if cs.FHIRVersion != "4.0.1" {
		t.Errorf("fhirVersion %q, want 4.0.1", cs.FHIRVersion)
	}
	got := map[string][]string{}
	for _, res := range cs.Rest[0].Resource {
		for _, in := range res.Interaction {
			got[res.Type] = append(got[res.Type], in.Code)
		}
	}
	writeAll := []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}
	want := map[string][]string{}
	for _, typ := range writableTypes(t) {
		want[typ] = writeAll
	}
	for _, typ := range []string{"CapabilityStatement", "SearchParameter", "OperationDefinition", "StructureDefinition", "ValueSet", "CodeSystem", "SubscriptionTopic"} {
		want[typ] = []string{"read", "search-type"}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CapabilityStatement interactions (-want +got):\n%s", diff)
	}
	// Search parameters: every type's, with type and documentation, and
	// those of a search across all types.
	params := map[string]string{}
	for _, res := range cs.Rest[0].Resource {
		for _, p := range res.SearchParam {
			params[res.Type+"?"+p.Name] = p.Type
			if p.Documentation == "" {
				t.Errorf("CapabilityStatement: %s?%s has no documentation", res.Type, p.Name)
			}
		}
	}
	for _, p := range cs.Rest[0].SearchParam {
		params["?"+p.Name] = p.Type
	}
	for name, typ := range map[string]string{"Slot?start": "date", "Slot?end": "date", "Slot?schedule": "reference", "Patient?identifier": "token",
		"HealthcareService?near": "special", "Appointment?end": "date", "?_id": "token", "?_lastUpdated": "date", "?_type": "token",
		"SearchParameter?url": "uri", "StructureDefinition?_id": "token"} {
		if params[name] != typ {
			t.Errorf("CapabilityStatement lists %s with type %q, want %q", name, params[name], typ)
		}
	}
}

func TestValidateOperation(t *testing.T) {
	s := newServer(t, app.Config{})
	id := s.create("Patient", patient("v1", "Valid"))
	tests := []struct {
		name     string
		path     string
		body     string
		wantExpr []string // nil: all OK
	}{
		{"valid at type level", "Patient/$validate", patient("v2", "Valid"), nil},
		{"valid at instance level", "Patient/" + id + "/$validate", patientWithID(id, "v1", "Valid"), nil},
		{"valid in a Parameters resource", "Patient/$validate",
			`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + patient("v3", "Valid") + `}]}`, nil},
		{"invalid", "Patient/$validate",
			`{"resourceType":"Patient","birthDate":"1970-13-01","gender":"cat","colour":"blue"}`,
			[]string{"Patient.birthDate", "Patient.colour", "Patient.gender"}},
		{"wrong type", "Patient/$validate", `{"resourceType":"Practitioner"}`, []string{"resourceType"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.snapshot()
			r := s.must(request{method: "POST", path: tt.path, body: tt.body}, 200)
			oo := parseOutcome(t, r.body)
			if tt.wantExpr == nil {
				for _, is := range oo.Issue {
					if is.Severity == "error" || is.Severity == "fatal" {
						t.Errorf("valid resource got %s", oo)
					}
				}
			} else {
				got := oo.expressions()
				sortStrings(got)
				if diff := cmp.Diff(tt.wantExpr, got); diff != "" {
					t.Errorf("expressions (-want +got):\n%s\n%s", diff, oo)
				}
			}
			s.assertUnchanged(before)
		})
	}
	// $validate changes data in FHIR's sense, so GET is refused.
	r := s.do(request{method: "GET", path: "Patient/$validate"})
	if r.status < 400 {
		t.Errorf("GET $validate: status %d", r.status)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	s := newServer(t, app.Config{})
	for _, tt := range []struct{ path, want string }{{"/healthz", "ok"}, {"/readyz", "ready"}} {
		r := s.must(request{method: "GET", path: tt.path}, 200)
		if string(r.body) != tt.want {
			t.Errorf("%s: %q, want %q", tt.path, r.body, tt.want)
		}
	}
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"echoed", "req-123", true},
		{"echoed on errors", "req-456", true},
		{"generated when absent", "", false},
		{"replaced when too long", strings.Repeat("x", 200), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "metadata"
			if tt.name == "echoed on errors" {
				path = "Observation/1"
			}
			r := s.do(request{method: "GET", path: path, header: map[string]string{"X-Request-Id": tt.sent}})
			got := r.header.Get("X-Request-Id")
			if tt.echoed && got != tt.sent || !tt.echoed && (got == "" || got == tt.sent) {
				t.Errorf("X-Request-Id %q for %q sent", got, tt.sent)
			}
		})
	}
}

// TestKeepsClientJSON checks the served bytes: the client's JSON, compacted,
// with only id and meta written by the server (id and meta right after
// resourceType when the client sent none; in place when it did).
func TestKeepsClientJSON(t *testing.T) {
	s := newServer(t, app.Config{})
	tests := []struct {
		name, typ, sent string
		want            string // with ID and META standing for the server's values
	}{
		{"decimal precision", "Location",
			`{"resourceType":"Location","position":{"longitude":-0.12750,"latitude":51.50700,"altitude":1.0E2}}`,
			`{"resourceType":"Location","id":ID,"meta":META,"position":{"longitude":-0.12750,"latitude":51.50700,"altitude":1.0E2}}`},
		{"primitive extension and escapes", "Patient",
			`{"resourceType":"Patient","birthDate":"1970","_birthDate":{"extension":[{"url":"https://signpost.example/x","valueString":"caf\u00e9 \"q\""}]}}`,
			`{"resourceType":"Patient","id":ID,"meta":META,"birthDate":"1970","_birthDate":{"extension":[{"url":"https://signpost.example/x","valueString":"caf\u00e9 \"q\""}]}}`},
		{"member order and whitespace", "Patient",
			"{\n  \"gender\" : \"other\",\n  \"resourceType\": \"Patient\",\n  \"active\": true\n}",
			`{"gender":"other","resourceType":"Patient","id":ID,"meta":META,"active":true}`},
		{"client meta members kept, server members replaced", "Patient",
			`{"resourceType":"Patient","meta":{"profile":["https://signpost.example/p"],"versionId":"99","lastUpdated":"2000-01-01T00:00:00Z","tag":[{"code":"t"}]},"active":false}`,
			`{"resourceType":"Patient","id":ID,"meta":{"versionId":"1","lastUpdated":LU,"profile":["https://signpost.example/p"],"tag":[{"code":"t"}]},"active":false}`},
		{"contained", "Patient",
			`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":"GP"}],"managingOrganization":{"reference":"#o1"}}`,
			`{"resourceType":"Patient","id":ID,"meta":META,"contained":[{"resourceType":"Organization","id":"o1","name":"GP"}],"managingOrganization":{"reference":"#o1"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created := s.must(request{method: "POST", path: tt.typ, body: tt.sent}, http.StatusCreated)
			read := s.must(request{method: "GET", path: created.header.Get("Location")}, http.StatusOK)
			id, _, lu := meta(t, read.body)
			want := strings.NewReplacer("ID", `"`+id+`"`, "META", `{"versionId":"1","lastUpdated":"`+lu+`"}`, "LU", `"`+lu+`"`).Replace(tt.want)
			for what, got := range map[string][]byte{"create": created.body, "read": read.body} {
				if string(got) != want {
					t.Errorf("%s served\n%s\nwant\n%s", what, got, want)
				}
			}
		})
	}
}

// TestMaxCount: the server's page cap (serve --max-count) cuts a larger
// _count in searches and history, and the next link reaches the rest.
func TestMaxCount(t *testing.T) {
	s := newServer(t, app.Config{MaxCount: 3})
	for i := range 5 {
		s.create("Patient", patient(fmt.Sprintf("mc%d", i), "Capped"))
	}
	for _, tt := range []struct{ path string }{
		{"Patient?family=Capped&_count=10"},
		{"Patient?family=Capped"}, // the default page (50) is cut too
		{"Patient/_history?_count=10"},
	} {
		var b bundleOf
		if err := jsonUnmarshal(s.must(request{method: "GET", path: tt.path}, 200).body, &b); err != nil {
			t.Fatal(err)
		}
		next := ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if len(b.Entry) != 3 || next == "" {
			t.Errorf("%s: %d entries and next link %q, want 3 and a next link", tt.path, len(b.Entry), next)
		}
	}
}
