package main

import (
	"fmt"
	"os"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// token prints an access token from the embedded development authorisation
// server whose state is in --data (serve must have run there once), for
// scripts, tests and the README walkthrough:
//
//	signpost token --scope 'patient/*.rs' --patient 123 --data ./data
func token(args []string) error {
	fs := newFlags("token")
	var data string
	var opts devserver.TokenOptions
	var role string
	fs.StringVar(&data, "data", "./data", "data directory the server runs on")
	fs.StringVar(&opts.Scope, "scope", "", "space-separated scopes, e.g. 'system/*.rs' or 'patient/Appointment.cruds' (default the client's)")
	fs.StringVar(&opts.Patient, "patient", "", "Patient id to put the token in that patient's context")
	fs.StringVar(&opts.Org, "org", "", "organisation ODS code (default the client's)")
	fs.StringVar(&role, "role", "", "role: referrer, provider, call-centre, auditor, commissioner, operator or patient (default the client's)")
	fs.StringVar(&opts.Client, "client", "", "client_id (default patient-app with --patient, else gp-system)")
	fs.DurationVar(&opts.TTL, "ttl", 0, "lifetime (default the server's, one hour; at most 24h)")
	if err := parse(fs, args); err != nil {
		return err
	}
	opts.Role = auth.Role(role)
	opts.TTL = opts.TTL.Round(time.Second)
	tok, err := devserver.MintToken(data, opts)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(os.Stdout, tok)
	return err
}
