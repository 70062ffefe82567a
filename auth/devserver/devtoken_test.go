package devserver

import (
	"encoding/json"
	"github.com/signpost-fhir/signpost/auth/authtest"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// tokenCall is one raw request to a client endpoint of the development
// server.
type tokenCall struct {
	path        string     // relative to the issuer; default the token endpoint
	form        url.Values // the body
	user, pass  string     // HTTP Basic, when user or pass is set
	emptyBasic  bool       // send "Authorization: Basic" with an empty user
	wantStatus  int
	wantError   string   // the OAuth error code; "" for a success
	wantScopes  []string // the scopes of the token granted (sorted)
	wantBasicWA bool     // a WWW-Authenticate: Basic challenge
}

func (f *devFixture) call(t *testing.T, c tokenCall) (int, http.Header, map[string]any) {
	t.Helper()
	endpoint := f.dev.TokenEndpoint()
	if c.path != "" {
		endpoint = f.dev.Issuer() + c.path
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(c.form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	switch {
	case c.emptyBasic:
		req.SetBasicAuth("", "secret-without-a-client")
	case c.user != "" || c.pass != "":
		req.SetBasicAuth(url.QueryEscape(c.user), url.QueryEscape(c.pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer is not JSON: %d %q", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, body
}

// grantedScopes reads the scope claim of an access token.
func grantedScopes(t *testing.T, tok string) []string {
	t.Helper()
	_, claims := authtest.JWTParts(t, tok)
	s, _ := claims["scope"].(string)
	out := strings.Fields(s)
	slices.Sort(out)
	return out
}

// TestDevTokenEndpointAdversarial attacks the development server's client
// endpoints: every wrong or missing client credential, whatever the
// client's registered method (private_key_jwt, client_secret_basic,
// none/PKCE), is answered 401 invalid_client, never a 400 or a 500; and no
// token grants beyond the client's registration, with the wildcard rules
// of the API (a wildcard scope does not reach AuditEvent).
func TestDevTokenEndpointAdversarial(t *testing.T) {
	f := newDevFixture(t)
	cc := f.client(t, ClientCallCentre)
	auditor := f.client(t, ClientAuditor)
	const jwtType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	creds := func(scope string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}}
		if scope != "" {
			v.Set("scope", scope)
		}
		return v
	}
	// withAssertion is a client_credentials request of the gp-system.
	withAssertion := func(scope string, edit func(map[string]any)) url.Values {
		v := creds(scope)
		v.Set("client_assertion_type", jwtType)
		v.Set("client_assertion", f.assertion(t, edit))
		return v
	}
	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, x := range v {
			out[k] = slices.Clone(x)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	foreign := authtest.SignJWT(t, authtest.RSAKey(t, f.client(t, ClientGPSystem).JWK.KeyID), jose.RS256, map[string]any{
		"iss": ClientGPSystem, "sub": ClientGPSystem, "aud": f.dev.TokenEndpoint(), "jti": "foreign-1",
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
	})
	replayed := withAssertion("", nil)
	if status, _, _ := f.call(t, tokenCall{form: replayed}); status != 200 {
		t.Fatalf("first use of an assertion: %d", status)
	}
	code := url.Values{"grant_type": {"authorization_code"}, "code": {"no-such-code"}, "redirect_uri": {"http://127.0.0.1:5000/callback"}, "code_verifier": {oauth2.GenerateVerifier()}}
	const refused = 401

	rows := []struct {
		name string
		tokenCall
	}{
		// client_secret_basic.
		{"secret client, right secret", tokenCall{form: creds(""), user: cc.ID, pass: cc.Secret, wantStatus: 200, wantScopes: []string{"user/*.cruds"}}},
		{"secret client, wrong secret", tokenCall{form: creds(""), user: cc.ID, pass: "wrong-wrong-wrong-wrong", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"secret client, empty secret", tokenCall{form: creds(""), user: cc.ID, pass: "", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"unknown client id in Basic", tokenCall{form: creds(""), user: "nobody", pass: cc.Secret, wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"Basic without a client id", tokenCall{form: creds(""), emptyBasic: true, wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"no credentials at all", tokenCall{form: creds(""), wantStatus: refused, wantError: "invalid_client"}},
		{"secret client, client_id only", tokenCall{form: with(creds(""), "client_id", cc.ID), wantStatus: refused, wantError: "invalid_client"}},
		{"secret client, secret in the body (registered for Basic)", tokenCall{form: with(creds(""), "client_id", cc.ID, "client_secret", cc.Secret), wantStatus: refused, wantError: "invalid_client"}},
		{"unknown client id in the body", tokenCall{form: with(creds(""), "client_id", "nobody", "client_secret", "x"), wantStatus: refused, wantError: "invalid_client"}},
		{"Basic and a secret in the body", tokenCall{form: with(creds(""), "client_id", cc.ID, "client_secret", cc.Secret), user: cc.ID, pass: cc.Secret, wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},

		// private_key_jwt.
		{"assertion client, right assertion", tokenCall{form: withAssertion("system/Appointment.rs", nil), wantStatus: 200, wantScopes: []string{"system/Appointment.rs"}}},
		{"assertion client with a secret instead", tokenCall{form: creds(""), user: ClientGPSystem, pass: "guess-guess-guess-guess", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"assertion client, client_id only", tokenCall{form: with(creds(""), "client_id", ClientGPSystem), wantStatus: refused, wantError: "invalid_client"}},
		{"garbage assertion", tokenCall{form: with(creds(""), "client_assertion_type", jwtType, "client_assertion", "garbage"), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion of another type", tokenCall{form: with(withAssertion("", nil), "client_assertion_type", "urn:example:other"), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion without its type", tokenCall{form: with(creds(""), "client_assertion", f.assertion(t, nil)), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion type without an assertion", tokenCall{form: with(creds(""), "client_assertion_type", jwtType), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion signed by another key", tokenCall{form: with(creds(""), "client_assertion_type", jwtType, "client_assertion", foreign), wantStatus: refused, wantError: "invalid_client"}},
		{"replayed assertion", tokenCall{form: replayed, wantStatus: refused, wantError: "invalid_client"}},
		{"expired assertion", tokenCall{form: withAssertion("", func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion for another audience", tokenCall{form: withAssertion("", func(c map[string]any) { c["aud"] = "https://elsewhere.example/token" }), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion claiming a secret client", tokenCall{form: withAssertion("", func(c map[string]any) { c["iss"], c["sub"] = ClientCallCentre, ClientCallCentre }), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion of an unknown client", tokenCall{form: withAssertion("", func(c map[string]any) { c["iss"], c["sub"] = "nobody", "nobody" }), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion with another client_id", tokenCall{form: with(withAssertion("", nil), "client_id", ClientProvider), wantStatus: refused, wantError: "invalid_client"}},
		{"assertion and Basic", tokenCall{form: withAssertion("", nil), user: cc.ID, pass: cc.Secret, wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},

		// none (public client, PKCE).
		{"public client asks for client_credentials", tokenCall{form: with(creds(""), "client_id", ClientPatientApp), wantStatus: refused, wantError: "invalid_client"}},
		{"public client with a secret", tokenCall{form: with(code, "client_id", ClientPatientApp, "client_secret", "x"), wantStatus: refused, wantError: "invalid_client"}},
		{"code exchange of an unknown client", tokenCall{form: with(code, "client_id", "nobody"), wantStatus: refused, wantError: "invalid_client"}},
		{"code exchange without a client", tokenCall{form: code, wantStatus: refused, wantError: "invalid_client"}},
		{"code exchange with a wrong secret", tokenCall{form: code, user: cc.ID, pass: "wrong", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"code exchange with a bad assertion", tokenCall{form: with(code, "client_assertion_type", jwtType, "client_assertion", "garbage"), wantStatus: refused, wantError: "invalid_client"}},
		{"code exchange of the public client with an unknown code", tokenCall{form: with(code, "client_id", ClientPatientApp), wantStatus: 400, wantError: "invalid_grant"}},
		{"refresh grant of an unknown client", tokenCall{form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, user: "nobody", pass: "x", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},

		// Revocation and introspection authenticate the same way.
		{"revocation by an unknown client", tokenCall{path: "/revoke", form: url.Values{"token": {"x"}}, user: "nobody", pass: "x", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"revocation with a wrong secret", tokenCall{path: "/revoke", form: url.Values{"token": {"x"}}, user: cc.ID, pass: "wrong", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"revocation without credentials", tokenCall{path: "/revoke", form: url.Values{"token": {"x"}}, wantStatus: refused, wantError: "invalid_client"}},
		{"introspection with a wrong secret", tokenCall{path: "/oauth/introspect", form: url.Values{"token": {"x"}}, user: cc.ID, pass: "wrong", wantStatus: refused, wantError: "invalid_client", wantBasicWA: true}},
		{"introspection without credentials", tokenCall{path: "/oauth/introspect", form: url.Values{"token": {"x"}}, wantStatus: refused, wantError: "invalid_client"}},
		{"introspection with the right secret", tokenCall{path: "/oauth/introspect", form: url.Values{"token": {"x"}}, user: cc.ID, pass: cc.Secret, wantStatus: 200}},

		// Never beyond the registration, wildcards as the API reads them.
		{"a wildcard registration does not cover the audit trail", tokenCall{form: withAssertion("system/AuditEvent.rs", nil), wantStatus: 400, wantError: "invalid_scope"}},
		{"the audit trail is dropped from a mixed request", tokenCall{form: withAssertion("system/AuditEvent.rs system/Patient.rs", nil), wantStatus: 200, wantScopes: []string{"system/Patient.rs"}}},
		{"a wildcard request does not reach the audit trail", tokenCall{form: creds("user/*.rs user/AuditEvent.rs"), user: cc.ID, pass: cc.Secret, wantStatus: 200, wantScopes: []string{"user/*.rs"}}},
		{"another context than registered", tokenCall{form: withAssertion("user/*.cruds patient/*.rs", nil), wantStatus: 400, wantError: "invalid_scope"}},
		{"more permissions than registered", tokenCall{form: creds("system/AuditEvent.cruds"), user: auditor.ID, pass: auditor.Secret, wantStatus: 400, wantError: "invalid_scope"}},
		{"the auditor's wildcard", tokenCall{form: creds("system/*.rs"), user: auditor.ID, pass: auditor.Secret, wantStatus: 400, wantError: "invalid_scope"}},
		{"the auditor's own scope", tokenCall{form: creds("system/AuditEvent.rs"), user: auditor.ID, pass: auditor.Secret, wantStatus: 200, wantScopes: []string{"system/AuditEvent.rs"}}},
		{"OpenID scopes not registered", tokenCall{form: creds("openid profile offline_access"), user: cc.ID, pass: cc.Secret, wantStatus: 400, wantError: "invalid_scope"}},
		{"a granular scope within a wildcard", tokenCall{form: withAssertion("system/Appointment.rs?status=booked", nil), wantStatus: 200, wantScopes: []string{"system/Appointment.rs?status=booked"}}},
		{"a v1 wildcard within a v2 one", tokenCall{form: withAssertion("system/*.read", nil), wantStatus: 200, wantScopes: []string{"system/*.read"}}},
	}
	if len(rows) < 40 {
		t.Fatalf("only %d rows", len(rows))
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			status, header, body := f.call(t, r.tokenCall)
			if status != r.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, r.wantStatus, body)
			}
			if status >= 500 {
				t.Fatalf("a server error: %v", body)
			}
			if got, _ := body["error"].(string); got != r.wantError {
				t.Errorf("error %q, want %q: %v", got, r.wantError, body)
			}
			if got := strings.HasPrefix(header.Get("WWW-Authenticate"), "Basic"); got != r.wantBasicWA {
				t.Errorf("WWW-Authenticate %q, want a Basic challenge: %v", header.Get("WWW-Authenticate"), r.wantBasicWA)
			}
			tok, _ := body["access_token"].(string)
			if r.wantError != "" && tok != "" {
				t.Errorf("a refusal carries an access token")
			}
			if r.wantScopes != nil {
				if got := grantedScopes(t, tok); !slices.Equal(got, r.wantScopes) {
					t.Errorf("granted %q, want %q", got, r.wantScopes)
				}
			}
		})
	}
}

// TestDevAuthorizationScopesWithinRegistration: the authorisation-code
// flow grants only the scopes the client is registered for; zitadel alone
// would keep any OpenID scope (profile, email, offline_access).
func TestDevAuthorizationScopesWithinRegistration(t *testing.T) {
	f := newDevFixture(t)
	verifier := oauth2.GenerateVerifier()
	q := url.Values{
		"client_id": {ClientPatientApp}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1:5000/callback"},
		"scope":          {"openid profile email offline_access launch/patient patient/Appointment.rs patient/AuditEvent.rs user/*.cruds"},
		"state":          {"s"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	resp, err := browser.Get(f.dev.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	login := location(t, resp)
	resp, err = browser.Get(login.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"patient": {"pat-1"}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], m[2])
	}
	resp, err = browser.PostForm(login.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = browser.Get(location(t, resp).String())
	if err != nil {
		t.Fatal(err)
	}
	back := location(t, resp)
	status, _, body := f.call(t, tokenCall{form: url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {"http://127.0.0.1:5000/callback"}, "code_verifier": {verifier}, "client_id": {ClientPatientApp}}})
	if status != 200 {
		t.Fatalf("code exchange: %d %v", status, body)
	}
	tok, _ := body["access_token"].(string)
	want := []string{"launch/patient", "openid", "patient/Appointment.rs"}
	if got := grantedScopes(t, tok); !slices.Equal(got, want) {
		t.Errorf("granted %q, want %q", got, want)
	}
	if _, ok := body["refresh_token"]; ok {
		t.Errorf("a refresh token was issued")
	}
}
