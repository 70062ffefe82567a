package devserver

import (
	"bytes"
	"strings"
	"testing"
)

// TestSignInPagesStructure: the development server's sign-in pages have
// what their keyboard walk and axe check in the browser tests
// (test/portal/harness.mjs) rely on, for servers tested without a
// browser: a viewport, a main landmark with the h1, the choices in a
// fieldset with a legend, every radio labelled, a focus indicator in the
// inline style (the only style pickerCSP allows), and an error that says
// so in the title and as an alert.
func TestSignInPagesStructure(t *testing.T) {
	var picker, staff, staffErr bytes.Buffer
	if err := pickerPage.Execute(&picker, map[string]any{"ID": "r1", "CSRF": "c", "Client": "portal", "Scopes": []string{"openid"},
		"Patients": []PatientChoice{{ID: "p1", Name: "Sam Jones", NHSNumber: "9990000034", BirthDate: "1947-02-02"}}}); err != nil {
		t.Fatal(err)
	}
	users := []staffChoice{{StaffUser: DemoStaff()[0], Granted: []string{"user/*.cruds"}}, {StaffUser: DemoStaff()[1]}}
	for buf, problem := range map[*bytes.Buffer]string{&staff: "", &staffErr: "Choose who you are signing in as."} {
		if err := staffPage.Execute(buf, map[string]any{"ID": "r1", "CSRF": "c", "Client": "portal", "Scopes": "openid", "Staff": users, "Error": problem}); err != nil {
			t.Fatal(err)
		}
	}
	for name, page := range map[string]string{"picker": picker.String(), "staff": staff.String(), "staff error": staffErr.String()} {
		for _, want := range []string{`<meta name="viewport"`, `<main id="maincontent">`, `<fieldset><legend>Sign in as</legend>`, ":focus-visible{outline:3px solid",
			"</fieldset>", "</main>"} {
			if !strings.Contains(page, want) {
				t.Errorf("%s page lacks %q", name, want)
			}
		}
		if strings.Index(page, "<h1>") < strings.Index(page, `<main id="maincontent">`) {
			t.Errorf("%s page's h1 is outside its main landmark", name)
		}
	}
	if !strings.Contains(picker.String(), `<button type="submit" name="patient" value="p1">Sam Jones &middot; NHS number 9990000034 &middot; born 1947-02-02</button>`) {
		t.Errorf("the picker's button does not name the patient: %s", picker.String())
	}
	for _, u := range users {
		if !strings.Contains(staff.String(), `id="user-`+u.ID+`"`) || !strings.Contains(staff.String(), `<label for="user-`+u.ID+`">`) {
			t.Errorf("the staff page's radio for %s has no label", u.ID)
		}
	}
	if !strings.Contains(staff.String(), `value="`+users[1].ID+`" aria-describedby="hint-`+users[1].ID+`" disabled>`) {
		t.Errorf("a user who may have none of the scopes can be chosen")
	}
	if !strings.Contains(staffErr.String(), "<title>Error: ") || !strings.Contains(staffErr.String(), `role="alert">Choose who you are signing in as.</p>`) {
		t.Errorf("the staff page's error is not in its title and an alert")
	}
	if strings.Contains(staff.String(), "<title>Error: ") {
		t.Errorf("the staff page without an error says Error in its title")
	}
}
