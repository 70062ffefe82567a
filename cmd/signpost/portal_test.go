package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/auth/devserver"
)

// portalFixture is what the browser tests (test/portal/journeys.mjs) are
// given: the portal's address and the referrals, codes and questionnaires
// made for them through the FHIR API, and what no page may show the first
// demo patient.
type portalFixture struct {
	Base        string `json:"base"`
	Screenshots string `json:"screenshots"`
	Chromium    string `json:"chromium"`
	// Patient is the demo patient who signs in through the picker.
	Patient struct {
		ID, Name, NHSNumber, BirthDate string
	} `json:"patient"`
	// Book is a dermatology referral with a saved shortlist: the journey
	// books (after the booking questions), reschedules and cancels.
	Book struct{ ID, UBRN string } `json:"book"`
	// Seen is a referral with an appointment that has taken place: the
	// experience questionnaire.
	Seen struct{ ID string } `json:"seen"`
	// UBRNAccess is a referral of the same patient to sign in to with its
	// UBRN, access code and birth date; RaceA and RaceB are referrals of
	// two patients to the same service, each with an access code, for
	// the race for one slot.
	UBRNAccess  struct{ ID, UBRN, Code, BirthDate string } `json:"ubrnAccess"`
	RaceA       struct{ ID, UBRN, Code, BirthDate string } `json:"raceA"`
	RaceB       struct{ ID, UBRN, Code, BirthDate string } `json:"raceB"`
	RaceService string                                     `json:"raceService"`
	// Demo is the referral the demo county seeds for the patient.
	Demo struct{ ID, UBRN string } `json:"demo"`
	// Others are the other demo patients' names and NHS numbers.
	Others []string `json:"others"`
}

// TestPortalBrowser drives the portal in Debian's chromium with
// playwright-core (test/portal/journeys.mjs) against a real serve --demo:
// every patient journey, axe-core on every page, the keyboard alone, no
// other patient's data on any page reachable, two browsers racing for one
// slot. Screenshots go to test/portal/screenshots (ignored by git).
// Skipped without Node, chromium or `npm ci --prefix test/portal`.
func TestPortalBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the portal's browser tests need Node 20+, chromium and `npm ci --prefix test/portal`")
	}
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install chromium): the portal's browser tests need it")
	}
	dir, err := filepath.Abs("../../test/portal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Skip("playwright-core is not installed: run `npm ci --prefix test/portal`")
	}
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data, "--demo")
	fx := makePortalFixture(t, p.base, data)
	fx.Chromium = chromium
	fx.Screenshots = filepath.Join(dir, "screenshots")
	raw, _ := json.Marshal(fx)

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "journeys.mjs"))
	cmd.Env = append(withoutSignpostEnv(os.Environ()), "PORTAL_FIXTURE="+string(raw))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	t.Logf("browser journeys took %v:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("journeys.mjs: %v", err)
	}
}

// makePortalFixture writes the fixture's referrals through the FHIR API,
// as the demo's GP and provider.
func makePortalFixture(t *testing.T, base, data string) portalFixture {
	t.Helper()
	mint := func(o devserver.TokenOptions) string {
		tok, err := devserver.MintToken(data, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	gp := mint(devserver.TokenOptions{Client: devserver.ClientGPSystem, Scope: "system/*.cruds"})
	provider := mint(devserver.TokenOptions{Client: devserver.ClientProvider, Scope: "system/*.cruds"})
	w := &walker{t: t, base: base}
	var fx portalFixture
	fx.Base = base
	pat := demoPatient(1, "demo-gp-01", 0, 0, 0)
	name := pat["name"].([]any)[0].(map[string]any)
	fx.Patient.ID, fx.Patient.NHSNumber, fx.Patient.BirthDate = "demo-patient-001", demoNHSNumber(1), pat["birthDate"].(string)
	fx.Patient.Name = fmt.Sprintf("%s %s", name["given"].([]any)[0], name["family"])
	for n := 2; n <= 80; n++ {
		o := demoPatient(n, "", 0, 0, (n-1)%4)
		on := o["name"].([]any)[0].(map[string]any)
		if full := fmt.Sprintf("%s %s", on["given"].([]any)[0], on["family"]); full != fx.Patient.Name {
			fx.Others = append(fx.Others, full)
		}
		fx.Others = append(fx.Others, demoNHSNumber(n))
	}

	const derm, dermCode = "HealthcareService/demo-hs-kingsbridge-394582007", "394582007"
	const guidance = "https://signpost.example/fhir/Questionnaire/portal-test-dermatology-photos"
	referral := func(patient, gpOrg, performer, why string) (id, ubrn string) {
		body := map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
			"category":      []any{map[string]any{"coding": []any{map[string]any{"system": "https://signpost.example/fhir/CodeSystem/referral-source", "code": "gp"}}}},
			"performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": dermCode, "display": "Dermatology"}}},
			"subject":       reference("Patient/" + patient), "requester": reference("Organization/" + gpOrg),
			"authoredOn": time.Now().UTC().Format(time.RFC3339),
			"reasonCode": []any{map[string]any{"text": why}}}
		if performer != "" {
			body["performer"] = []any{reference(performer)}
		}
		sr := w.call(gp, "POST", "/ServiceRequest", body, 201)
		u, _ := jpath(sr, "identifier", 0, "value").(string)
		return sr["id"].(string), u
	}
	code := func(id string) string {
		return param(w.call(gp, "POST", "/ServiceRequest/"+id+"/$access-code", parameters(), 200), "access-code").(string)
	}

	fx.Book.ID, fx.Book.UBRN = referral("demo-patient-001", "demo-gp-01", "", "Changing mole on the left forearm")
	w.call(gp, "POST", "/ServiceRequest/"+fx.Book.ID+"/$shortlist", parameters("save", true), 200)

	fx.Seen.ID, _ = referral("demo-patient-001", "demo-gp-01", derm, "Eczema on both hands")
	start := time.Now().UTC().AddDate(0, 0, -10).Truncate(24 * time.Hour).Add(10 * time.Hour)
	seen := w.call(provider, "POST", "/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
		"basedOn": []any{reference("ServiceRequest/" + fx.Seen.ID)}, "start": start.Format(time.RFC3339), "end": start.Add(20 * time.Minute).Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": reference(derm), "status": "accepted"}}}, 201)
	seen["status"] = "fulfilled"
	w.call(provider, "PUT", "/Appointment/"+seen["id"].(string), seen, 200)

	// (The appointment that took place was recorded before the service
	// asked for its booking questions.)
	// The booking questions Kingsbridge dermatology asks first: every
	// item type the portal renders.
	w.call(provider, "POST", "/Questionnaire", map[string]any{"resourceType": "Questionnaire", "status": "active", "url": guidance,
		"title": "Before you book: skin clinic questions", "description": "The clinic uses your answers to plan your appointment.",
		"item": []any{
			map[string]any{"linkId": "intro", "type": "display", "text": "These questions take about 2 minutes."},
			map[string]any{"linkId": "photo", "type": "boolean", "required": true, "text": "Can you send a photo of the area before your appointment?"},
			map[string]any{"linkId": "photo-how", "type": "choice", "text": "How would you send it?", "enableWhen": []any{map[string]any{"question": "photo", "operator": "=", "answerBoolean": true}},
				"answerOption": []any{map[string]any{"valueCoding": map[string]any{"code": "email", "display": "By email"}}, map[string]any{"valueCoding": map[string]any{"code": "app", "display": "Through the NHS App"}}}},
			map[string]any{"linkId": "about", "type": "group", "text": "About the problem", "item": []any{
				map[string]any{"linkId": "since", "type": "date", "text": "When did you first notice it?"},
				map[string]any{"linkId": "size", "type": "decimal", "text": "About how wide is it, in centimetres?"},
				map[string]any{"linkId": "count", "type": "integer", "text": "How many areas are affected?", "required": true},
				map[string]any{"linkId": "where", "type": "string", "text": "Where on your body is it?", "required": true},
				map[string]any{"linkId": "changes", "type": "choice", "repeats": true, "text": "Has it changed? Select all that apply.",
					"answerOption": []any{map[string]any{"valueString": "Bigger"}, map[string]any{"valueString": "Darker"}, map[string]any{"valueString": "Itchy or bleeding"}}},
			}},
			map[string]any{"linkId": "more", "type": "text", "text": "Anything else the clinic should know?"},
		}}, 201)
	hs := w.call(provider, "GET", "/"+derm, nil, 200)
	exts, _ := hs["extension"].([]any)
	hs["extension"] = append(exts, map[string]any{"url": "https://signpost.example/fhir/StructureDefinition/booking-questionnaire", "valueCanonical": guidance})
	delete(hs, "meta")
	w.call(provider, "PUT", "/"+derm, hs, 200)
	w.call(provider, "POST", "/Questionnaire", map[string]any{"resourceType": "Questionnaire", "status": "active",
		"url": "https://signpost.example/fhir/Questionnaire/portal-test-experience", "title": "How was your appointment?",
		"extension": []any{map[string]any{"url": "https://signpost.example/fhir/StructureDefinition/experience", "valueBoolean": true}},
		"item": []any{
			map[string]any{"linkId": "overall", "type": "choice", "required": true, "text": "Overall, how was your experience of the service?",
				"answerOption": []any{map[string]any{"valueInteger": 5}, map[string]any{"valueInteger": 4}, map[string]any{"valueInteger": 3}, map[string]any{"valueInteger": 2}, map[string]any{"valueInteger": 1}}},
			map[string]any{"linkId": "recommend", "type": "boolean", "text": "Would you recommend it to friends and family?"},
			map[string]any{"linkId": "why", "type": "text", "text": "Tell us why"},
		}}, 201)

	fx.UBRNAccess.ID, fx.UBRNAccess.UBRN = referral("demo-patient-001", "demo-gp-01", "", "Itchy scalp")
	fx.UBRNAccess.Code, fx.UBRNAccess.BirthDate = code(fx.UBRNAccess.ID), fx.Patient.BirthDate

	fx.RaceService = "demo-hs-gpwsi-dermatology"
	fx.RaceA.ID, fx.RaceA.UBRN = referral("demo-patient-001", "demo-gp-01", "", "Wart on the right hand")
	fx.RaceA.Code, fx.RaceA.BirthDate = code(fx.RaceA.ID), fx.Patient.BirthDate
	fx.RaceB.ID, fx.RaceB.UBRN = referral("demo-patient-003", "demo-gp-01", "", "Wart on the left foot")
	fx.RaceB.Code = code(fx.RaceB.ID)
	fx.RaceB.BirthDate = demoPatient(3, "", 0, 0, 0)["birthDate"].(string)
	demo := w.call(gp, "GET", "/ServiceRequest/demo-referral-001-a", nil, 200)
	fx.Demo.ID, fx.Demo.UBRN = demo["id"].(string), jpath(demo, "identifier", 0, "value").(string)
	if strings.Contains(strings.Join(fx.Others, "|"), fx.Patient.NHSNumber) {
		t.Fatal("the first demo patient's NHS number is among the others'")
	}
	return fx
}
