package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

func TestDemoLoadsOnceAndTopsUp(t *testing.T) {
	a, _ := apptest.New(t, app.Config{})
	ctx := context.Background()
	var out bytes.Buffer
	if err := loadDemo(ctx, a, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "demo county loaded") {
		t.Errorf("first start says %q", out.String())
	}
	out.Reset()
	if err := loadDemo(ctx, a, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already loaded") || !strings.Contains(out.String(), " 0 free slots added") {
		t.Errorf("second start says %q, want already loaded with no slots added", out.String())
	}
	q, err := a.Search.Parse("HealthcareService", map[string][]string{"_count": {"200"}}, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := a.Store.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AddDerived(ctx, a.Store, page.Resources); err != nil { // their waiting times, as served
		t.Fatal(err)
	}
	waits := 0
	for _, r := range page.Resources {
		if _, ok := directory.ReadWait(r.JSON, time.Now()); ok {
			waits++
		}
	}
	if len(page.Resources) < 25 || waits < 20 {
		t.Errorf("%d services, %d with a waiting time; want at least 25 and 20", len(page.Resources), waits)
	}
	for n := 1; n <= 80; n++ {
		if err := referral.CheckNHSNumber(demoNHSNumber(n)); err != nil || !strings.HasPrefix(demoNHSNumber(n), "999") {
			t.Errorf("demo NHS number %d = %s: %v", n, demoNHSNumber(n), err)
		}
	}
}

// TestDemoSignIns: with authorisation on, the demo loads (twice, the second
// time writing nothing), prints a sign-in per persona with its token
// command, and each persona's token reaches what the persona should.
func TestDemoSignIns(t *testing.T) {
	a, ts := apptest.New(t, app.Config{Auth: true})
	ctx := context.Background()
	for range 2 {
		if err := loadDemo(ctx, a, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	a.Config.Portal = true // as serve runs it: the sign-ins name the portal
	if err := loadDemo(ctx, a, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already loaded") || !strings.Contains(out.String(), " 0 free slots added") {
		t.Errorf("third start says %q, want already loaded with no slots added", out.String())
	}
	for _, want := range []string{
		"ODS " + devserver.DemoGPPractice, "ODS " + devserver.DemoProvider, "ODS " + devserver.DemoCallCentre, "NHS number " + demoNHSNumber(1),
		demoCommissioner() + ", ODS " + devserver.DemoCommissioner,
		"COMMISSIONER_TOKEN=$(signpost token --data " + shellQuote(a.Config.Data) + " --client commissioner --scope user/HealthcareService.rs)",
		"GP_TOKEN=$(signpost token --data " + shellQuote(a.Config.Data) + " --client gp-system --scope 'system/*.cruds')",
		"PATIENT_TOKEN=$(signpost token --data " + shellQuote(a.Config.Data) + " --client patient-app --patient demo-patient-001 --scope 'patient/*.cruds')",
		"portal: " + strings.TrimSuffix(a.Config.BaseURL, "/fhir") + "/ in a browser", "API reference: " + strings.TrimSuffix(a.Config.BaseURL, "/fhir") + "/api/",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo sign-ins do not say %q:\n%s", want, out.String())
		}
	}
	get := func(tok, path string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", ts.URL+"/fhir"+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	tokens := map[string]string{}
	for _, p := range demoPersonas() {
		tok, err := devserver.MintToken(a.Config.Data, p.opts)
		if err != nil {
			t.Fatalf("%s: %v", p.who, err)
		}
		tokens[p.env] = tok
	}
	for _, tc := range []struct {
		env, path string
		want      int
		entries   bool
	}{
		{"GP_TOKEN", "/Organization?identifier=" + odsSystem + "|" + devserver.DemoGPPractice, 200, true},
		{"GP_TOKEN", "/HealthcareService?near=51.07|-1.79|10|km", 200, true},
		{"PROVIDER_TOKEN", "/HealthcareService?organization.identifier=" + odsSystem + "|" + devserver.DemoProvider, 200, true},
		{"CALL_CENTRE_TOKEN", "/Patient?identifier=" + referral.NHSNumberSystem + "|" + demoNHSNumber(1), 200, true},
		{"PATIENT_TOKEN", "/Patient/demo-patient-001", 200, false},
		{"PATIENT_TOKEN", "/Patient/demo-patient-002", 404, false},
	} {
		status, body := get(tokens[tc.env], tc.path)
		if status != tc.want {
			t.Errorf("%s GET %s: %d, want %d", tc.env, tc.path, status, tc.want)
			continue
		}
		if entries, _ := body["entry"].([]any); tc.entries && len(entries) == 0 {
			t.Errorf("%s GET %s: no entries", tc.env, tc.path)
		}
	}
	// The commissioner runs the reports on the services its ICB
	// commissions; the GP cannot.
	icb, ok := demoCommissionerOrg()
	if !ok {
		t.Fatalf("no demo commissioner has the commissioner client's ODS code %s", devserver.DemoCommissioner)
	}
	status, body := get(tokens["COMMISSIONER_TOKEN"], "/$waiting-times")
	rows, _ := body["parameter"].([]any)
	if status != 200 || len(rows) == 0 {
		t.Errorf("COMMISSIONER_TOKEN GET /$waiting-times: %d with %d rows, want 200 with the services it commissions", status, len(rows))
	}
	for _, r := range rows {
		svc, _ := r.(map[string]any)["part"].([]any)[0].(map[string]any)["valueReference"].(map[string]any)["reference"].(string)
		_, id, _ := strings.Cut(svc, "/")
		res, err := a.Store.Read(ctx, "HealthcareService", id)
		if err != nil || !strings.Contains(string(res.JSON), `"Organization/`+icb.id+`"`) {
			t.Errorf("COMMISSIONER_TOKEN's $waiting-times shows %s, which %s does not commission", svc, icb.id)
		}
	}
	if status, _ := get(tokens["GP_TOKEN"], "/$waiting-times"); status != 403 {
		t.Errorf("GP_TOKEN GET /$waiting-times: %d, want 403", status)
	}
}
