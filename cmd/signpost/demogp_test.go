package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/gpconnect"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// TestDemoGP: serve --demo's GP practice: the stand-in's free slots
// become bookable Slots of the practice's HealthcareService in Signpost,
// and the call-centre demo client books one for a demo patient of the
// practice, which the stand-in books first (the appointment keeps its id).
func TestDemoGP(t *testing.T) {
	out := &lockedBuffer{}
	cfg := app.Config{Auth: true}
	d, err := startDemoGP(&cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	a, ts := apptest.New(t, cfg)
	ctx := context.Background()
	if err := loadDemo(ctx, a, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := d.run(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"demo GP practice (docs/gpconnect.md)", "demo GP: polled the practice"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo printed\n%s\nwithout %q", out.String(), want)
		}
	}
	tok, err := devserver.MintToken(a.Config.Data, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientCallCentre})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, body any) (int, map[string]any) {
		var r *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		} else {
			r = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, ts.URL+"/fhir"+path, r)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	st, b := do("GET", "/Slot?status=free&_sort=start&schedule.actor=HealthcareService/"+demoGPService, nil)
	entries, _ := b["entry"].([]any)
	if st != http.StatusOK || len(entries) == 0 {
		t.Fatalf("the practice's free slots in Signpost: %d %v", st, b)
	}
	slot := entries[0].(map[string]any)["resource"].(map[string]any)
	st, appt := do("POST", "/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot": []any{map[string]any{"reference": "Slot/" + slot["id"].(string)}}, "start": slot["start"], "end": slot["end"],
		"description": "Sore throat for a week",
		"participant": []any{
			map[string]any{"actor": map[string]any{"reference": "Patient/demo-patient-001"}, "status": "accepted"},
			map[string]any{"actor": map[string]any{"reference": "HealthcareService/" + demoGPService}, "status": "accepted"}}})
	if st != http.StatusCreated || appt["status"] != "booked" {
		t.Fatalf("booking the demo practice's slot: %d %v", st, appt)
	}
	var practiceID string
	for _, id := range appt["identifier"].([]any) {
		if m := id.(map[string]any); m["system"] == gpconnect.AppointmentSystem {
			practiceID = strings.TrimPrefix(m["value"].(string), devserver.DemoGPPractice+"/")
		}
	}
	if pa, ok := d.gp.Appointment(practiceID); !ok || pa.Status != "booked" {
		t.Errorf("the stand-in's appointment %q: %+v", practiceID, pa)
	}
	if want := "GP practice " + devserver.DemoGPPractice + ": POST /Appointment → 201"; !strings.Contains(out.String(), want) {
		t.Errorf("the demo's log lacks %q:\n%s", want, out.String())
	}
	for _, s := range a.Adapters.Status(ctx) {
		if s.Name == demoGPInstance && s.State != adapters.StateUp {
			t.Errorf("the demo GP instance: %+v", s)
		}
	}
}
