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
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir/directory"
	"github.com/signpost-fhir/signpost/fhir/referral"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

func TestDemoLoadsOnceAndTopsUp(t *testing.T) {
	a, _ := app.NewTest(t, app.Config{})
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
	a, ts := app.NewTest(t, app.Config{Auth: true})
	ctx := context.Background()
	for range 2 {
		if err := loadDemo(ctx, a, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := loadDemo(ctx, a, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already loaded") || !strings.Contains(out.String(), " 0 free slots added") {
		t.Errorf("third start says %q, want already loaded with no slots added", out.String())
	}
	for _, want := range []string{
		"ODS " + auth.DemoGPPractice, "ODS " + auth.DemoProvider, "ODS " + auth.DemoCallCentre, "NHS number " + demoNHSNumber(1),
		"GP_TOKEN=$(signpost token --data " + shellQuote(a.Config.Data) + " --client gp-system --scope 'system/*.cruds')",
		"PATIENT_TOKEN=$(signpost token --data " + shellQuote(a.Config.Data) + " --client patient-app --patient demo-patient-001 --scope 'patient/*.cruds')",
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
		tok, err := auth.MintToken(a.Config.Data, p.opts)
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
		{"GP_TOKEN", "/Organization?identifier=" + odsSystem + "|" + auth.DemoGPPractice, 200, true},
		{"GP_TOKEN", "/HealthcareService?near=51.07|-1.79|10|km", 200, true},
		{"PROVIDER_TOKEN", "/HealthcareService?organization.identifier=" + odsSystem + "|" + auth.DemoProvider, 200, true},
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
}
