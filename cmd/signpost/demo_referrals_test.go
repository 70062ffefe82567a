package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// TestDemoReferrals: the demo county's referrals, through the FHIR API as
// its users see them. Every demo patient has a referral in a state to act
// on; each carries a UBRN and a Task; those awaiting booking have a saved
// shortlist, the booked ones an appointment in a slot now busy, the slot
// issues and those in triage are owned by a service; the demo provider's
// for-review and slot-issues worklists have work, and the walkthrough's
// services none; the referrals span practices, specialties and at least
// six months; the commissioner's reports have rows; a second load writes
// nothing.
func TestDemoReferrals(t *testing.T) {
	a, ts := apptest.New(t, app.Config{})
	ctx := context.Background()
	start := time.Now()
	if err := loadDemo(ctx, a, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Logf("the demo county loaded in %v", time.Since(start).Round(time.Millisecond))
	c := &demoClient{t: t, base: ts.URL + "/fhir"}
	plan := demoReferrals()

	srs := c.search("/ServiceRequest?_count=500")
	if len(srs) != len(plan) {
		t.Fatalf("%d ServiceRequests, want the %d the demo seeds", len(srs), len(plan))
	}
	tasks := map[string]map[string]any{} // by focus
	for _, tk := range c.search("/Task?_count=500") {
		tasks[jpath(tk, "focus", "reference").(string)] = tk
	}
	appts := map[string]map[string]any{} // by basedOn
	for _, ap := range c.search("/Appointment?_count=500") {
		appts[jpath(ap, "basedOn", 0, "reference").(string)] = ap
	}
	want := map[demoCase]string{demoToBook: "awaiting-booking", demoBooked: "booked", demoSlotIssue: "slot-issue", demoTriage: "awaiting-triage", demoSeen: "completed"}
	useful := map[int]bool{}
	months, practices, specialties := map[string]bool{}, map[string]bool{}, map[string]bool{}
	ubrns := map[string]bool{}
	for _, d := range plan {
		ref := "ServiceRequest/" + d.id
		sr := c.do("GET", "/"+ref, nil, 200)
		ubrn, _ := jpath(sr, "identifier", 0, "value").(string)
		if len(ubrn) != 12 || ubrns[ubrn] {
			t.Errorf("%s: UBRN %q, want 12 digits, unique", ref, ubrn)
		}
		ubrns[ubrn] = true
		tk := tasks[ref]
		if tk == nil {
			t.Errorf("%s has no Task", ref)
			continue
		}
		state := jpath(tk, "businessStatus", "coding", 0, "code")
		if state != want[d.what] {
			t.Errorf("%s (%s): Task %v, want %s", ref, demoCaseNames[d.what], state, want[d.what])
		}
		if d.what != demoSeen {
			useful[d.patient] = true
		}
		owner, _ := jpath(tk, "owner", "reference").(string)
		switch d.what {
		case demoToBook:
			if n := strings.Count(fmt.Sprint(sr["extension"]), "/shortlist"); n < 3 {
				t.Errorf("%s awaits booking with %d services shortlisted, want at least 3", ref, n)
			}
		case demoBooked, demoSeen:
			ap := appts[ref]
			wantStatus := map[demoCase]string{demoBooked: "booked", demoSeen: "fulfilled"}[d.what]
			if ap == nil || ap["status"] != wantStatus || jpath(ap, "identifier", 0, "value") != ubrn {
				t.Errorf("%s: appointment %v, want %s with the UBRN", ref, ap, wantStatus)
				continue
			}
			if d.what == demoBooked {
				slot := c.do("GET", "/"+jpath(ap, "slot", 0, "reference").(string), nil, 200)
				if slot["status"] != "busy" {
					t.Errorf("%s's slot is %v, want busy", ref, slot["status"])
				}
				if at, _ := time.Parse(time.RFC3339, ap["start"].(string)); !at.After(time.Now()) {
					t.Errorf("%s is booked for %v, in the past", ref, ap["start"])
				}
			}
			fallthrough
		case demoSlotIssue, demoTriage:
			if !strings.HasPrefix(owner, "HealthcareService/") || slices.Contains(demoKeepClear, owner) {
				t.Errorf("%s (%s) is owned by %q, want a demo service other than %v", ref, demoCaseNames[d.what], owner, demoKeepClear)
			}
		}
		authored, err := time.Parse(time.RFC3339, sr["authoredOn"].(string))
		if err != nil {
			t.Errorf("%s: authoredOn %v", ref, sr["authoredOn"])
		}
		months[authored.Format("2006-01")] = true
		practices[jpath(sr, "requester", "reference").(string)] = true
		specialties[jpath(sr, "performerType", "coding", 0, "code").(string)] = true
	}
	for n := 1; n <= 80; n++ {
		if !useful[n] {
			t.Errorf("demo-patient-%03d has no referral to act on", n)
		}
	}
	if len(months) < 6 || len(practices) != 20 || len(specialties) < 10 {
		t.Errorf("referrals over %d months, %d practices, %d specialties; want at least 6, 20, 10", len(months), len(practices), len(specialties))
	}

	// The demo provider's worklists have work; the walkthrough's services
	// start with none.
	provider := map[string]int{}
	for _, tk := range tasks {
		owner, _ := jpath(tk, "owner", "reference").(string)
		if !strings.HasPrefix(owner, "HealthcareService/demo-hs-kingsbridge-") {
			continue
		}
		exts, _ := tk["extension"].([]any)
		for _, e := range exts {
			if strings.HasSuffix(jpath(e, "url").(string), "/worklist") {
				provider[jpath(e, "valueCoding", "code").(string)]++
			}
		}
	}
	if provider["for-review"] < 4 || provider["slot-issues"] < 4 {
		t.Errorf("the demo provider's worklists: %v, want at least 4 for review and 4 slot issues", provider)
	}
	for _, svc := range demoKeepClear {
		if n := len(c.search("/Task?owner=" + svc)); n != 0 {
			t.Errorf("%s owns %d demo referrals, want none", svc, n)
		}
	}

	// The commissioner's reports, as the portal's charts read them.
	a2, ts2 := apptest.New(t, app.Config{Auth: true})
	if err := loadDemo(ctx, a2, io.Discard); err != nil {
		t.Fatal(err)
	}
	tok, err := devserver.MintToken(a2.Config.Data, devserver.TokenOptions{Client: devserver.ClientCommissioner, Scope: commissionerScope})
	if err != nil {
		t.Fatal(err)
	}
	w := &walker{t: t, base: ts2.URL}
	rows := func(report string) []map[string]string {
		var out []map[string]string
		for _, p := range w.call(tok, "GET", "/"+report, nil, 200)["parameter"].([]any) {
			row := map[string]string{}
			for _, part := range jpath(p, "part").([]any) {
				pm := part.(map[string]any)
				for k, v := range pm {
					if strings.HasPrefix(k, "value") {
						if r, ok := v.(map[string]any); ok {
							v = r["reference"]
						}
						row[pm["name"].(string)] = fmt.Sprint(v)
					}
				}
			}
			out = append(out, row)
		}
		return out
	}
	seenAt := map[string]bool{}
	for _, r := range rows("$waiting-times") {
		if r["appointments"] != "0" && r["appointments"] != "" {
			seenAt[r["service"]] = true
		}
	}
	trendMonths, trendPractices := map[string]bool{}, map[string]bool{}
	for _, r := range rows("$referral-trends") {
		trendMonths[r["month"]], trendPractices[r["practice"]] = true, true
	}
	gaps := rows("$capacity-gaps")
	t.Logf("the demo provider's worklists %v; the commissioner sees appointments at %d services, referrals over %d months from %d practices, slot issues at %d services",
		provider, len(seenAt), len(trendMonths), len(trendPractices), len(gaps))
	if len(seenAt) < 5 || len(trendMonths) < 6 || len(trendPractices) < 10 || len(gaps) < 4 {
		t.Errorf("the commissioner sees appointments at %d services, referrals over %d months from %d practices, %d services with slot issues; want at least 5, 6, 10, 4",
			len(seenAt), len(trendMonths), len(trendPractices), len(gaps))
	}

	// Idempotent: a second load writes nothing.
	var out bytes.Buffer
	if err := loadDemo(ctx, a, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("%d referrals (0 new)", len(plan))) {
		t.Errorf("second load says %q, want no new referrals", out.String())
	}
	if n := len(c.search("/ServiceRequest?_count=500")); n != len(plan) {
		t.Errorf("after a second load, %d ServiceRequests, want %d", n, len(plan))
	}
}
