package devserver

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// staffHandler is the development server's staff sign-in page, at /staff:
// instead of a password, the user picks which demo member of staff they
// are. GET shows the form; POST records the choice and returns the browser
// to the authorisation callback. It guards the form as the patient picker
// does (pickerHandler): the auth request's CSRF token, no framing, and
// cross-origin POSTs refused before it (New).
//
// Authorisation requests asking for user/ scopes (and no launch/patient)
// come here from /authorize (the client's login URL); a member of staff
// for whom none of the requested scopes is left once narrowed to their
// role (narrowScopes) is shown but cannot be chosen.
type staffHandler struct {
	storage  *devStorage
	staff    []StaffUser
	callback string // the authorisation callback URL, up to the request id
}

// staffChoice is one member of staff as the page shows them.
type staffChoice struct {
	StaffUser
	Granted []string // what they would be granted; empty: cannot sign in here
}

var staffPage = template.Must(template.New("staff").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .Error}}Error: {{end}}Staff sign-in: Signpost development sign-in</title>
<style>` + devPageStyle + `
.choice{display:flex;gap:.6em;align-items:flex-start;margin:.6em 0}.choice input{margin-top:.3em;width:1.2em;height:1.2em;flex:none}
.hint{display:block;color:#4c6272;font-size:.9em}.off label{color:#4c6272}
button{padding:.6em 1.4em}
.error{border-left:5px solid #c00;padding:.3em .8em}</style></head>
<body><main id="maincontent"><p class="warn">Development authorisation server: demo staff only, not for real patient data.</p>
<h1>Staff sign-in</h1>
<p>The app <b>{{.Client}}</b> asks to act for you with scopes <code>{{.Scopes}}</code>. Each user gets only what their role may have.</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post"><input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="` + csrfField + `" value="{{.CSRF}}">
<fieldset><legend>Sign in as</legend>
{{range .Staff}}<div class="choice{{if not .Granted}} off{{end}}"><input type="radio" name="user" id="user-{{.ID}}" value="{{.ID}}" aria-describedby="hint-{{.ID}}"{{if not .Granted}} disabled{{end}}>
<label for="user-{{.ID}}">{{.Name}}, {{.Job}}<span class="hint" id="hint-{{.ID}}">organisation {{.Organization}} &middot; role {{.Role}} &middot; {{if .Granted}}would be granted <code>{{range $i, $s := .Granted}}{{if $i}} {{end}}{{$s}}{{end}}</code>{{else}}none of the requested scopes is allowed for this role{{end}}</span></label></div>
{{end}}</fieldset>
<button type="submit">Sign in</button>
</form></main></body></html>
`))

func (h *staffHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, req, ok := h.storage.signInRequest(w, r)
	if !ok {
		return
	}
	choices := make([]staffChoice, len(h.staff))
	for i, u := range h.staff {
		granted, ok := narrowScopes(u, req.GetScopes())
		if !ok {
			granted = nil
		}
		choices[i] = staffChoice{StaffUser: u, Granted: granted}
	}
	show := func(status int, problem string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_ = staffPage.Execute(w, map[string]any{
			"ID": id, "CSRF": req.(*authRequest).csrf, "Client": req.GetClientID(), "Scopes": strings.Join(req.GetScopes(), " "),
			"Staff": choices, "Error": problem,
		})
	}
	if r.Method == http.MethodGet {
		show(http.StatusOK, "")
		return
	}
	uid := r.PostForm.Get("user")
	i := slices.IndexFunc(choices, func(c staffChoice) bool { return c.ID == uid })
	switch {
	case uid == "":
		show(http.StatusBadRequest, "Choose who you are signing in as.")
		return
	case i < 0:
		show(http.StatusBadRequest, fmt.Sprintf("There is no demo user %q: choose one of those listed.", uid))
		return
	case len(choices[i].Granted) == 0:
		show(http.StatusBadRequest, choices[i].Name+" may have none of the scopes the app asks for: choose another user.")
		return
	}
	if err := h.storage.completeStaffRequest(id, choices[i].StaffUser, choices[i].Granted); err != nil {
		http.Error(w, "unknown or expired authorisation request; start again from the app", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, h.callback+url.QueryEscape(id), http.StatusFound)
}
