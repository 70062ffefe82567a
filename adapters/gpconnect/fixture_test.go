package gpconnect_test

// The fixture the adapter's tests share: the real server (authorisation
// on, the SQLite store) with one gpconnect instance for a GP practice
// played by the GP Connect stand-in on 127.0.0.1.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/gpconnect"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/standin"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// The fixture's names.
const (
	instance   = "gp-a99001"
	practice   = devserver.DemoGPPractice // the practice's ODS code
	service    = "hs-gp"                  // the HealthcareService the practice stands for
	patientID  = "pat-1"                  // registered at the practice
	nhsNumber  = "9990000018"             // … by this NHS number
	visitorID  = "pat-2"                  // not registered there
	visitorNHS = "9990000026"
)

// The ASIDs: Signpost's, and the practice's.
const (
	consumerASID = "200000000359"
	practiceASID = "918999198738"
)

// fixture is a running server with one gpconnect instance, and the
// stand-in playing its practice.
type fixture struct {
	apptest.Client // T, App, and URL: the FHIR base
	GP             *gpconnect.Adapter
	Practice       *standin.Server
}

// bookDays is how many days of slots the stand-in's book has, and the
// instance's horizon: a few, to keep the tests quick.
const bookDays = 3

// newFixture starts the stand-in (a practice with bookDays of slots, the
// fixture's patient registered there) and the server with a gpconnect
// instance for it; edit, when not nil, changes the settings first (it is
// given the stand-in).
func newFixture(t testing.TB, edit func(*gpconnect.Settings, *standin.Server)) *fixture {
	t.Helper()
	now := time.Now()
	gp := standin.New(practice, practiceASID, time.Now, standin.NewBook(practice, now, bookDays+1))
	if err := gp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gp.Close() })
	gp.RegisterPatient(nhsNumber, stu3.HumanName{Family: "Jones", Given: []string{"Ann"}}, "female", "1980-05-17")
	set := gpconnect.Settings{
		ODSCode: practice, Endpoint: gp.URL(), ConsumerASID: consumerASID, PracticeASID: practiceASID,
		Services: []string{service}, PollInterval: adapters.Duration(time.Hour), HorizonDays: bookDays,
		Timeout: adapters.Duration(10 * time.Second), PollTimeout: adapters.Duration(10 * time.Second),
		RetryBase: adapters.Duration(20 * time.Millisecond), RetryMax: adapters.Duration(200 * time.Millisecond),
	}
	if edit != nil {
		edit(&set, gp)
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Config{Auth: true, Adapters: &adapters.File{Adapters: []adapters.Instance{{Name: instance, Kind: gpconnect.Kind,
		Principal: adapters.PrincipalConfig{Role: "provider", Organization: practice}, Settings: raw}}}}
	a, ts := apptest.New(t, cfg)
	ad, ok := a.Adapters.Get(instance)
	if !ok {
		t.Fatal("no adapter instance")
	}
	f := &fixture{Client: apptest.NewClient(t, a, ts), GP: ad.(*gpconnect.Adapter), Practice: gp}
	ods := func(code string) []any {
		return []any{map[string]any{"system": referral.ODSSystem, "value": code}}
	}
	apptest.Seed(t, a,
		map[string]any{"resourceType": "Organization", "id": "gp-a", "name": "Demo Practice", "identifier": ods(practice)},
		map[string]any{"resourceType": "Organization", "id": "nhs111", "name": "Demo 111", "identifier": ods(devserver.DemoCallCentre),
			"telecom": []any{map[string]any{"system": "phone", "value": "0300 111 1111"}}},
		map[string]any{"resourceType": "HealthcareService", "id": service, "name": "GP appointments", "providedBy": ref("Organization/gp-a")},
		map[string]any{"resourceType": "Patient", "id": patientID, "birthDate": "1980-05-17", "gender": "female",
			"name":       []any{map[string]any{"family": "Jones", "given": []any{"Ann"}}},
			"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": nhsNumber}}},
		map[string]any{"resourceType": "Patient", "id": visitorID, "birthDate": "1990-01-02", "gender": "male",
			"name":       []any{map[string]any{"family": "Visitor", "given": []any{"Tom"}}},
			"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": visitorNHS}}},
	)
	return f
}

// ref is a Reference to r.
func ref(r string) map[string]any { return map[string]any{"reference": r} }

// poll polls the practice now.
func (f *fixture) poll() error {
	f.T.Helper()
	return f.GP.PollNow(context.Background())
}

// appointment is a booking of Signpost Slot slot for the fixture's
// patient.
func appointment(slot map[string]any) map[string]any { return appointmentFor(slot, patientID) }

// appointmentFor is a booking of Signpost Slot slot for Patient/patient.
func appointmentFor(slot map[string]any, patient string) map[string]any {
	return map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot":  []any{ref("Slot/" + slot["id"].(string))},
		"start": slot["start"], "end": slot["end"],
		"description": "Review of blood pressure",
		"participant": []any{
			map[string]any{"actor": ref("Patient/" + patient), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}}
}

// slots searches Signpost's free Slots of the practice's service.
func (f *fixture) slots(token string) []map[string]any {
	f.T.Helper()
	var out []map[string]any
	path := "/Slot?status=free&_sort=start&_count=100&schedule.actor=HealthcareService/" + service
	for path != "" {
		st, b := f.Do(token, "GET", path, nil)
		if st != http.StatusOK {
			f.T.Fatalf("searching slots: %d %v", st, b)
		}
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			out = append(out, e.(map[string]any)["resource"].(map[string]any))
		}
		path = ""
		links, _ := b["link"].([]any)
		for _, l := range links {
			if m := l.(map[string]any); m["relation"] == "next" {
				path = strings.TrimPrefix(m["url"].(string), f.URL)
			}
		}
	}
	return out
}

// waitFor polls cond until it holds, failing after a deadline.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.T.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.T.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// identifier is the value of a resource's identifier of system, or "".
func identifier(res map[string]any, system string) string {
	ids, _ := res["identifier"].([]any)
	for _, id := range ids {
		m := id.(map[string]any)
		if m["system"] == system {
			v, _ := m["value"].(string)
			return v
		}
	}
	return ""
}
