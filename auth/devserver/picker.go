package devserver

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
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

var pickerPage = template.Must(template.New("picker").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Signpost development sign-in</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}button{display:block;width:100%;margin:.3em 0;padding:.6em;text-align:left}
.warn{background:#fdd;border:2px solid #c00;padding:.6em}</style></head>
<body><p class="warn">Development authorisation server: not for real patient data.</p>
<h1>Choose a patient</h1><p>The app <b>{{.Client}}</b> asks to act for the patient you choose, with scopes <code>{{.Scopes}}</code>.</p>
<form method="post"><input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="` + csrfField + `" value="{{.CSRF}}">
{{range .Patients}}<button type="submit" name="patient" value="{{.ID}}">{{.Name}}{{if .NHSNumber}} &middot; NHS number {{.NHSNumber}}{{end}}{{if .BirthDate}} &middot; born {{.BirthDate}}{{end}}</button>
{{else}}<p>There are no patients to choose from.</p>{{end}}
</form></body></html>
`))

func (h *pickerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", pickerCSP)
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	id := r.Form.Get("authRequestID")
	req, err := h.storage.AuthRequestByID(r.Context(), id)
	if err != nil {
		http.Error(w, "unknown or expired authorisation request; start again from the app", http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodPost && !h.storage.csrfTokenMatches(id, r.PostForm.Get(csrfField)) {
		http.Error(w, "the form's CSRF token is missing or does not belong to this authorisation request; start again from the app", http.StatusForbidden)
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
