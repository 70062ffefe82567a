package devserver

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestPortalClient: the portal's public client starts the code flow only
// with PKCE S256 and only back to a redirect URI registered for it: the
// portal's /callback on Signpost's origin (Config.PortalRedirectURIs) or
// a loopback /callback; anything else gets an error page, never a
// redirect.
func TestPortalClient(t *testing.T) {
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	dev, err := New(Config{Issuer: srv.URL + "/auth", Audience: srv.URL + "/fhir", DataDir: t.TempDir(), Patients: demoPatients,
		PortalRedirectURIs: []string{"https://signpost.example/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = dev.Handler()
	var portal *DemoClient
	for _, c := range dev.Clients() {
		if c.ID == ClientPortal {
			portal = &c
		}
	}
	if portal == nil || portal.AuthMethod != AuthNone || !portal.allows("patient/Appointment.cruds") || portal.allows("system/*.rs") {
		t.Fatalf("portal client = %+v", portal)
	}
	tests := []struct {
		name, redirect string
		pkce           bool
		want           string // "login": on to the picker; "error": an error redirect back; "page": an error page
	}{
		{"the portal's origin", "https://signpost.example/callback", true, "login"},
		{"loopback on any port", "http://127.0.0.1:8123/callback", true, "login"},
		{"without PKCE", "https://signpost.example/callback", false, "error"},
		{"another origin", "https://evil.example/callback", true, "page"},
		{"another path", "https://signpost.example/elsewhere", true, "page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"client_id": {ClientPortal}, "response_type": {"code"}, "redirect_uri": {tt.redirect},
				"scope": {"openid fhirUser launch/patient patient/*.cruds"}, "state": {"s"}, "aud": {srv.URL + "/fhir"}}
			if tt.pkce {
				q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
				q.Set("code_challenge_method", "S256")
			}
			resp, err := browser.Get(dev.AuthorizationEndpoint() + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := resp.Location()
			switch tt.want {
			case "login":
				if loc == nil || !strings.HasSuffix(loc.Path, "/auth/login") {
					t.Errorf("redirect = %v (status %d), want the picker", loc, resp.StatusCode)
				}
			case "error":
				if loc == nil || loc.Query().Get("error") != "invalid_request" || !strings.HasPrefix(loc.String(), tt.redirect) {
					t.Errorf("redirect = %v (status %d), want invalid_request back", loc, resp.StatusCode)
				}
			case "page":
				if (loc != nil && loc.Host != srv.Listener.Addr().String()) || resp.StatusCode < 400 {
					t.Errorf("redirect = %v (status %d), want an error page", loc, resp.StatusCode)
				}
			}
		})
	}
}
