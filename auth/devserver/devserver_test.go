package devserver

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"github.com/signpost-fhir/signpost/auth/authtest"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signpost-fhir/signpost/auth"
)

type fixedPatients []PatientChoice

func (f fixedPatients) Patients(context.Context) ([]PatientChoice, error) { return f, nil }

var demoPatients = fixedPatients{
	{ID: "pat-1", Name: "Ada Lovelace", NHSNumber: "9434765919", BirthDate: "1985-12-10"},
	{ID: "pat-2", Name: "Alan <script>Turing</script>", NHSNumber: "9434765870"},
}

// devFixture is a development server mounted under /auth of a server on
// 127.0.0.1, as the API will mount it.
type devFixture struct {
	srv     *httptest.Server
	dev     *Server
	dataDir string
	fhir    string // the audience
}

func newDevFixture(t *testing.T) *devFixture {
	t.Helper()
	f := &devFixture{dataDir: t.TempDir()}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.fhir = f.srv.URL + "/fhir"
	dev, err := New(Config{Issuer: f.srv.URL + "/auth", Audience: f.fhir, DataDir: f.dataDir, Patients: demoPatients})
	if err != nil {
		t.Fatal(err)
	}
	f.dev = dev
	mux.Handle("/auth/", dev.Handler())
	return f
}

func (f *devFixture) client(t *testing.T, id string) DemoClient {
	t.Helper()
	for _, c := range f.dev.Clients() {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no demo client %q", id)
	return DemoClient{}
}

// assertion builds a SMART Backend Services client assertion signed with
// the gp-system's key from the data directory.
func (f *devFixture) assertion(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	c := f.client(t, ClientGPSystem)
	b, err := os.ReadFile(filepath.Join(auth.DevDir(f.dataDir), c.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"iss": c.ID, "sub": c.ID, "aud": f.dev.TokenEndpoint(), "jti": randomString(8),
		"exp": time.Now().Add(4 * time.Minute).Unix(), "iat": time.Now().Unix(),
	}
	if edit != nil {
		edit(claims)
	}
	return authtest.SignJWT(t, jose.JSONWebKey{Key: key, KeyID: c.JWK.KeyID}, jose.RS256, claims)
}

func (f *devFixture) backendToken(ctx context.Context, assertion string, scopes ...string) (*oauth2.Token, error) {
	cc := clientcredentials.Config{
		ClientID: ClientGPSystem,
		TokenURL: f.dev.TokenEndpoint(),
		Scopes:   scopes,
		EndpointParams: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		},
		AuthStyle: oauth2.AuthStyleInParams,
	}
	return cc.Token(ctx)
}

func TestDevServerFirstStart(t *testing.T) {
	f := newDevFixture(t)
	dir := auth.DevDir(f.dataDir)
	for _, name := range []string{signingKeyFile, clientsFile, issuerFile, ClientGPSystem + "-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, fi.Mode().Perm())
		}
	}
	// A second start reuses keys and credentials.
	again, err := New(Config{Issuer: f.dev.Issuer(), Audience: f.fhir, DataDir: f.dataDir, Patients: demoPatients})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.PublicKeys()[0].KeyID, f.dev.PublicKeys()[0].KeyID; got != want {
		t.Errorf("restart: kid = %q, want %q", got, want)
	}
	if got, want := again.Clients(), f.dev.Clients(); got[1].Secret != want[1].Secret {
		t.Errorf("restart: call-centre secret changed")
	}
	// Another data directory gets other credentials.
	other := newDevFixture(t)
	if other.client(t, ClientCallCentre).Secret == f.client(t, ClientCallCentre).Secret {
		t.Errorf("two data directories share a client secret")
	}
	banner := f.dev.Banner()
	for _, want := range []string{"DEVELOPMENT", f.client(t, ClientCallCentre).Secret, ClientGPSystem, ClientPatientApp, f.dev.TokenEndpoint()} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
}

func TestDevServerDiscovery(t *testing.T) {
	f := newDevFixture(t)
	resp, err := http.Get(f.dev.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer        string   `json:"issuer"`
		TokenEndpoint string   `json:"token_endpoint"`
		JWKSURI       string   `json:"jwks_uri"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		GrantTypes    []string `json:"grant_types_supported"`
		PKCE          []string `json:"code_challenge_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != f.dev.Issuer() || doc.TokenEndpoint != f.dev.TokenEndpoint() || doc.JWKSURI != f.dev.SmartEndpoints().JWKSURI {
		t.Errorf("discovery = %+v", doc)
	}
	for _, want := range []struct {
		list []string
		v    string
	}{{doc.AuthMethods, "private_key_jwt"}, {doc.GrantTypes, "client_credentials"}, {doc.GrantTypes, "authorization_code"}, {doc.PKCE, "S256"}} {
		if !slices.Contains(want.list, want.v) {
			t.Errorf("discovery lacks %q in %q", want.v, want.list)
		}
	}
}

func TestDevServerClientCredentials(t *testing.T) {
	f := newDevFixture(t)
	ctx := context.Background()
	local, err := f.dev.Verifier(auth.VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// The same tokens verify through discovery and JWKS over HTTP.
	remote, err := auth.NewVerifier(ctx, auth.VerifierConfig{Issuer: f.dev.Issuer(), Audience: f.fhir})
	if err != nil {
		t.Fatal(err)
	}

	tok, err := f.backendToken(ctx, f.assertion(t, nil), "system/Appointment.cruds", "system/Slot.rs", "user/Patient.rs")
	if err != nil {
		t.Fatalf("client_credentials with a JWT assertion: %v", err)
	}
	for name, v := range map[string]*auth.Verifier{"local": local, "remote": remote} {
		p, err := v.Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("%s Verify: %v", name, err)
		}
		if p.ClientID != ClientGPSystem || p.Subject != ClientGPSystem || p.Organization != DemoGPPractice || p.Role != auth.RoleReferrer {
			t.Errorf("%s principal = %+v", name, p)
		}
		// user/Patient.rs is not the gp-system's to have.
		if got, want := p.RawScopes, []string{"system/Appointment.cruds", "system/Slot.rs"}; !slices.Equal(got, want) {
			t.Errorf("%s scopes = %q, want %q", name, got, want)
		}
		if !p.Allows(auth.LevelSystem, "Appointment", auth.Create) || p.Allows(auth.LevelSystem, "Slot", auth.Update) {
			t.Errorf("%s Allows wrong for %q", name, p.RawScopes)
		}
	}

	// Secret clients.
	cc := f.client(t, ClientCallCentre)
	secretCfg := clientcredentials.Config{ClientID: cc.ID, ClientSecret: cc.Secret, TokenURL: f.dev.TokenEndpoint(), AuthStyle: oauth2.AuthStyleInHeader}
	tok, err = secretCfg.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials with a secret: %v", err)
	}
	p, err := local.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if p.Role != auth.RoleCallCentre || p.Organization != DemoCallCentre || !slices.Equal(p.RawScopes, cc.Scopes) {
		t.Errorf("call-centre principal = %+v", p)
	}

	refusals := []struct {
		name string
		get  func() (*oauth2.Token, error)
	}{
		{"replayed assertion", func() (*oauth2.Token, error) {
			a := f.assertion(t, nil)
			if _, err := f.backendToken(ctx, a); err != nil {
				t.Fatalf("first use: %v", err)
			}
			return f.backendToken(ctx, a)
		}},
		{"assertion without jti", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, f.assertion(t, func(c map[string]any) { delete(c, "jti") }))
		}},
		{"assertion for another audience", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, f.assertion(t, func(c map[string]any) { c["aud"] = "https://elsewhere.example/token" }))
		}},
		{"expired assertion", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, f.assertion(t, func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }))
		}},
		{"assertion living too long", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, f.assertion(t, func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() }))
		}},
		{"assertion with sub not iss", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, f.assertion(t, func(c map[string]any) { c["sub"] = "someone" }))
		}},
		{"assertion signed by another key", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, authtest.SignJWT(t, authtest.RSAKey(t, f.client(t, ClientGPSystem).JWK.KeyID), jose.RS256, map[string]any{
				"iss": ClientGPSystem, "sub": ClientGPSystem, "aud": f.dev.TokenEndpoint(), "jti": "x", "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
			}))
		}},
		{"assertion claiming a secret client", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, f.assertion(t, func(c map[string]any) { c["iss"], c["sub"] = ClientCallCentre, ClientCallCentre }))
		}},
		{"only scopes the client may not have", func() (*oauth2.Token, error) {
			return f.backendToken(ctx, f.assertion(t, nil), "user/*.cruds")
		}},
		{"wrong secret", func() (*oauth2.Token, error) {
			c := secretCfg
			c.ClientSecret = "wrong-secret-wrong-secret"
			return c.Token(ctx)
		}},
		{"gp-system without an assertion", func() (*oauth2.Token, error) {
			c := clientcredentials.Config{ClientID: ClientGPSystem, ClientSecret: "guess-guess-guess-guess", TokenURL: f.dev.TokenEndpoint()}
			return c.Token(ctx)
		}},
		{"public client", func() (*oauth2.Token, error) {
			c := clientcredentials.Config{ClientID: ClientPatientApp, TokenURL: f.dev.TokenEndpoint(), AuthStyle: oauth2.AuthStyleInParams}
			return c.Token(ctx)
		}},
	}
	for _, r := range refusals {
		if tok, err := r.get(); err == nil {
			t.Errorf("%s: got a token: %+v", r.name, tok)
		}
	}
}

// browser follows an authorisation flow by hand, one redirect at a time.
var browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func location(t *testing.T, resp *http.Response) *url.URL {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want a redirect: %s", resp.StatusCode, b)
	}
	u, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDevServerAuthorizationCodePKCE(t *testing.T) {
	f := newDevFixture(t)
	ctx := context.Background()
	conf := &oauth2.Config{
		ClientID:    ClientPatientApp,
		Endpoint:    oauth2.Endpoint{AuthURL: f.dev.AuthorizationEndpoint(), TokenURL: f.dev.TokenEndpoint(), AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:43210/callback",
		Scopes:      []string{"openid", "fhirUser", "launch/patient", "patient/Appointment.rs", "patient/Slot.rs", "system/*.cruds"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", f.fhir))

	// /authorize sends the browser to the patient picker.
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	login := location(t, resp)
	if login.Path != "/auth/login" {
		t.Fatalf("authorize redirected to %s, want the picker", login)
	}
	resp, err = browser.Get(login.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"Ada Lovelace", "9434765919", "Alan &lt;script&gt;Turing", `value="pat-2"`, "Development authorisation server"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("picker page lacks %q", want)
		}
	}
	if strings.Contains(string(page), "<script>") {
		t.Errorf("picker page does not escape patient names")
	}
	// Picking a patient not offered is refused.
	id := login.Query().Get("authRequestID")
	// The browser submits the form's hidden fields: the request id and the
	// CSRF token (TestPickerCSRF covers submissions without it).
	hidden := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		hidden.Set(m[1], m[2])
	}
	csrf := hidden.Get(csrfField)
	resp, err = browser.PostForm(login.String(), url.Values{"authRequestID": {id}, csrfField: {csrf}, "patient": {"pat-99"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("picking an unlisted patient: status %d, want 400", resp.StatusCode)
	}
	// The user picks pat-2; the callback redirects to the app with a code.
	resp, err = browser.PostForm(login.String(), url.Values{"authRequestID": {id}, csrfField: {csrf}, "patient": {"pat-2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = browser.Get(location(t, resp).String())
	if err != nil {
		t.Fatal(err)
	}
	back := location(t, resp)
	if back.Host != "127.0.0.1:43210" || back.Query().Get("state") != "state-1" || back.Query().Get("code") == "" {
		t.Fatalf("redirect back to the app = %s", back)
	}
	code := back.Query().Get("code")

	// A wrong verifier fails; the right one gets the token once.
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Errorf("exchange with the wrong code_verifier succeeded")
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Errorf("a code was exchanged twice")
	}
	if got := tok.Extra("patient"); got != "pat-2" {
		t.Errorf("token response patient = %v, want pat-2", got)
	}
	if tok.Extra("id_token") == nil {
		t.Errorf("no id_token in the token response")
	}
	v, err := f.dev.Verifier(auth.VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	wantScopes := []string{"openid", "fhirUser", "launch/patient", "patient/Appointment.rs", "patient/Slot.rs"} // not system/*.cruds
	if p.Patient != "pat-2" || p.Role != auth.RolePatient || p.ClientID != ClientPatientApp || p.FHIRUser != f.fhir+"/Patient/pat-2" || !slices.Equal(p.RawScopes, wantScopes) {
		t.Errorf("principal = %+v", p)
	}
	if d := p.Decide("Appointment", auth.Search); !d.Allowed || !d.PatientOnly {
		t.Errorf("Decide(Appointment, search) = %+v, want patient-only", d)
	}
}

func TestDevServerAuthorizationRefusals(t *testing.T) {
	f := newDevFixture(t)
	base := url.Values{
		"client_id": {ClientPatientApp}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1:5000/callback"},
		"scope": {"openid patient/*.rs"}, "state": {"s"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}
	tests := []struct {
		name      string
		edit      func(url.Values)
		wantError string // the error parameter of the redirect back, or "" for a page (no redirect)
	}{
		{"no PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"aud of another server", func(v url.Values) { v.Set("aud", "https://other.example/fhir") }, "invalid_request"},
		{"unregistered redirect", func(v url.Values) { v.Set("redirect_uri", "https://evil.example/callback") }, ""},
		{"confidential client may not use the code flow", func(v url.Values) { v.Set("client_id", ClientCallCentre) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := maps.Clone(base)
			tt.edit(q)
			resp, err := browser.Get(f.dev.AuthorizationEndpoint() + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			loc, _ := resp.Location()
			if tt.wantError == "" {
				if loc != nil && loc.Host != f.srv.Listener.Addr().String() {
					t.Fatalf("redirected to %s", loc)
				}
				if resp.StatusCode < 400 {
					t.Errorf("status %d, want an error page", resp.StatusCode)
				}
				return
			}
			if loc == nil || loc.Query().Get("error") != tt.wantError {
				t.Errorf("redirect = %v (status %d), want error=%s", loc, resp.StatusCode, tt.wantError)
			}
		})
	}
}

func TestMintToken(t *testing.T) {
	f := newDevFixture(t)
	ctx := context.Background()
	v, err := f.dev.Verifier(auth.VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// A token from the token endpoint, to compare with.
	issued, err := f.backendToken(ctx, f.assertion(t, nil), "system/*.cruds")
	if err != nil {
		t.Fatal(err)
	}
	minted, err := MintToken(f.dataDir, TokenOptions{Scope: "system/*.cruds"})
	if err != nil {
		t.Fatal(err)
	}
	ih, ic := authtest.JWTParts(t, issued.AccessToken)
	mh, mc := authtest.JWTParts(t, minted)
	if !maps.Equal(ih, mh) {
		t.Errorf("headers differ: issued %v, minted %v", ih, mh)
	}
	if got, want := slices.Sorted(maps.Keys(mc)), slices.Sorted(maps.Keys(ic)); !slices.Equal(got, want) {
		t.Errorf("minted claims %q, issued claims %q", got, want)
	}
	for _, k := range []string{"iss", "sub", "client_id", "scope", "org", "role"} {
		if mc[k] != ic[k] {
			t.Errorf("claim %s: minted %v, issued %v", k, mc[k], ic[k])
		}
	}

	tests := []struct {
		name string
		opts TokenOptions
		want auth.Principal
	}{
		{"backend defaults", TokenOptions{Scope: "system/*.cruds"},
			auth.Principal{ClientID: ClientGPSystem, Subject: ClientGPSystem, Organization: DemoGPPractice, Role: auth.RoleReferrer}},
		{"patient", TokenOptions{Scope: "launch/patient patient/*.rs", Patient: "pat-1"},
			auth.Principal{ClientID: ClientPatientApp, Subject: "Patient/pat-1", Patient: "pat-1", FHIRUser: f.fhir + "/Patient/pat-1", Role: auth.RolePatient}},
		{"overrides", TokenOptions{Scope: "user/*.cruds", Client: ClientCallCentre, Org: "Y12345", Role: auth.RoleAuditor},
			auth.Principal{ClientID: ClientCallCentre, Subject: ClientCallCentre, Organization: "Y12345", Role: auth.RoleAuditor}},
		{"unknown client", TokenOptions{Scope: "system/Slot.rs", Client: "script"},
			auth.Principal{ClientID: "script", Subject: "script"}},
		// signpost token --client operator: the client's scopes by default.
		{"operator, the client's scopes", TokenOptions{Client: ClientOperator},
			auth.Principal{ClientID: ClientOperator, Subject: ClientOperator, Organization: DemoProvider, Role: auth.RoleOperator}},
	}
	for _, tt := range tests {
		tok, err := MintToken(f.dataDir, tt.opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		p, err := v.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("%s: Verify: %v", tt.name, err)
		}
		got := auth.Principal{ClientID: p.ClientID, Subject: p.Subject, Organization: p.Organization, Role: p.Role, Patient: p.Patient, FHIRUser: p.FHIRUser}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: principal = %+v, want %+v", tt.name, got, tt.want)
		}
		wantScopes := strings.Fields(tt.opts.Scope)
		if tt.opts.Scope == "" {
			wantScopes = []string{"user/HealthcareService.rs", "user/Organization.rs", "user/Location.rs"}
		}
		if !slices.Equal(p.RawScopes, wantScopes) {
			t.Errorf("%s: scopes = %q", tt.name, p.RawScopes)
		}
	}

	short, err := MintToken(f.dataDir, TokenOptions{Scope: "system/Slot.rs", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(ctx, short); err != nil || time.Until(p.Expiry) > time.Minute+time.Second {
		t.Errorf("TTL: expiry %v, err %v", p.Expiry, err)
	}

	for name, opts := range map[string]TokenOptions{
		"no scope, a client without scopes": {Client: "script"},
		"unknown role":                      {Scope: "system/Slot.rs", Role: "admin"},
		"ttl too long":                      {Scope: "system/Slot.rs", TTL: 48 * time.Hour},
	} {
		if _, err := MintToken(f.dataDir, opts); err == nil {
			t.Errorf("%s: MintToken succeeded", name)
		}
	}
	if _, err := MintToken(t.TempDir(), TokenOptions{Scope: "system/Slot.rs"}); err == nil || !strings.Contains(err.Error(), "signpost serve") {
		t.Errorf("MintToken without server state: %v", err)
	}
}
