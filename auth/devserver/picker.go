package devserver

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// pickerHandler is the development server's login page: instead of a
// password, the user picks the patient they are. GET shows the list; POST
// records the choice and returns the browser to the authorisation callback.
//
// The POST must carry the auth request's CSRF token (csrfField), which
// only the page shown for that request holds: another site cannot read it,
// so it cannot submit the form in the user's browser (403 without it). The
// page also refuses to be framed (clickjacking), and New puts the
// handler behind http.CrossOriginProtection, which refuses cross-origin
// POSTs from browsers before the token is even looked at. The server sets
// no cookies, so there is no session to ride.
type pickerHandler struct {
	storage  *devStorage
	patients PatientDirectory
	callback string // the authorisation callback URL, up to the request id
}

// csrfField names the picker form's hidden field with the auth request's
// CSRF token.
const csrfField = "csrf"

// pickerCSP lets the page use its inline style and nothing else, and keeps
// it out of frames.
const pickerCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

// pickerPage lists the patients as one group of submit buttons, each
// named by the patient's name, NHS number and birth date. Its inline
// style (pickerCSP allows that and nothing else) gives every control a
// focus indicator that shows, and the page works at 375 px wide.
var pickerPage = template.Must(template.New("picker").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Choose a patient: Signpost development sign-in</title>
<style>` + devPageStyle + `
.patients{display:flex;flex-direction:column;gap:.4em}.patients button{display:block;width:100%;padding:.6em;text-align:left}</style></head>
<body><main id="maincontent"><p class="warn">Development authorisation server: not for real patient data.</p>
<h1>Choose a patient</h1><p>The app <b>{{.Client}}</b> asks to act for the patient you choose, with scopes <code>{{.Scopes}}</code>.</p>
<form method="post"><input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="` + csrfField + `" value="{{.CSRF}}">
<fieldset><legend>Sign in as</legend><div class="patients">
{{range .Patients}}<button type="submit" name="patient" value="{{.ID}}">{{.Name}}{{if .NHSNumber}} &middot; NHS number {{.NHSNumber}}{{end}}{{if .BirthDate}} &middot; born {{.BirthDate}}{{end}}</button>
{{else}}<p>There are no patients to choose from.</p>{{end}}
</div></fieldset></form></main></body></html>
`))

// devPageStyle is the style the development server's sign-in pages share:
// readable at 375 px, and a focus indicator on every control (a dark
// outline with a yellow ring) that shows on any background.
const devPageStyle = `body{font-family:sans-serif;max-width:42em;margin:2em auto;padding:0 1em;line-height:1.4;color:#212b32}
.warn{background:#fdd;border:2px solid #c00;padding:.6em}
fieldset{border:1px solid #666;padding:.6em 1em;margin:1em 0}legend{font-weight:bold;padding:0 .3em}
button{font-size:1em;cursor:pointer}
:focus{outline:3px solid #212b32;outline-offset:2px;box-shadow:0 0 0 6px #ffeb3b}
:focus:not(:focus-visible){outline:none;box-shadow:none}
:focus-visible{outline:3px solid #212b32;outline-offset:2px;box-shadow:0 0 0 6px #ffeb3b}`

func (h *pickerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, req, ok := h.storage.signInRequest(w, r)
	if !ok {
		return
	}
	patients, err := h.patients.Patients(r.Context())
	if err != nil {
		http.Error(w, "cannot list patients", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pickerPage.Execute(w, map[string]any{
			"ID": id, "CSRF": req.(*authRequest).csrf, "Client": req.GetClientID(), "Scopes": req.GetScopes(), "Patients": patients,
		})
		return
	}
	pid := r.PostForm.Get("patient")
	i := slices.IndexFunc(patients, func(p PatientChoice) bool { return p.ID == pid })
	if i < 0 {
		http.Error(w, "choose one of the patients listed", http.StatusBadRequest)
		return
	}
	if err := h.storage.completeAuthRequest(id, patients[i]); err != nil {
		http.Error(w, "unknown or expired authorisation request; start again from the app", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, h.callback+url.QueryEscape(id), http.StatusFound)
}

// signInRequest starts serving a sign-in page (the patient picker, the
// staff sign-in): it sets the page's security headers, accepts GET and
// POST only, and finds the authorisation request the form names, checking
// a POST's CSRF token. When it returns false it has answered.
func (s *devStorage) signInRequest(w http.ResponseWriter, r *http.Request) (id string, req op.AuthRequest, ok bool) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", pickerCSP)
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return "", nil, false
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return "", nil, false
	}
	id = r.Form.Get("authRequestID")
	req, err := s.AuthRequestByID(r.Context(), id)
	if err != nil {
		http.Error(w, "unknown or expired authorisation request; start again from the app", http.StatusBadRequest)
		return "", nil, false
	}
	if r.Method == http.MethodPost && !s.csrfTokenMatches(id, r.PostForm.Get(csrfField)) {
		http.Error(w, "the form's CSRF token is missing or does not belong to this authorisation request; start again from the app", http.StatusForbidden)
		return "", nil, false
	}
	return id, req, true
}
