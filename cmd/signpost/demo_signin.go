package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// demoPersona is one way of signing in to the demo county.
type demoPersona struct {
	who, detail string
	env         string                 // shell variable the token command sets
	opts        devserver.TokenOptions // what signpost token is asked for
}

// demoPersonas are the demo's sign-ins: the GP practice, the provider and
// the commissioner match the development server's demo clients (their ODS
// codes are the clients' organisations), the call centre books for
// anyone, and the patient is the first demo patient.
func demoPersonas() []demoPersona {
	p := demoPatient(1, "demo-gp-01", 0, 0, 0)
	name := p["name"].([]any)[0].(map[string]any)
	return []demoPersona{
		{who: "GP (referrer)", env: "GP_TOKEN",
			detail: fmt.Sprintf("Organization/demo-gp-01 %s, ODS %s (client %s)", demoPracticeName(0), devserver.DemoGPPractice, devserver.ClientGPSystem),
			opts:   devserver.TokenOptions{Client: devserver.ClientGPSystem, Scope: "system/*.cruds"}},
		{who: "provider", env: "PROVIDER_TOKEN",
			detail: fmt.Sprintf("Organization/%s %s, ODS %s, services demo-hs-kingsbridge-* (client %s)", demoTrusts[0].id, demoTrusts[0].name, devserver.DemoProvider, devserver.ClientProvider),
			opts:   devserver.TokenOptions{Client: devserver.ClientProvider, Scope: "system/*.cruds"}},
		{who: "call centre", env: "CALL_CENTRE_TOKEN",
			detail: fmt.Sprintf("ODS %s, books on any patient's behalf (client %s)", devserver.DemoCallCentre, devserver.ClientCallCentre),
			opts:   devserver.TokenOptions{Client: devserver.ClientCallCentre, Scope: "user/*.cruds"}},
		{who: "commissioner", env: "COMMISSIONER_TOKEN",
			detail: fmt.Sprintf("%s, ODS %s, reports on the services it commissions, e.g. $booking-outcomes (client %s)",
				demoCommissioner(), devserver.DemoCommissioner, devserver.ClientCommissioner),
			opts: devserver.TokenOptions{Client: devserver.ClientCommissioner, Scope: commissionerScope}},
		{who: "patient app", env: "PATIENT_TOKEN",
			detail: fmt.Sprintf("Patient/demo-patient-001 %s %s, NHS number %s, born %s (client %s)",
				name["given"].([]any)[0], name["family"], demoNHSNumber(1), p["birthDate"], devserver.ClientPatientApp),
			opts: devserver.TokenOptions{Client: devserver.ClientPatientApp, Patient: "demo-patient-001", Scope: "patient/*.cruds"}},
	}
}

// commissionerScope is what the commissioner persona asks for: the
// directory; the reports need its role, not a scope on referrals.
const commissionerScope = "user/HealthcareService.rs"

// demoCommissionerOrg is the demo commissioner whose ODS code is the
// commissioner demo client's.
func demoCommissionerOrg() (demoPlace, bool) {
	for _, icb := range demoICBs {
		if icb.ods == devserver.DemoCommissioner {
			return icb, true
		}
	}
	return demoPlace{}, false
}

// demoCommissioner names it for the sign-in text.
func demoCommissioner() string {
	if icb, ok := demoCommissionerOrg(); ok {
		return "Organization/" + icb.id + " " + icb.name
	}
	return "the Organization with ODS code " + devserver.DemoCommissioner
}

// tokenCommand is the signpost token command line that mints o's token
// from the development server whose state is in data.
func tokenCommand(data string, o devserver.TokenOptions) string {
	args := []string{"signpost", "token", "--data", shellQuote(data), "--client", o.Client}
	if o.Patient != "" {
		args = append(args, "--patient", o.Patient)
	}
	return strings.Join(append(args, "--scope", shellQuote(o.Scope)), " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printDemoSignIns tells the operator how to sign in as each demo persona,
// with ready-to-paste token commands (after the development server's
// banner). With authorisation off, or an external issuer, it says so.
func printDemoSignIns(out io.Writer, a *app.App) {
	switch {
	case a.Config.Open:
		fmt.Fprintln(out, "demo sign-ins: none needed, authorisation is OFF (--open)")
		return
	case a.Auth == nil:
		fmt.Fprintf(out, "demo sign-ins: tokens come from %s; the demo's organisations are GP practice ODS %s, provider ODS %s and commissioner ODS %s\n",
			a.Config.Issuer, devserver.DemoGPPractice, devserver.DemoProvider, devserver.DemoCommissioner)
		return
	}
	fmt.Fprintln(out, "demo sign-ins (tokens from the development server; paste into a shell):")
	for _, p := range demoPersonas() {
		fmt.Fprintf(out, "  %-14s %s\n", p.who, p.detail)
		fmt.Fprintf(out, "  %-14s %s=$(%s)\n", "", p.env, tokenCommand(a.Config.Data, p.opts))
	}
	fmt.Fprintf(out, "  %-14s curl -H \"Authorization: Bearer $GP_TOKEN\" '%s/HealthcareService?near=51.07|-1.79|10|km'\n", "then:", a.Config.BaseURL)
	fmt.Fprintln(out, "  (from a source checkout, \"go run ./cmd/signpost token …\" does the same as \"signpost token …\")")
	if a.Config.Portal {
		root := strings.TrimSuffix(a.Config.BaseURL, "/fhir")
		fmt.Fprintf(out, "portal: %s/ in a browser (patients: \"Sign in\" and pick a demo patient; staff: \"Sign in as staff\"); API reference: %s/api/\n", root, root)
	}
}
