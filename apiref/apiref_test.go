package apiref_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/signpost-fhir/signpost/apiref"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/conformance"
)

// get fetches url, failing the test on a transport error.
func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// load fetches the served document and loads it with kin-openapi,
// validating it as OpenAPI 3.
func load(t *testing.T, base string) (*openapi3.T, []byte) {
	t.Helper()
	resp, body := get(t, base+apiref.DocumentPath)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", apiref.DocumentPath, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(body)
	if err != nil {
		t.Fatalf("loading the document: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	return doc, body
}

// TestReference: the reference of a server with authorisation on (the
// development server), through real HTTP; TestReferenceOpen: without.
func TestReference(t *testing.T) {
	_, ts := apptest.New(t, app.Config{Auth: true})
	doc, body := load(t, ts.URL) // loading and validating takes seconds: once
	t.Run("validates", func(t *testing.T) { testValidates(t, ts, doc, body) })
	t.Run("covers", func(t *testing.T) { testCoversCapability(t, ts, doc) })
	t.Run("size", func(t *testing.T) {
		if n := len(body); n > 2<<20 {
			t.Errorf("the document is %d bytes; keep it under 2 MB to stay usable in a browser", n)
		}
	})
	t.Run("page", func(t *testing.T) { testPage(t, ts) })
}

func TestReferenceOpen(t *testing.T) {
	_, ts := apptest.New(t, app.Config{})
	// The same generator as TestReference's document, without rest.security:
	// read with encoding/json (validating it again would cost seconds).
	resp, body := get(t, ts.URL+apiref.DocumentPath)
	var doc struct {
		Security   []any `json:"security"`
		Components struct {
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); resp.StatusCode != 200 || err != nil {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if len(doc.Security) != 0 || len(doc.Components.SecuritySchemes) != 0 {
		t.Errorf("an open server documents security: %v %v", doc.Security, doc.Components.SecuritySchemes)
	}
	var read struct {
		Security *[]any `json:"security"`
	}
	if err := json.Unmarshal(doc.Paths["/Patient/{id}"]["get"], &read); err != nil || read.Security != nil {
		t.Errorf("an open server's read names scopes: %v %v", err, read.Security)
	}
	if len(doc.Paths) < 100 {
		t.Errorf("%d paths", len(doc.Paths))
	}
	t.Run("page", func(t *testing.T) { testPageOpen(t, ts) })
}

// testValidates: the document the server serves is valid OpenAPI 3.0
// (load), with the SMART OAuth 2 and bearer schemes (the development
// server's endpoints), and it is generated once (the same ETag, 304 on
// If-None-Match).
func testValidates(t *testing.T, ts *httptest.Server, doc *openapi3.T, body []byte) {
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	if got := len(doc.Servers); got != 1 || doc.Servers[0].URL != "/fhir" {
		t.Errorf("servers %+v, want the relative /fhir", doc.Servers)
	}
	schemes := doc.Components.SecuritySchemes
	smart := schemes["smart"]
	if smart == nil || smart.Value.Type != "oauth2" || smart.Value.Flows.AuthorizationCode == nil {
		t.Fatalf("no SMART oauth2 scheme with the authorization code flow: %s", body[:200])
	}
	ac := smart.Value.Flows.AuthorizationCode
	if ac.AuthorizationURL != ts.URL+"/auth/authorize" || ac.TokenURL != ts.URL+"/auth/oauth/token" {
		t.Errorf("authorization code flow %s %s", ac.AuthorizationURL, ac.TokenURL)
	}
	if !strings.Contains(smart.Value.Description, "PKCE") {
		t.Errorf("the SMART scheme does not say PKCE is required")
	}
	for _, s := range []string{"launch/patient", "patient/*.cruds", "user/*.cruds", "openid", "fhirUser"} {
		if _, ok := ac.Scopes[s]; !ok {
			t.Errorf("scope %s missing from the authorization code flow", s)
		}
	}
	if b := schemes["bearer"]; b == nil || b.Value.Type != "http" || b.Value.Scheme != "bearer" {
		t.Errorf("no bearer scheme")
	}
	read := doc.Paths.Find("/Patient/{id}").Get
	if read.Security == nil || !slices.ContainsFunc(*read.Security, func(r openapi3.SecurityRequirement) bool {
		return slices.Equal(r["smart"], []string{"user/Patient.r"})
	}) {
		t.Errorf("reading a Patient does not name user/Patient.r: %v", read.Security)
	}
	if meta := doc.Paths.Find("/metadata").Get; meta.Security == nil || len(*meta.Security) != 0 {
		t.Errorf("metadata should need no token: %v", meta.Security)
	}

	resp, again := get(t, ts.URL+apiref.DocumentPath)
	etag := resp.Header.Get("ETag")
	if string(again) != string(body) || etag == "" {
		t.Fatalf("the document changed between requests (ETag %q)", etag)
	}
	if resp, _ := get(t, ts.URL+apiref.DocumentPath, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
}

// capability is what the coverage test reads of the CapabilityStatement.
type capability struct {
	Rest []struct {
		Resource []struct {
			Type        string `json:"type"`
			Interaction []struct {
				Code string `json:"code"`
			} `json:"interaction"`
			SearchParam []struct {
				Name, Type string
			} `json:"searchParam"`
			Operation []struct {
				Name, Definition string
			} `json:"operation"`
		} `json:"resource"`
		Interaction []struct {
			Code string `json:"code"`
		} `json:"interaction"`
		Operation []struct {
			Name, Definition string
		} `json:"operation"`
	} `json:"rest"`
}

// interactionPaths says where each FHIR interaction is in the document.
var interactionPaths = map[string]struct{ path, method string }{
	"read":             {"/{type}/{id}", "GET"},
	"vread":            {"/{type}/{id}/_history/{vid}", "GET"},
	"update":           {"/{type}/{id}", "PUT"},
	"patch":            {"/{type}/{id}", "PATCH"},
	"delete":           {"/{type}/{id}", "DELETE"},
	"history-instance": {"/{type}/{id}/_history", "GET"},
	"history-type":     {"/{type}/_history", "GET"},
	"create":           {"/{type}", "POST"},
	"search-type":      {"/{type}", "GET"},
	"transaction":      {"/", "POST"},
	"batch":            {"/", "POST"},
	"history-system":   {"/_history", "GET"},
	"search-system":    {"/", "GET"},
}

// testCoversCapability: every interaction of every resource type
// in the CapabilityStatement, every search parameter (as a query
// parameter of the search) and every operation (at each level its
// OperationDefinition defines, GET only when it does not affect state, with
// its inputs) is in the document; nothing is there that the
// CapabilityStatement does not offer.
func testCoversCapability(t *testing.T, ts *httptest.Server, doc *openapi3.T) {
	_, raw := get(t, ts.URL+"/fhir/metadata", "Accept", "application/fhir+json")
	var cs capability
	if err := json.Unmarshal(raw, &cs); err != nil {
		t.Fatal(err)
	}
	defs := map[string]json.RawMessage{}
	for _, d := range conformance.Definitions("OperationDefinition") {
		var head struct{ URL string }
		_ = json.Unmarshal(d, &head)
		defs[head.URL] = d
	}
	op := func(path, method string) *openapi3.Operation {
		it := doc.Paths.Find(path)
		if it == nil {
			return nil
		}
		return it.GetOperation(method)
	}
	want := map[string]bool{} // "METHOD path" the CapabilityStatement accounts for
	checkOp := func(typ string, name, url string) {
		var def struct {
			Code                   string
			System, Type, Instance bool
			AffectsState           *bool
			Parameter              []struct{ Name, Use, Type string }
		}
		if d, ok := defs[url]; ok {
			if err := json.Unmarshal(d, &def); err != nil {
				t.Fatal(err)
			}
		} else if name == "validate" {
			def.Code, def.Type, def.Instance, def.AffectsState = "validate", true, true, new(bool)
			*def.AffectsState = true
		} else {
			t.Errorf("$%s: definition %s is not among conformance's", name, url)
			return
		}
		var paths []string
		switch {
		case typ == "":
			paths = []string{"/$" + def.Code}
		default:
			if def.Type {
				paths = append(paths, "/"+typ+"/$"+def.Code)
			}
			if def.Instance {
				paths = append(paths, "/"+typ+"/{id}/$"+def.Code)
			}
		}
		if len(paths) == 0 {
			t.Errorf("$%s on %s: defined at no level", name, typ)
		}
		for _, p := range paths {
			post := op(p, "POST")
			want["POST "+p] = true
			if post == nil {
				t.Errorf("POST %s ($%s) is missing", p, name)
				continue
			}
			for _, par := range def.Parameter {
				if !strings.Contains(post.Description, "| "+par.Name+" | "+par.Use+" |") {
					t.Errorf("POST %s: parameter %s (%s) is not documented", p, par.Name, par.Use)
				}
			}
			get := op(p, "GET")
			safe := def.AffectsState != nil && !*def.AffectsState
			if safe != (get != nil) {
				t.Errorf("GET %s: present %v, want %v (affectsState %v)", p, get != nil, safe, !safe)
			}
			if get == nil {
				continue
			}
			want["GET "+p] = true
			for _, par := range def.Parameter {
				query := par.Use == "in" && (par.Type == "Reference" || par.Type != "" && par.Type[0] >= 'a' && par.Type[0] <= 'z')
				if got := get.Parameters.GetByInAndName("query", par.Name) != nil; got != query {
					t.Errorf("GET %s: query parameter %s present %v, want %v", p, par.Name, got, query)
				}
			}
		}
	}
	rest := cs.Rest[0]
	for _, r := range rest.Resource {
		for _, in := range r.Interaction {
			where, ok := interactionPaths[in.Code]
			if !ok {
				t.Errorf("%s: interaction %s has no place in the test", r.Type, in.Code)
				continue
			}
			p := strings.ReplaceAll(where.path, "{type}", r.Type)
			want[where.method+" "+p] = true
			o := op(p, where.method)
			if o == nil {
				t.Errorf("%s %s (%s %s) is missing", where.method, p, r.Type, in.Code)
				continue
			}
			if got := o.Extensions["x-fhir-interaction"]; got != in.Code {
				t.Errorf("%s %s: x-fhir-interaction %v, want %s", where.method, p, got, in.Code)
			}
			if in.Code == "search-type" {
				want["POST /"+r.Type+"/_search"] = true
				if post := op("/"+r.Type+"/_search", "POST"); post == nil || post.Extensions["x-fhir-interaction"] != "search-type" {
					t.Errorf("POST /%s/_search is missing", r.Type)
				}
				for _, sp := range r.SearchParam {
					par := o.Parameters.GetByInAndName("query", sp.Name)
					if par == nil {
						t.Errorf("search %s: parameter %s is missing", r.Type, sp.Name)
						continue
					}
					if par.Extensions["x-fhir-type"] != sp.Type || !strings.Contains(par.Description, sp.Type) {
						t.Errorf("search %s: parameter %s does not say its type %s", r.Type, sp.Name, sp.Type)
					}
				}
			}
		}
		if doc.Components.Schemas[r.Type] == nil {
			t.Errorf("no schema for %s", r.Type)
		}
		for _, o := range r.Operation {
			checkOp(r.Type, o.Name, o.Definition)
		}
	}
	for _, in := range rest.Interaction {
		where := interactionPaths[in.Code]
		want[where.method+" "+where.path] = true
		if op(where.path, where.method) == nil {
			t.Errorf("system %s (%s %s) is missing", in.Code, where.method, where.path)
		}
	}
	for _, o := range rest.Operation {
		checkOp("", o.Name, o.Definition)
	}
	want["GET /metadata"] = true
	// Nothing more than the CapabilityStatement offers.
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !want[method+" "+path] {
				t.Errorf("%s %s is documented but the CapabilityStatement does not offer it", method, path)
			}
		}
	}
	// The error answers are OperationOutcomes.
	for _, code := range []string{"400", "401", "403", "404", "409", "412", "422", "429", "default"} {
		r := doc.Components.Responses[code]
		if r == nil || r.Value.Content.Get("application/fhir+json") == nil ||
			r.Value.Content.Get("application/fhir+json").Schema.Ref != "#/components/schemas/OperationOutcome" {
			t.Errorf("error response %s is not an OperationOutcome", code)
		}
	}
	// $find: a GET with its inputs, answering a Bundle.
	find := op("/Appointment/$find", "GET")
	if find == nil || find.Parameters.GetByInAndName("query", "healthcare-service") == nil {
		t.Fatalf("GET /Appointment/$find has no healthcare-service")
	}
	if ref := find.Responses.Status(200).Value.Content.Get("application/fhir+json").Schema.Ref; ref != "#/components/schemas/Bundle" {
		t.Errorf("$find answers %s, want a Bundle", ref)
	}
}

// scriptTag matches script elements: every one must load a file.
var scriptTag = regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)

// testPage: the page, its script and assets are served without a token
// under the reference's Content-Security-Policy; the page has no inline
// script (every script is a file of the server's); the document and the
// vendored files are reachable; nothing else is.
func testPage(t *testing.T, ts *httptest.Server) {
	tests := []struct {
		path   string
		status int
		ctype  string
		has    string
	}{
		{"/api/", 200, "text/html; charset=utf-8", `data-client-id="api-reference"`},
		{"/api/index.html", 200, "text/html; charset=utf-8", "swagger-initializer.js"},
		{"/api/swagger-initializer.js", 200, "text/javascript; charset=utf-8", "usePkceWithAuthorizationCodeGrant"},
		{"/api/swagger-ui-bundle.js", 200, "text/javascript; charset=utf-8", "SwaggerUIBundle"},
		{"/api/swagger-ui.css", 200, "text/css; charset=utf-8", ".swagger-ui"},
		{"/api/apiref.css", 200, "text/css; charset=utf-8", ".apiref-header"},
		{"/api/oauth2-redirect.html", 200, "text/html; charset=utf-8", `<script src="oauth2-redirect.js">`},
		{"/api/oauth2-redirect.js", 200, "text/javascript; charset=utf-8", "swaggerUIRedirectOauth2"},
		{"/api/favicon-32x32.png", 200, "image/png", ""},
		{"/api/LICENSE", 200, "text/plain; charset=utf-8", "Apache License"},
		{"/api/openapi.json", 200, "application/json", `"openapi":"3.0.3"`},
		{"/api/VENDOR.json", 404, "", ""},
		{"/api/nothing.js", 404, "", ""},
		{"/api/page/index.html", 404, "", ""},
		{"/api/ui/dist/swagger-ui.css", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, ts.URL+tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != apiref.CSP {
				t.Errorf("CSP %q, want %q", got, apiref.CSP)
			}
			if tc.status != 200 {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if !strings.Contains(string(body), tc.has) {
				t.Errorf("body lacks %q", tc.has)
			}
			if strings.HasSuffix(tc.path, ".html") || strings.HasSuffix(tc.path, "/") {
				for _, m := range scriptTag.FindAllStringSubmatch(string(body), -1) {
					if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
						t.Errorf("inline script: %s", m[0])
					}
				}
				if strings.Contains(strings.ToLower(string(body)), " style=") || strings.Contains(string(body), "<style") {
					t.Errorf("inline style in %s", tc.path)
				}
			}
		})
	}
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(apiref.CSP, want) {
			t.Errorf("CSP lacks %s", want)
		}
	}
	if strings.Contains(apiref.CSP, "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", apiref.CSP)
	}

	// /api goes to /api/; other methods are refused.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(ts.URL + "/api")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/api/" {
		t.Errorf("/api: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = http.Post(ts.URL+"/api/openapi.json", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// testPageOpen: an open server (no authorisation) offers no client to
// sign in with.
func testPageOpen(t *testing.T, ts *httptest.Server) {
	_, body := get(t, ts.URL+"/api/")
	if !strings.Contains(string(body), `data-client-id=""`) || strings.Contains(string(body), "Authorize") {
		t.Errorf("an open server's page offers sign-in: %s", body)
	}
}

// TestCSPWith: an external issuer's origin is added to connect-src only.
func TestCSPWith(t *testing.T) {
	got := apiref.CSPWith("https://issuer.example")
	if !strings.Contains(got, "connect-src 'self' https://issuer.example;") || strings.Count(got, "issuer.example") != 1 {
		t.Errorf("CSPWith: %s", got)
	}
	if apiref.CSPWith() != apiref.CSP {
		t.Errorf("CSPWith() is not CSP")
	}
}

// TestBuildRefusesBrokenSources: a CapabilityStatement that is not one is
// an error, never a document.
func TestBuildRefusesBrokenSources(t *testing.T) {
	for _, cs := range []string{``, `{`, `{"resourceType":"CapabilityStatement"}`} {
		if _, err := apiref.Build(apiref.Sources{CapabilityStatement: []byte(cs)}); err == nil {
			t.Errorf("Build(%q) succeeded", cs)
		}
	}
	ref := apiref.New(apiref.Config{Sources: func(context.Context) (apiref.Sources, error) {
		return apiref.Sources{CapabilityStatement: []byte(`{`)}, nil
	}})
	if _, _, err := ref.Document(context.Background()); err == nil {
		t.Errorf("Document succeeded on a broken CapabilityStatement")
	}
}
