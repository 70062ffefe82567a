package devserver

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// hiddenInput matches the picker form's hidden fields.
var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// pickerFlow is one authorisation request of the patient app, stopped at
// the patient picker.
type pickerFlow struct {
	conf     *oauth2.Config
	verifier string
	login    *url.URL   // the picker's URL
	form     url.Values // the hidden fields of the picker's form
}

// startPickerFlow sends the browser to /authorize and loads the picker
// page it is redirected to.
func startPickerFlow(t *testing.T, f *devFixture, state string) *pickerFlow {
	t.Helper()
	fl := &pickerFlow{
		conf: &oauth2.Config{
			ClientID:    ClientPatientApp,
			Endpoint:    oauth2.Endpoint{AuthURL: f.dev.AuthorizationEndpoint(), TokenURL: f.dev.TokenEndpoint(), AuthStyle: oauth2.AuthStyleInParams},
			RedirectURL: "http://127.0.0.1:43210/callback",
			Scopes:      []string{"openid", "launch/patient", "patient/Appointment.rs"},
		},
		verifier: oauth2.GenerateVerifier(),
	}
	resp, err := browser.Get(fl.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(fl.verifier)))
	if err != nil {
		t.Fatal(err)
	}
	fl.login = location(t, resp)
	resp, err = browser.Get(fl.login.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	noUnsafeCookies(t, resp)
	for k, want := range map[string]string{
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": pickerCSP,
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("picker page %s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(pickerCSP, "frame-ancestors 'none'") {
		t.Errorf("picker CSP %q does not forbid framing", pickerCSP)
	}
	fl.form = url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		fl.form.Set(m[1], m[2])
	}
	if fl.form.Get("authRequestID") == "" || fl.form.Get(csrfField) == "" {
		t.Fatalf("picker form lacks the auth request id or the CSRF token: %s", page)
	}
	return fl
}

// noUnsafeCookies fails if resp sets a cookie without SameSite.
func noUnsafeCookies(t *testing.T, resp *http.Response) {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.SameSite != http.SameSiteStrictMode && c.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s sets cookie %q without SameSite=Strict or Lax", resp.Request.URL.Path, c.Name)
		}
	}
}

// pick submits the picker form with form and header; it returns the status
// and, for a redirect, where to.
func pick(t *testing.T, fl *pickerFlow, form url.Values, header http.Header) (int, *url.URL) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fl.login.String(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	noUnsafeCookies(t, resp)
	u, _ := resp.Location()
	return resp.StatusCode, u
}

// completed follows the authorisation callback of fl's request, as the
// browser would after the picker, and returns the code the app receives
// ("" when the authorisation was not completed).
func completed(t *testing.T, f *devFixture, fl *pickerFlow) string {
	t.Helper()
	callback := f.dev.AuthorizationEndpoint() + "/callback?id=" + url.QueryEscape(fl.form.Get("authRequestID"))
	resp, err := browser.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	back := location(t, resp)
	if back.Host != "127.0.0.1:43210" {
		t.Fatalf("callback redirected to %s, want the app", back)
	}
	return back.Query().Get("code")
}

// TestPickerCSRF submits the patient picker's form through the real HTTP
// stack: without the auth request's CSRF token, with a wrong one, with the
// token of another auth request, or from another site, the POST is refused
// with 403 and the authorisation is not completed (the callback gives the
// app no code); the page's own form completes it.
func TestPickerCSRF(t *testing.T) {
	f := newDevFixture(t)
	other := startPickerFlow(t, f, "other")
	tests := []struct {
		name   string
		form   func(fl *pickerFlow) url.Values
		header http.Header
		want   int
	}{
		{
			name: "no token",
			form: func(fl *pickerFlow) url.Values {
				return url.Values{"authRequestID": {fl.form.Get("authRequestID")}, "patient": {"pat-1"}}
			},
			want: http.StatusForbidden,
		},
		{
			name: "empty token",
			form: func(fl *pickerFlow) url.Values { return with(fl.form, csrfField, "") },
			want: http.StatusForbidden,
		},
		{
			name: "wrong token",
			form: func(fl *pickerFlow) url.Values { return with(fl.form, csrfField, strings.Repeat("0", 32)) },
			want: http.StatusForbidden,
		},
		{
			name: "token of another auth request",
			form: func(fl *pickerFlow) url.Values { return with(fl.form, csrfField, other.form.Get(csrfField)) },
			want: http.StatusForbidden,
		},
		{
			name: "token in the query string only",
			form: func(fl *pickerFlow) url.Values {
				fl.login = withQuery(fl.login, csrfField, fl.form.Get(csrfField))
				return with(fl.form, csrfField, "")
			},
			want: http.StatusForbidden,
		},
		{
			name:   "right token, cross-site browser POST",
			form:   func(fl *pickerFlow) url.Values { return fl.form },
			header: http.Header{"Sec-Fetch-Site": {"cross-site"}},
			want:   http.StatusForbidden,
		},
		{
			name:   "right token, Origin of another site",
			form:   func(fl *pickerFlow) url.Values { return fl.form },
			header: http.Header{"Origin": {"https://evil.example"}},
			want:   http.StatusForbidden,
		},
		{
			name: "the page's own form",
			form: func(fl *pickerFlow) url.Values { return fl.form },
			want: http.StatusFound,
		},
		{
			name:   "the page's own form, same-origin browser POST",
			form:   func(fl *pickerFlow) url.Values { return fl.form },
			header: http.Header{"Sec-Fetch-Site": {"same-origin"}},
			want:   http.StatusFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := startPickerFlow(t, f, "s")
			form := tt.form(fl)
			if form.Get("patient") == "" {
				form = with(form, "patient", "pat-1")
			}
			got, _ := pick(t, fl, form, tt.header)
			if got != tt.want {
				t.Fatalf("POST picker: status %d, want %d", got, tt.want)
			}
			code := completed(t, f, fl)
			if tt.want != http.StatusFound {
				if code != "" {
					t.Fatalf("a refused POST completed the authorisation: the app got a code")
				}
				return
			}
			tok, err := fl.conf.Exchange(context.Background(), code, oauth2.VerifierOption(fl.verifier))
			if err != nil {
				t.Fatalf("exchange after picking: %v", err)
			}
			if p := tok.Extra("patient"); p != "pat-1" {
				t.Errorf("token response patient = %v, want pat-1", p)
			}
		})
	}
	// The refusals above did not touch the other request, which its own
	// form still completes.
	if got, _ := pick(t, other, with(other.form, "patient", "pat-2"), nil); got != http.StatusFound {
		t.Fatalf("the other request's own form: status %d, want 302", got)
	}
	if completed(t, f, other) == "" {
		t.Errorf("the other request's own form did not complete it")
	}
}

// with returns a copy of v with key set to value.
func with(v url.Values, key, value string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	out.Set(key, value)
	return out
}

// withQuery returns u with key=value added to its query.
func withQuery(u *url.URL, key, value string) *url.URL {
	cp := *u
	q := cp.Query()
	q.Set(key, value)
	cp.RawQuery = q.Encode()
	return &cp
}
