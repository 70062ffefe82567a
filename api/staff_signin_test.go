package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// staffBrowser follows no redirects, so that each step can be checked.
var staffBrowser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// staffRedirect is the API reference's redirect on a loopback address
// (any port matches).
const staffRedirect = "http://127.0.0.1:43210" + devserver.APIReferenceRedirectPath

// staffConf is the api-reference public client asking for scopes.
func staffConf(s *secureServer, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: devserver.ClientAPIReference,
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/authorize", TokenURL: s.issuer + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: staffRedirect,
		Scopes:      scopes,
	}
}

// staffPage is the staff sign-in page of one authorisation request.
type staffPage struct {
	url  *url.URL
	body string
	form url.Values // its hidden fields
}

var staffHidden = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// openStaffPage sends the browser to /authorize with PKCE and loads the
// sign-in page it is sent to.
func openStaffPage(t *testing.T, conf *oauth2.Config, verifier string) staffPage {
	t.Helper()
	resp, err := staffBrowser.Get(conf.AuthCodeURL("state-s", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login, err := resp.Location()
	if err != nil {
		t.Fatalf("/authorize: %d, no redirect to a sign-in page", resp.StatusCode)
	}
	resp, err = staffBrowser.Get(login.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", login.Path, resp.StatusCode, b)
	}
	p := staffPage{url: login, body: string(b), form: url.Values{}}
	for _, m := range staffHidden.FindAllStringSubmatch(p.body, -1) {
		p.form.Set(m[1], m[2])
	}
	return p
}

// choose submits the page's form as user; it returns the status and, on
// a redirect, where to.
func (p staffPage) choose(t *testing.T, user string) (int, *url.URL, string) {
	t.Helper()
	form := url.Values{}
	for k, v := range p.form {
		form[k] = v
	}
	form.Set("user", user)
	resp, err := staffBrowser.PostForm(p.url.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	u, _ := resp.Location()
	return resp.StatusCode, u, string(b)
}

// staffSignIn signs user in through the staff page and exchanges the code:
// the token the client gets.
func staffSignIn(t *testing.T, conf *oauth2.Config, user string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	page := openStaffPage(t, conf, verifier)
	if page.url.Path != "/auth/staff" {
		t.Fatalf("a staff request was sent to %s, want /auth/staff", page.url.Path)
	}
	status, callback, body := page.choose(t, user)
	if status != http.StatusFound {
		t.Fatalf("choosing %s: %d %s", user, status, body)
	}
	resp, err := staffBrowser.Get(callback.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := resp.Location()
	if err != nil || back.Host != "127.0.0.1:43210" || back.Query().Get("state") != "state-s" || back.Query().Get("code") == "" {
		t.Fatalf("the callback did not return a code to the client: %v %v", back, err)
	}
	tok, err := conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok
}

// claimsOf decodes a JWT's claims (the API verifies it; the test reads it).
func claimsOf(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStaffSignIn signs each demo member of staff in through the
// development server's staff sign-in (authorization code with PKCE, the
// api-reference public client, real HTTP) and uses the token on the API:
// it carries the user's role, organisation and fhirUser and the requested
// user/ scopes narrowed to the role's, and it reaches exactly what the
// role and organisation allow.
func TestStaffSignIn(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	const proposal = `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-a"},"status":"needs-action"}]}`
	type check struct {
		method, path, body string
		status             int    // 0: anything but 200/201 (refused or hidden)
		hasNot             string // must not appear in the answer
	}
	tests := []struct {
		user, role, org string
		scopes          []string // granted
		checks          []check
	}{
		{devserver.StaffGP, "referrer", devserver.DemoGPPractice, []string{"openid", "fhirUser", "user/*.cruds"}, []check{
			{"GET", "ServiceRequest/sr-a", "", 200, ""}, // its practice's referrals
			{"GET", "Task/task-b", "", 200, ""},
			{"GET", "$booking-outcomes", "", 403, ""}, // reports are the commissioner's
		}},
		{devserver.StaffProvider, "provider", devserver.DemoProvider, []string{"openid", "fhirUser", "user/*.cruds"}, []check{
			{"GET", "ServiceRequest/sr-a", "", 200, ""},       // received by its service
			{"GET", "ServiceRequest/sr-b", "", 0, "SECRET-B"}, // another trust's
			{"GET", "ServiceRequest", "", 200, "SECRET-B"},
			{"GET", "$booking-outcomes", "", 403, ""},
		}},
		{devserver.StaffCallCentre, "call-centre", devserver.DemoCallCentre, []string{"openid", "fhirUser", "user/*.cruds"}, []check{
			{"GET", "Patient/pat-b", "", 200, ""},      // any patient who phones
			{"POST", "Appointment", proposal, 201, ""}, // books on their behalf
			{"GET", "$booking-outcomes", "", 403, ""},
		}},
		// user/*.cruds narrowed to the directory's reads.
		{devserver.StaffCommissioner, "commissioner", devserver.DemoCommissioner,
			[]string{"openid", "fhirUser", "user/HealthcareService.rs", "user/Organization.rs", "user/Location.rs"}, []check{
				{"GET", "$booking-outcomes", "", 200, ""}, // the reports
				{"GET", "HealthcareService/hs-prov", "", 200, ""},
				{"GET", "Patient/pat-a", "", 403, "Alice"}, // no patient's record
				{"GET", "ServiceRequest/sr-a", "", 403, ""},
				{"POST", "Appointment", proposal, 403, ""},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			tok := staffSignIn(t, staffConf(s, "openid", "fhirUser", "user/*.cruds"), tc.user)
			c := claimsOf(t, tok.AccessToken)
			if c["role"] != tc.role || c["org"] != tc.org || c["sub"] != "Practitioner/"+tc.user ||
				c["fhirUser"] != s.base+"/Practitioner/"+tc.user || c["client_id"] != devserver.ClientAPIReference {
				t.Errorf("claims %v", c)
			}
			if _, ok := c["patient"]; ok {
				t.Errorf("a staff token has a patient in context: %v", c)
			}
			if got := strings.Fields(c["scope"].(string)); !slices.Equal(got, tc.scopes) {
				t.Errorf("scopes %v, want %v", got, tc.scopes)
			}
			for _, ch := range tc.checks {
				r := s.do(request{method: ch.method, path: ch.path, body: ch.body, header: bearer(tok.AccessToken)})
				ok := r.status == ch.status || ch.status == 0 && r.status != 200 && r.status != 201
				if !ok {
					t.Errorf("%s %s: %d, want %d: %.300s", ch.method, ch.path, r.status, ch.status, r.body)
				}
				if ch.hasNot != "" && bytes.Contains(r.body, []byte(ch.hasNot)) {
					t.Errorf("%s %s: the answer shows %q", ch.method, ch.path, ch.hasNot)
				}
			}
		})
	}
}

// TestStaffSignInRefusals: the staff sign-in keeps to the flow's rules:
// PKCE is required of the public client, a redirect it did not register is
// refused, a code is bound to its verifier, a member of staff whose role
// may have none of the requested scopes cannot be chosen, the form needs
// its CSRF token, and a patient launch goes to the patient picker instead.
func TestStaffSignInRefusals(t *testing.T) {
	s := newSecureServer(t, app.Config{})

	t.Run("no PKCE", func(t *testing.T) {
		conf := staffConf(s, "user/*.rs")
		resp, err := staffBrowser.Get(conf.AuthCodeURL("st"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, _ := resp.Location()
		if back == nil || back.Host != "127.0.0.1:43210" || back.Query().Get("error") != "invalid_request" || back.Query().Get("code") != "" {
			t.Fatalf("without PKCE: %d to %v, want invalid_request back to the client", resp.StatusCode, back)
		}
	})

	t.Run("wrong redirect", func(t *testing.T) {
		for _, redirect := range []string{"https://evil.example/api/oauth2-redirect.html", "http://127.0.0.1:43210/elsewhere"} {
			conf := staffConf(s, "user/*.rs")
			conf.RedirectURL = redirect
			resp, err := staffBrowser.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if u, _ := resp.Location(); resp.StatusCode < 400 || u != nil {
				t.Errorf("redirect %s: %d to %v, want a refusal that sends the browser nowhere", redirect, resp.StatusCode, u)
			}
		}
	})

	t.Run("code needs its verifier", func(t *testing.T) {
		conf := staffConf(s, "user/*.rs")
		page := openStaffPage(t, conf, oauth2.GenerateVerifier())
		_, callback, _ := page.choose(t, devserver.StaffCallCentre)
		resp, err := staffBrowser.Get(callback.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, _ := resp.Location()
		if _, err := conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Fatal("a code was exchanged with another verifier")
		}
	})

	t.Run("role without the scopes", func(t *testing.T) {
		page := openStaffPage(t, staffConf(s, "user/Patient.rs"), oauth2.GenerateVerifier())
		if !strings.Contains(page.body, `value="`+devserver.StaffCommissioner+`" aria-describedby="hint-`+devserver.StaffCommissioner+`" disabled`) {
			t.Errorf("the commissioner is offered for user/Patient.rs: %s", page.body)
		}
		status, u, body := page.choose(t, devserver.StaffCommissioner)
		if status != http.StatusBadRequest || u != nil || !strings.Contains(body, `role="alert"`) {
			t.Errorf("choosing the commissioner: %d %v %s", status, u, body)
		}
		if status, u, _ := page.choose(t, "nobody"); status != http.StatusBadRequest || u != nil {
			t.Errorf("choosing an unknown user: %d %v", status, u)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		page := openStaffPage(t, staffConf(s, "user/*.rs"), oauth2.GenerateVerifier())
		page.form.Del("csrf")
		if status, u, _ := page.choose(t, devserver.StaffGP); status != http.StatusForbidden || u != nil {
			t.Errorf("without the CSRF token: %d %v", status, u)
		}
	})

	t.Run("patient launch", func(t *testing.T) {
		conf, verifier := staffConf(s, "openid", "launch/patient", "patient/*.rs"), oauth2.GenerateVerifier()
		page := openStaffPage(t, conf, verifier)
		if page.url.Path != "/auth/login" || !strings.Contains(page.body, "Choose a patient") {
			t.Fatalf("a patient launch went to %s", page.url.Path)
		}
		status, callback, body := patientChoice(t, page, "pat-a")
		if status != http.StatusFound {
			t.Fatalf("picking pat-a: %d %s", status, body)
		}
		resp, err := staffBrowser.Get(callback.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, _ := resp.Location()
		tok, err := conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		// Signed in through a client without a role of its own, the
		// patient has the patient role.
		if c := claimsOf(t, tok.AccessToken); c["role"] != "patient" || c["patient"] != "pat-a" {
			t.Errorf("patient token claims %v", c)
		}
	})
}

// patientChoice submits the patient picker's form for patient.
func patientChoice(t *testing.T, p staffPage, patient string) (int, *url.URL, string) {
	t.Helper()
	form := url.Values{}
	for k, v := range p.form {
		form[k] = v
	}
	form.Set("patient", patient)
	resp, err := staffBrowser.PostForm(p.url.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	u, _ := resp.Location()
	return resp.StatusCode, u, string(b)
}

// TestStaffSignInPage: the page is an accessible form (a fieldset with a
// legend, a label for every choice, a described hint), carries no script,
// and is served under the sign-in pages' tight policy.
func TestStaffSignInPage(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	conf := staffConf(s, "openid", "user/*.cruds")
	resp, err := staffBrowser.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login, _ := resp.Location()
	resp, err = staffBrowser.Get(login.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if csp := resp.Header.Get("Content-Security-Policy"); csp != "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'" {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", resp.Header)
	}
	for _, want := range []string{`<html lang="en">`, "<fieldset><legend>Sign in as</legend>", `<button type="submit">Sign in</button>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Errorf("the page has a script")
	}
	for _, u := range []string{devserver.StaffGP, devserver.StaffProvider, devserver.StaffCallCentre, devserver.StaffCommissioner} {
		for _, want := range []string{`id="user-` + u + `"`, `<label for="user-` + u + `">`, `id="hint-` + u + `"`} {
			if !strings.Contains(page, want) {
				t.Errorf("the page lacks %s", want)
			}
		}
	}
}
