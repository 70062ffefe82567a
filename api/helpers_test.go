package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/store"
)

// server is the real Signpost server (real SQLite store in a temporary
// directory) behind an httptest listener on 127.0.0.1, with a client.
type server struct {
	t    testing.TB
	app  *app.App
	ts   *httptest.Server
	base string // …/fhir
}

func newServer(t testing.TB, cfg app.Config) *server {
	t.Helper()
	a, ts := apptest.New(t, cfg)
	return &server{t: t, app: a, ts: ts, base: ts.URL + "/fhir"}
}

// request is one HTTP request; path is relative to the server root when it
// starts with "/" (e.g. "/fhir/Patient/1"), else to the FHIR base.
type request struct {
	method  string
	path    string
	body    string
	header  map[string]string
	chunked bool // send the body without a Content-Length
}

// response is what the server answered.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (s *server) url(path string) string {
	if strings.HasPrefix(path, "http://") {
		return path
	}
	if path == "" {
		return s.base
	}
	if strings.HasPrefix(path, "/") {
		return s.ts.URL + path
	}
	return s.base + "/" + path
}

// do sends r. A body without a Content-Type header is sent as
// application/fhir+json.
func (s *server) do(r request) response {
	s.t.Helper()
	resp, err := s.try(r)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

// try is do for goroutines: it returns the failure instead of ending the test.
func (s *server) try(r request) (response, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
		if r.chunked {
			body = io.MultiReader(body) // hides the length from net/http
		}
	}
	req, err := http.NewRequest(r.method, s.url(r.path), body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %v", r.method, r.path, err)
	}
	if _, ok := r.header["Content-Type"]; !ok && r.body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, v := range r.header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading the body: %v", r.method, r.path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// must sends r and fails the test unless the status is want.
func (s *server) must(r request, want int) response {
	s.t.Helper()
	got := s.do(r)
	if got.status != want {
		s.t.Fatalf("%s %s: status %d, want %d; body: %s", r.method, r.path, got.status, want, got.body)
	}
	return got
}

// create POSTs body to typ and returns the new id.
func (s *server) create(typ, body string) string {
	s.t.Helper()
	r := s.must(request{method: "POST", path: typ, body: body}, http.StatusCreated)
	return decode(s.t, r.body)["id"].(string)
}

// put PUTs body to typ/id and returns the response.
func (s *server) put(typ, id, body string) response {
	s.t.Helper()
	return s.do(request{method: "PUT", path: typ + "/" + id, body: body})
}

// decode parses a JSON object, numbers as json.Number.
func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	v, err := decodeAny(b)
	if err != nil {
		t.Fatalf("decoding %.300s: %v", b, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%.300s is not a JSON object", b)
	}
	return m
}

func decodeAny(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("content after the JSON value")
	}
	return v, nil
}

// outcome is the part of an OperationOutcome the tests check.
type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics"`
		Expression  []string `json:"expression"`
	} `json:"issue"`
}

// parseOutcome reads b as an OperationOutcome, failing the test if it is not one.
func parseOutcome(t testing.TB, b []byte) outcome {
	t.Helper()
	var oo outcome
	if err := json.Unmarshal(b, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("want an OperationOutcome, got %.500s", b)
	}
	return oo
}

// expressions lists every issue's expressions.
func (oo outcome) expressions() []string {
	var out []string
	for _, is := range oo.Issue {
		out = append(out, is.Expression...)
	}
	return out
}

func (oo outcome) String() string {
	b, _ := json.Marshal(oo)
	return string(b)
}

// version is one stored version as the store lists it.
type version struct {
	Ref     string // Type/id/_history/n
	Deleted bool
	Sum     string // hash of the JSON
}

// snapshot lists every version in the store (system history), newest first:
// the store's whole content, to check that a request changed nothing.
func (s *server) snapshot() []version {
	s.t.Helper()
	var out []version
	q := store.HistoryQuery{Count: 1000}
	for {
		page, err := s.app.Store.History(context.Background(), q)
		if err != nil {
			s.t.Fatalf("system history: %v", err)
		}
		for _, r := range page.Versions {
			out = append(out, version{Ref: fmt.Sprintf("%s/%s/_history/%d", r.Type, r.ID, r.Version),
				Deleted: r.Deleted, Sum: fmt.Sprintf("%x", sha256.Sum256(r.JSON))})
		}
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

// assertUnchanged fails when the store's content differs from before.
func (s *server) assertUnchanged(before []version) {
	s.t.Helper()
	if diff := cmp.Diff(before, s.snapshot()); diff != "" {
		s.t.Errorf("the store changed (-before +after):\n%s", diff)
	}
}

// fixture returns testdata/name.
func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withoutServerMeta returns a copy of a decoded resource without id and
// without meta.versionId and meta.lastUpdated (meta itself goes when that
// leaves it empty).
func withoutServerMeta(v map[string]any) map[string]any {
	out := map[string]any{}
	for k, x := range v {
		out[k] = x
	}
	delete(out, "id")
	if m, ok := out["meta"].(map[string]any); ok {
		mm := map[string]any{}
		for k, x := range m {
			if k != "versionId" && k != "lastUpdated" {
				mm[k] = x
			}
		}
		if len(mm) == 0 {
			delete(out, "meta")
		} else {
			out["meta"] = mm
		}
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func urlEscape(s string) string { return url.QueryEscape(s) }

func sortStrings(s []string) { sort.Strings(s) }

// writableTypes lists the types with full REST interactions.
func writableTypes(t testing.TB) []string {
	t.Helper()
	return conformance.Types().Writable
}

// mustJSON encodes v.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
