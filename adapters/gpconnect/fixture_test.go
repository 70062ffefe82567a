package gpconnect_test

// The fixture the adapter's tests share: the real server (authorisation
// on, the SQLite store) with one gpconnect instance for a GP practice
// played by the GP Connect stand-in on 127.0.0.1.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/gpconnect"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// The fixture's names.
const (
	instance  = "gp-a99001"
	practice  = devserver.DemoGPPractice // the practice's ODS code
	service   = "hs-gp"                  // the HealthcareService the practice stands for
	patientID = "pat-1"
	nhsNumber = "9990000018"
)

// fixture is a running server with one gpconnect instance.
type fixture struct {
	t   testing.TB
	App *app.App
	URL string // the FHIR base
	GP  *gpconnect.Adapter
}

// newFixture starts the server with a gpconnect instance for the practice
// at endpoint; edit, when not nil, changes the settings first.
func newFixture(t testing.TB, endpoint string, edit func(*gpconnect.Settings)) *fixture {
	t.Helper()
	set := gpconnect.Settings{
		ODSCode: practice, Endpoint: endpoint, ConsumerASID: "200000000359", PracticeASID: "918999198738",
		Services: []string{service}, PollInterval: adapters.Duration(time.Hour),
		Timeout: adapters.Duration(10 * time.Second), PollTimeout: adapters.Duration(10 * time.Second),
		RetryBase: adapters.Duration(20 * time.Millisecond), RetryMax: adapters.Duration(200 * time.Millisecond),
	}
	if edit != nil {
		edit(&set)
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
	f := &fixture{t: t, App: a, URL: ts.URL + "/fhir", GP: ad.(*gpconnect.Adapter)}
	ods := func(code string) []any {
		return []any{map[string]any{"system": referral.ODSSystem, "value": code}}
	}
	apptest.Seed(t, a,
		map[string]any{"resourceType": "Organization", "id": "gp-a", "name": "Demo Practice", "identifier": ods(practice)},
		map[string]any{"resourceType": "HealthcareService", "id": service, "name": "GP appointments", "providedBy": ref("Organization/gp-a")},
		map[string]any{"resourceType": "Patient", "id": patientID, "birthDate": "1980-05-17",
			"name":       []any{map[string]any{"family": "Jones", "given": []any{"Ann"}}},
			"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": nhsNumber}}},
	)
	return f
}

// ref is a Reference to r.
func ref(r string) map[string]any { return map[string]any{"reference": r} }

// token mints a development-server token for client with scope
// system/*.cruds.
func (f *fixture) token(client string) string {
	f.t.Helper()
	tok, err := devserver.MintToken(f.App.Config.Data, devserver.TokenOptions{Scope: "system/*.cruds", Client: client})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// do makes a FHIR request and returns the status and the JSON answer.
func (f *fixture) do(token, method, path string, body any) (int, map[string]any) {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.URL+path, r)
	req.Header.Set("Content-Type", "application/fhir+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// read returns the current JSON of typ/id, straight from the store.
func (f *fixture) read(typ, id string) map[string]any {
	f.t.Helper()
	res, err := f.App.Store.Read(context.Background(), typ, id)
	if err != nil {
		f.t.Fatalf("read %s/%s: %v", typ, id, err)
	}
	var out map[string]any
	if err := json.Unmarshal(res.JSON, &out); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// poll polls the practice now.
func (f *fixture) poll() error {
	f.t.Helper()
	return f.GP.PollNow(context.Background())
}

// appointment is a booking of Signpost Slot slot for the patient.
func appointment(slot map[string]any) map[string]any {
	return map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot":  []any{ref("Slot/" + slot["id"].(string))},
		"start": slot["start"], "end": slot["end"],
		"description": "Review of blood pressure",
		"participant": []any{
			map[string]any{"actor": ref("Patient/" + patientID), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}}
}

// slots searches Signpost's free Slots of the practice's service.
func (f *fixture) slots(token string) []map[string]any {
	f.t.Helper()
	st, b := f.do(token, "GET", "/Slot?status=free&_sort=start&_count=100&schedule.actor=HealthcareService/"+service, nil)
	if st != http.StatusOK {
		f.t.Fatalf("searching slots: %d %v", st, b)
	}
	var out []map[string]any
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}
