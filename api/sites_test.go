package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/app"
)

// TestSites: pages served beside the API need no token, answer in their
// own format whatever Accept says and carry their own
// Content-Security-Policy, while /fhir keeps authentication and the API's
// policy; the longest prefix wins and "/" takes only what nothing else
// serves.
func TestSites(t *testing.T) {
	page := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(name + " " + r.URL.Path))
		})
	}
	s := newSecureServer(t, app.Config{Sites: []api.Site{
		{Prefix: "/", Handler: page("portal"), CSP: "default-src 'self'; img-src 'self' data:"},
		{Prefix: "/api", Handler: page("reference")},
	}})
	tests := []struct {
		path, accept string
		status       int
		body, csp    string
	}{
		{"/", "text/html", 200, "portal /", "default-src 'self'; img-src 'self' data:"},
		{"/book/slot-1", "application/fhir+json", 200, "portal /book/slot-1", "default-src 'self'; img-src 'self' data:"},
		{"/api", "", 200, "reference /api", api.DefaultSiteCSP},
		{"/api/openapi.json", "application/json", 200, "reference /api/openapi.json", api.DefaultSiteCSP},
		{"/apis", "", 200, "portal /apis", "default-src 'self'; img-src 'self' data:"},
		{"/fhir/Patient", "application/fhir+json", 401, "", "default-src 'none'; frame-ancestors 'none'"},
		{"/fhir/nothing/here/at/all", "application/fhir+json", 401, "", "default-src 'none'; frame-ancestors 'none'"},
		{"/healthz", "", 200, "ok", "default-src 'none'; frame-ancestors 'none'"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := s.do(request{method: "GET", path: tc.path, header: map[string]string{"Accept": tc.accept}})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.body != "" && string(r.body) != tc.body {
				t.Errorf("body %q, want %q", r.body, tc.body)
			}
			if got := r.header.Get("Content-Security-Policy"); got != tc.csp {
				t.Errorf("CSP %q, want %q", got, tc.csp)
			}
			if got := r.header.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("X-Frame-Options %q", got)
			}
		})
	}
}

// TestSitesWithoutRoot: with no site at "/", a path nothing serves is a
// FHIR 404 as before.
func TestSitesWithoutRoot(t *testing.T) {
	s := newServer(t, app.Config{Sites: []api.Site{{Prefix: "/api", Handler: http.NotFoundHandler()}}})
	r := s.do(request{method: "GET", path: "/elsewhere", header: map[string]string{"Accept": "application/fhir+json"}})
	if r.status != 404 || !strings.Contains(string(r.body), "OperationOutcome") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

// TestSitesReserved: a site may not take the API's own paths.
func TestSitesReserved(t *testing.T) {
	for _, p := range []string{"/fhir", "/fhir/x", "/auth", "auth/login", "/healthz"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("site at %q accepted", p)
				}
			}()
			newServer(t, app.Config{Sites: []api.Site{{Prefix: p, Handler: http.NotFoundHandler()}}})
		}()
	}
}
