package main

import (
	"bytes"
	"context"
	"encoding/base64"
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

// staffFixture is what the staff browser tests (test/portal/staff.mjs)
// are given: the portal's address, the patient the call centre finds and
// the referrals made for the staff journeys through the FHIR API.
type staffFixture struct {
	Base        string `json:"base"`
	Screenshots string `json:"screenshots"`
	Chromium    string `json:"chromium"`
	// Patient is the caller the call centre finds by NHS number and birth date.
	Patient struct{ ID, Name, NHSNumber, BirthDate string } `json:"patient"`
	// Book is a referral with a saved shortlist the call centre books,
	// reschedules and cancels; SlotIssue one it raises a slot issue on;
	// ByUBRN one it finds by its UBRN.
	Book      struct{ ID, UBRN string } `json:"book"`
	SlotIssue struct{ ID, UBRN string } `json:"slotIssue"`
	// SlotIssueService is the demo trust's dermatology, where the call
	// centre raises the slot issue (so that the demo provider works it).
	SlotIssueService string `json:"slotIssueService"`
	// Review are referrals booked at the demo trust's dermatology, on the
	// provider's for-review worklist: accepted, rejected, redirected. The
	// first has a letter attached (DocumentReference with the text Letter).
	Review []struct{ ID, UBRN string } `json:"review"`
	Letter string                      `json:"letter"`
	// DemoReview and DemoSlotIssue are referrals the demo county seeds on
	// the demo provider's worklists (for review, slot issues).
	DemoReview    struct{ ID, UBRN string } `json:"demoReview"`
	DemoSlotIssue struct{ ID, UBRN string } `json:"demoSlotIssue"`
}

// TestPortalStaffBrowser drives the portal's staff pages in Debian's
// chromium with playwright-core (test/portal/staff.mjs) against a real
// serve --demo: the call-centre agent (find a patient, book, reschedule,
// cancel for them, raise a slot issue), the provider (worklists, a
// referral with its attachment, accept, reject, redirect, book, schedule
// utilisation), the referrer (the rejection on its worklist) and the
// commissioner (charts with tables and CSV), each
// signing in through the development server's staff page; axe-core on
// every page, one journey by keyboard alone. Screenshots go to
// test/portal/screenshots/staff. Skipped as TestPortalBrowser is.
func TestPortalStaffBrowser(t *testing.T) {
	node, chromium, dir := browserTools(t)
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data, "--demo")
	fx := makeStaffFixture(t, p.base, data)
	fx.Chromium = chromium
	fx.Screenshots = filepath.Join(dir, "screenshots", "staff")
	raw, _ := json.Marshal(fx)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "staff.mjs"))
	cmd.Env = append(withoutSignpostEnv(os.Environ()), "PORTAL_FIXTURE="+string(raw))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("staff browser journeys took %v:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("staff.mjs: %v", err)
	}
}

// browserTools finds node, chromium and test/portal's node_modules, or
// skips the test.
func browserTools(t *testing.T) (node, chromium, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the portal's browser tests need Node 20+, chromium and `npm ci --prefix test/portal`")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install chromium): the portal's browser tests need it")
	}
	dir, err = filepath.Abs("../../test/portal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Skip("playwright-core is not installed: run `npm ci --prefix test/portal`")
	}
	return node, chromium, dir
}

// makeStaffFixture writes the staff journeys' referrals through the FHIR
// API, as the demo's GP and provider.
func makeStaffFixture(t *testing.T, base, data string) staffFixture {
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
	var fx staffFixture
	fx.Base = base
	pat := demoPatient(1, "demo-gp-01", 0, 0, 0)
	name := pat["name"].([]any)[0].(map[string]any)
	fx.Patient.ID, fx.Patient.NHSNumber, fx.Patient.BirthDate = "demo-patient-001", demoNHSNumber(1), pat["birthDate"].(string)
	fx.Patient.Name = fmt.Sprintf("%s %s", name["given"].([]any)[0], name["family"])

	const derm, dermCode = "HealthcareService/demo-hs-kingsbridge-394582007", "394582007"
	referral := func(why, performer string) (id, ubrn string) {
		body := map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
			"category":      []any{map[string]any{"coding": []any{map[string]any{"system": "https://signpost.example/fhir/CodeSystem/referral-source", "code": "gp"}}}},
			"performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": dermCode, "display": "Dermatology"}}},
			"subject":       reference("Patient/" + fx.Patient.ID), "requester": reference("Organization/demo-gp-01"),
			"authoredOn": time.Now().UTC().Format(time.RFC3339), "reasonCode": []any{map[string]any{"text": why}}}
		if performer != "" {
			body["performer"] = []any{reference(performer)}
		}
		sr := w.call(gp, "POST", "/ServiceRequest", body, 201)
		u, _ := jpath(sr, "identifier", 0, "value").(string)
		return sr["id"].(string), u
	}
	fx.Book.ID, fx.Book.UBRN = referral("Changing mole on the left forearm", "")
	w.call(gp, "POST", "/ServiceRequest/"+fx.Book.ID+"/$shortlist", parameters("save", true), 200)
	// The patient chose the trust's dermatology and found no time free
	// there: the slot issue goes to it. (A provider reads the referrals
	// made to its services, not those only deferred to them.)
	fx.SlotIssue.ID, fx.SlotIssue.UBRN = referral("Rash on the neck", derm)
	fx.SlotIssueService = derm

	// For review: booked at the trust's dermatology (the booking moves the
	// referral to the provider's for-review worklist).
	for i, why := range []string{"Suspicious lesion on the back", "Psoriasis not settling", "Acne scarring"} {
		id, u := referral(why, derm)
		start := time.Now().UTC().AddDate(0, 0, 20+i).Truncate(24 * time.Hour).Add(10 * time.Hour)
		w.call(provider, "POST", "/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
			"basedOn": []any{reference("ServiceRequest/" + id)}, "start": start.Format(time.RFC3339), "end": start.Add(20 * time.Minute).Format(time.RFC3339),
			"participant": []any{map[string]any{"actor": reference(derm), "status": "accepted"}}}, 201)
		fx.Review = append(fx.Review, struct{ ID, UBRN string }{id, u})
	}
	fx.Letter = "Dear colleague, please see this patient about a lesion that has grown over three months."
	w.call(gp, "POST", "/DocumentReference", map[string]any{"resourceType": "DocumentReference", "status": "current",
		"subject": reference("Patient/" + fx.Patient.ID), "description": "Referral letter",
		"context": map[string]any{"related": []any{reference("ServiceRequest/" + fx.Review[0].ID)}},
		"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "title": "referral-letter.txt",
			"data": base64.StdEncoding.EncodeToString([]byte(fx.Letter))}}}}, 201)

	// The demo county's own referrals on the provider's worklists.
	for _, wl := range []struct {
		code string
		into *struct{ ID, UBRN string }
	}{{"for-review", &fx.DemoReview}, {"slot-issues", &fx.DemoSlotIssue}} {
		for _, tk := range resources(w.call(provider, "GET", "/Task?worklist="+wl.code+"&_count=200", nil, 200)) {
			focus, _ := jpath(tk, "focus", "reference").(string)
			owner, _ := jpath(tk, "owner", "reference").(string)
			if strings.HasPrefix(focus, "ServiceRequest/demo-referral-") && strings.HasPrefix(owner, "HealthcareService/demo-hs-kingsbridge-") {
				wl.into.ID, wl.into.UBRN = strings.TrimPrefix(focus, "ServiceRequest/"), jpath(tk, "identifier", 0, "value").(string)
				break
			}
		}
		if wl.into.ID == "" {
			t.Fatalf("the demo county seeds nothing on the demo provider's %s worklist", wl.code)
		}
	}
	return fx
}
