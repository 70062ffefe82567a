package export_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// world is the fixture: two patients with documents, and the directory.
func world() []map[string]any {
	doc := func(id, patient string) map[string]any {
		return map[string]any{"resourceType": "DocumentReference", "id": id, "status": "current",
			"subject": map[string]any{"reference": "Patient/" + patient},
			"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "title": id}}}}
	}
	superseded := doc("doc-b2", "pat-b")
	superseded["status"] = "superseded"
	return []map[string]any{
		{"resourceType": "Organization", "id": "org-1", "name": "Wessex Trust", "active": true},
		{"resourceType": "Location", "id": "loc-1", "name": "Clinic", "status": "active"},
		{"resourceType": "Patient", "id": "pat-a", "name": []any{map[string]any{"family": "Able"}}},
		{"resourceType": "Patient", "id": "pat-b", "name": []any{map[string]any{"family": "Baker"}}},
		doc("doc-a1", "pat-a"), doc("doc-a2", "pat-a"), doc("doc-b1", "pat-b"), superseded,
	}
}

// client calls the server with a token.
type client struct {
	t     testing.TB
	base  string
	token string
}

func (c client) do(method, path string, header map[string]string) (int, http.Header, []byte) {
	c.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = c.base + path
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

var async = map[string]string{"Prefer": "respond-async", "Accept": "application/fhir+json"}

// kickOff starts an export and returns its status URL.
func (c client) kickOff(path string) string {
	c.t.Helper()
	status, h, body := c.do("GET", path, async)
	if status != http.StatusAccepted {
		c.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	loc := h.Get("Content-Location")
	if loc == "" {
		c.t.Fatal("no Content-Location")
	}
	return loc
}

type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"output"`
	Error []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"error"`
}

// wait polls the status URL until the job completes (with a deadline).
func (c client) wait(statusURL string) manifest {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		status, h, body := c.do("GET", statusURL, nil)
		switch status {
		case http.StatusAccepted:
			if h.Get("X-Progress") == "" || h.Get("Retry-After") == "" {
				c.t.Fatalf("202 without X-Progress or Retry-After: %v", h)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		case http.StatusOK:
			var m manifest
			if err := json.Unmarshal(body, &m); err != nil {
				c.t.Fatal(err)
			}
			return m
		default:
			c.t.Fatalf("poll: %d %s", status, body)
		}
	}
	c.t.Fatal("the export did not complete in time")
	return manifest{}
}

// read downloads every output file, returning "Type/id" of each line.
func (c client) read(m manifest) []string {
	c.t.Helper()
	var out []string
	for _, o := range m.Output {
		status, h, body := c.do("GET", o.URL, map[string]string{"Accept": "application/fhir+ndjson"})
		if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/fhir+ndjson") {
			c.t.Fatalf("GET %s: %d %s %s", o.URL, status, h.Get("Content-Type"), body)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var r struct {
				ResourceType, ID string
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				c.t.Fatalf("%s: a line is not JSON: %v", o.URL, err)
			}
			if r.ResourceType != o.Type {
				c.t.Errorf("%s: a %s in the %s file", o.URL, r.ResourceType, o.Type)
			}
			out = append(out, r.ResourceType+"/"+r.ID)
		}
	}
	sort.Strings(out)
	return out
}

// search returns "Type/id" of every match of a search, as the client may see.
func (c client) search(typ, query string) []string {
	c.t.Helper()
	var out []string
	next := "/" + typ + "?_count=1000&" + query
	for next != "" {
		status, _, body := c.do("GET", next, nil)
		if status != http.StatusOK {
			c.t.Fatalf("search %s: %d %s", next, status, body)
		}
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct{ ResourceType, ID string }
				Search   struct{ Mode string }
			}
		}
		_ = json.Unmarshal(body, &b)
		for _, e := range b.Entry {
			if e.Search.Mode != "include" {
				out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
			}
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return out
}

func newServer(t *testing.T, data string) (*app.App, string) {
	a, ts := apptest.New(t, app.Config{Auth: true, Data: data})
	return a, ts.URL + "/fhir"
}

func mint(t *testing.T, data string, opts devserver.TokenOptions) string {
	t.Helper()
	tok, err := devserver.MintToken(data, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestExportMatchesSearches: what an export writes is what the same caller's
// searches find, type by type, for callers of different reach.
func TestExportMatchesSearches(t *testing.T) {
	data := t.TempDir()
	a, base := newServer(t, data)
	apptest.Seed(t, a, world()...)
	types := []string{"Patient", "DocumentReference", "Organization", "Location"}
	tests := []struct {
		name      string
		opts      devserver.TokenOptions
		path      string
		wantTypes []string // the types exported
		refused   bool     // an error file names a type not granted
		only      []string // if set, exactly these resources
		absent    string   // a resource that must not be exported
	}{
		{name: "system, every type", opts: devserver.TokenOptions{Scope: "system/*.read", Client: "analytics"},
			path: "/$export?_type=Patient,DocumentReference,Organization,Location", wantTypes: types},
		{name: "narrower token: fewer types", opts: devserver.TokenOptions{Scope: "system/Patient.rs system/Organization.rs", Client: "analytics"},
			path: "/$export?_type=Patient,DocumentReference,Organization", wantTypes: []string{"Patient", "Organization"}, refused: true},
		{name: "granular scope: only what it reaches", opts: devserver.TokenOptions{Scope: "system/DocumentReference.rs?status=current", Client: "analytics"},
			path: "/$export?_type=DocumentReference", wantTypes: []string{"DocumentReference"}, absent: "DocumentReference/doc-b2"},
		{name: "Patient export, system", opts: devserver.TokenOptions{Scope: "system/*.read", Client: "analytics"},
			path: "/Patient/$export?_type=Patient,DocumentReference", wantTypes: []string{"Patient", "DocumentReference"}},
		{name: "a patient's export: their compartment only", opts: devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"},
			path: "/Patient/$export", only: []string{"DocumentReference/doc-a1", "DocumentReference/doc-a2", "Patient/pat-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client{t: t, base: base, token: mint(t, data, tt.opts)}
			m := c.wait(c.kickOff(tt.path))
			if !m.RequiresAccessToken || m.TransactionTime == "" || !strings.Contains(m.Request, "$export") {
				t.Errorf("manifest header: %+v", m)
			}
			got := c.read(m)
			if tt.absent != "" && slices.Contains(got, tt.absent) {
				t.Errorf("exported %s, which the token does not reach", tt.absent)
			}
			if tt.only != nil {
				if !slices.Equal(got, tt.only) {
					t.Errorf("exported %v, want %v", got, tt.only)
				}
				return
			}
			var want []string
			for _, typ := range tt.wantTypes {
				want = append(want, c.search(typ, "")...)
			}
			sort.Strings(want)
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("exported %v\nsearches find %v", got, want)
			}
			if (len(m.Error) > 0) != tt.refused {
				t.Errorf("error files %v, want refused=%v", m.Error, tt.refused)
			}
		})
	}
}

// TestExportPostAndMetadata: the kick-off also takes a Parameters body
// (POST), and the CapabilityStatement lists $export at system level and on
// Patient.
func TestExportPostAndMetadata(t *testing.T) {
	data := t.TempDir()
	a, base := newServer(t, data)
	apptest.Seed(t, a, world()...)
	c := client{t: t, base: base, token: mint(t, data, devserver.TokenOptions{Scope: "system/*.read", Client: "analytics"})}
	body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"},` +
		`{"name":"_outputFormat","valueString":"application/fhir+ndjson"},{"name":"patient","valueReference":{"reference":"Patient/pat-b"}}]}`
	req, _ := http.NewRequest("POST", base+"/Patient/$export", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST kick-off: %d", res.StatusCode)
	}
	if got := c.read(c.wait(res.Header.Get("Content-Location"))); !slices.Equal(got, []string{"Patient/pat-b"}) {
		t.Errorf("exported %v, want only Patient/pat-b", got)
	}
	_, _, meta := c.do("GET", "/metadata", nil)
	var cs struct {
		Rest []struct {
			Operation []struct{ Name string }
			Resource  []struct {
				Type      string
				Operation []struct{ Name string }
			}
		}
	}
	_ = json.Unmarshal(meta, &cs)
	names := func(ops []struct{ Name string }) (out []string) {
		for _, o := range ops {
			out = append(out, o.Name)
		}
		return out
	}
	system := names(cs.Rest[0].Operation)
	for _, n := range []string{"export", "export-poll-status", "export-file", "bulk-publish", "bulk-publish-file"} {
		if !slices.Contains(system, n) {
			t.Errorf("the CapabilityStatement's system operations %v lack %s", system, n)
		}
	}
	for _, r := range cs.Rest[0].Resource {
		if r.Type == "Patient" && !slices.Contains(names(r.Operation), "export") {
			t.Errorf("Patient's operations %v lack export", names(r.Operation))
		}
	}
}

// TestExportRefusals: the asynchronous pattern's errors are
// OperationOutcomes with their location, and scopes are enforced.
func TestExportRefusals(t *testing.T) {
	data := t.TempDir()
	a, base := newServer(t, data)
	apptest.Seed(t, a, world()...)
	sys := client{t: t, base: base, token: mint(t, data, devserver.TokenOptions{Scope: "system/*.read", Client: "analytics"})}
	user := client{t: t, base: base, token: mint(t, data, devserver.TokenOptions{Scope: "user/*.rs", Client: "gp-system"})}
	tests := []struct {
		name   string
		c      client
		path   string
		header map[string]string
		status int
		where  string
	}{
		{"no Prefer", sys, "/$export", map[string]string{}, 400, "Prefer"},
		{"bad _since", sys, "/$export?_since=yesterday", async, 400, "_since"},
		{"bad _outputFormat", sys, "/$export?_outputFormat=text/csv", async, 400, "_outputFormat"},
		{"unknown _type", sys, "/$export?_type=Nonsense", async, 400, "_type"},
		{"unsupported parameter", sys, "/$export?_typeFilter=Patient%3Fname%3Dx", async, 400, "_typeFilter"},
		{"system export without a system scope", user, "/$export", async, 403, ""},
		{"no token", client{t: t, base: base}, "/$export", async, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := tt.c.do("GET", tt.path, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if !strings.Contains(string(body), `"OperationOutcome"`) || !strings.Contains(string(body), tt.where) {
				t.Errorf("not an OperationOutcome naming %q: %s", tt.where, body)
			}
		})
	}
}

// TestExportOwnerAndCancel: another client can neither poll, download nor
// cancel; the requester can cancel, after which the job is gone.
func TestExportOwnerAndCancel(t *testing.T) {
	data := t.TempDir()
	a, base := newServer(t, data)
	apptest.Seed(t, a, world()...)
	owner := client{t: t, base: base, token: mint(t, data, devserver.TokenOptions{Scope: "system/*.read", Client: "analytics"})}
	other := client{t: t, base: base, token: mint(t, data, devserver.TokenOptions{Scope: "system/*.read", Client: "analytics-2"})}
	statusURL := owner.kickOff("/$export?_type=Patient")
	m := owner.wait(statusURL)
	if len(m.Output) == 0 {
		t.Fatal("no output")
	}
	for _, u := range []string{statusURL, m.Output[0].URL} {
		if status, _, body := other.do("GET", u, nil); status != http.StatusNotFound {
			t.Errorf("another client GET %s: %d %s", u, status, body)
		}
		if status, _, _ := (client{t: t, base: base}).do("GET", u, nil); status != http.StatusUnauthorized {
			t.Errorf("no token GET %s: %d", u, status)
		}
	}
	if status, _, _ := other.do("DELETE", statusURL, nil); status != http.StatusNotFound {
		t.Errorf("another client cancelled: %d", status)
	}
	if status, _, body := owner.do("DELETE", statusURL, nil); status != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", status, body)
	}
	for _, u := range []string{statusURL, m.Output[0].URL} {
		if status, _, _ := owner.do("GET", u, nil); status != http.StatusNotFound {
			t.Errorf("after cancelling, GET %s: %d", u, status)
		}
	}
}

// TestExportSince: _since exports only what changed since.
func TestExportSince(t *testing.T) {
	data := t.TempDir()
	a, base := newServer(t, data)
	apptest.Seed(t, a, world()...)
	time.Sleep(5 * time.Millisecond) // lastUpdated has millisecond precision: the cut must fall between the writes
	cut := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	apptest.Seed(t, a, map[string]any{"resourceType": "Patient", "id": "pat-c", "name": []any{map[string]any{"family": "Cole"}}})
	c := client{t: t, base: base, token: mint(t, data, devserver.TokenOptions{Scope: "system/*.read", Client: "analytics"})}
	got := c.read(c.wait(c.kickOff("/$export?_type=Patient&_since=" + url.QueryEscape(cut.Format(time.RFC3339Nano)))))
	if want := []string{"Patient/pat-c"}; !slices.Equal(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}
}

// TestExportSurvivesRestart: a job started before the server stops is
// finished, and its files served, by the server started again over the
// same data directory (on the same address, so the same token issuer).
func TestExportSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	a, ts, base := serveAt(t, data, "127.0.0.1:0")
	apptest.Seed(t, a, world()...)
	c := client{t: t, base: base, token: mint(t, data, devserver.TokenOptions{Scope: "system/*.read", Client: "analytics"})}
	statusURL := c.kickOff("/$export?_type=Patient,DocumentReference")
	addr := ts.Listener.Addr().String()
	ts.Close()
	a.Close()
	_, _, base2 := serveAt(t, data, addr)
	if base2 != base {
		t.Fatalf("restarted at %s, not %s", base2, base)
	}
	m := c.wait(statusURL)
	got := c.read(m)
	want := append(c.search("Patient", ""), c.search("DocumentReference", "")...)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the restart exported %v, want %v", got, want)
	}
}

// serveAt starts the real server over data on addr (a port of 0 picks one).
func serveAt(t *testing.T, data, addr string) (*app.App, *httptest.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Listener.Close()
	ts.Listener = ln
	base := "http://" + ln.Addr().String() + "/fhir"
	a, err := app.New(app.Config{Data: data, BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = a.Handler()
	ts.Start()
	t.Cleanup(func() { ts.Close(); a.Close() })
	return a, ts, base
}
