package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// The demo county's referrals: every demo patient has one referral in a
// state someone can act on, and every third patient also one whose
// appointment took place months ago. Each practice's four patients get
// one of each state, in turn:
//
//   - awaiting booking, with its shortlist saved (the patient books);
//   - booked into a free slot of a directly bookable service, on that
//     provider's for-review worklist;
//   - a slot issue: nothing suitable was free at the service chosen, so
//     it is deferred to that provider's slot-issues worklist;
//   - referred to a service that triages first (neurology, the MSK
//     assessment service): awaiting triage, on its for-review worklist.
//
// About a third of the booked referrals and slot issues are at the demo
// provider's trust (Kingsbridge), so its worklists have work on them;
// none are at the services the walkthrough and the README follow
// (Kingsbridge dermatology and neurology) or at the clinic whose bookings
// the demo PAS confirms (Kingsbridge cardiology). Referrals are dated
// over the past seven months (authoredOn), so the commissioner's charts
// show months, practices, specialties and services.
//
// They are written as the server's own writes through the write path and
// the referral service's rules, as the API writes them: each gets its
// UBRN and its Task, bookings claim their slot and move the Task, slot
// issues are raised by referral.Service.RaiseSlotIssue and shortlists
// saved by $shortlist. Every referral has a fixed id
// (demo-referral-NNN-a, -b): one that exists is left alone, so loading
// is idempotent. Nothing is random: the state, specialty, service, slot
// and dates follow from the patient's number.

// demoCase is the state a demo referral is seeded in.
type demoCase int

const (
	demoToBook    demoCase = iota // awaiting booking, shortlist saved
	demoBooked                    // booked in a free slot: for review
	demoSlotIssue                 // deferred to the service: slot issue
	demoTriage                    // at a service that triages: for review
	demoSeen                      // the appointment took place (completed)
)

var demoCaseNames = map[demoCase]string{demoToBook: "awaiting booking", demoBooked: "booked", demoSlotIssue: "slot issue",
	demoTriage: "awaiting triage", demoSeen: "completed"}

// demoReferral is one referral the demo seeds.
type demoReferral struct {
	id      string
	patient int
	what    demoCase
	sp      demoSpecialty
	why     string
	// authored is how many days before the load it was made.
	authored int
	// kingsbridge: book it at, or defer it to, the demo provider's trust
	// when it has a suitable service.
	kingsbridge bool
}

// demoReasons are the reasons for referral, by specialty code.
var demoReasons = map[string][]string{
	dermatology.code:      {"Changing pigmented lesion on the back", "Psoriasis not settling with topical treatment", "Recurrent eczema of both hands"},
	cardiology.code:       {"Palpitations and intermittent dizziness", "Exertional chest tightness", "New heart murmur on examination"},
	orthopaedics.code:     {"Right knee pain with locking", "Left hip pain limiting walking", "Persistent shoulder pain after a fall"},
	gastroenterology.code: {"Change in bowel habit for three months", "Persistent indigestion despite treatment", "Iron deficiency anaemia"},
	gynaecology.code:      {"Heavy menstrual bleeding", "Pelvic pain for six months", "Post-menopausal bleeding, scan normal"},
	ophthalmology.code:    {"Gradual blurring of vision, suspected cataract", "Raised eye pressure at the optician", "Recurrent red painful eye"},
	neurology.code:        {"New daily headache for eight weeks", "Tremor of the right hand", "Episodes of numbness in the left arm"},
	pulmonology.code:      {"Chronic cough for three months", "Breathlessness on exertion", "Suspected sleep apnoea"},
	endocrinology.code:    {"Type 2 diabetes, poorly controlled", "Overactive thyroid on blood tests", "Raised calcium on blood tests"},
	urology.code:          {"Lower urinary tract symptoms", "Raised PSA on repeat testing", "Recurrent urinary tract infections"},
	generalSurgery.code:   {"Inguinal hernia, right side", "Gallstones with recurrent pain", "Lump on the upper back"},
	ent.code:              {"Hearing loss in the left ear", "Recurrent tonsillitis", "Persistent nasal blockage"},
}

// demoKeepClear are the services no demo referral is booked at or
// deferred to: those the walkthrough and the README follow step by step
// (their worklists start empty), and the clinic whose bookings the demo
// PAS confirms.
var demoKeepClear = []string{"HealthcareService/demo-hs-kingsbridge-394582007", "HealthcareService/demo-hs-kingsbridge-394591006",
	"HealthcareService/" + demoPASService}

// demoReferrals lists the referrals the demo seeds.
func demoReferrals() []demoReferral {
	var out []demoReferral
	for n := 1; n <= 80; n++ {
		practice, k := (n-1)/4, (n-1)%4
		what := []demoCase{demoToBook, demoBooked, demoSlotIssue, demoTriage}[k]
		female := demoPatient(n, "", 0, 0, 0)["gender"] == "female"
		// Each state goes through every specialty across the practices.
		sp := demoSpecialties[(5*practice+7*k+1)%len(demoSpecialties)]
		if sp == gynaecology && !female {
			sp = urology
		}
		if what == demoTriage {
			sp = []demoSpecialty{neurology, orthopaedics}[practice%2]
		}
		out = append(out, demoReferral{id: fmt.Sprintf("demo-referral-%03d-a", n), patient: n, what: what, sp: sp,
			why: demoReasons[sp.code][n%3], authored: 4 + (n*7)%40, kingsbridge: practice%3 == k%3})
		if n%3 == 0 {
			seen := demoSpecialties[(5*(n/3)+2)%len(demoSpecialties)]
			if seen == gynaecology && !female {
				seen = ophthalmology
			}
			// From seven months back to two: each month gets referrals.
			out = append(out, demoReferral{id: fmt.Sprintf("demo-referral-%03d-b", n), patient: n, what: demoSeen, sp: seen,
				why: demoReasons[seen.code][(n+1)%3], authored: 60 + (n*11)%150})
		}
	}
	return out
}

// seedDemoReferrals writes the demo referrals that do not exist yet, as
// the server, and returns how many it wrote.
func seedDemoReferrals(ctx context.Context, a *app.App) (int, error) {
	ctx = write.AsServer(ctx)
	var shortlists []string
	added := 0
	now := time.Now().In(a.Location)
	// One transaction for them all: loading stays quick.
	err := a.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		added, shortlists = 0, nil
		for _, d := range demoReferrals() {
			if _, err := tx.Read(ctx, "ServiceRequest", d.id); err == nil {
				continue
			}
			if err := seedDemoReferral(ctx, a, tx, d, now); err != nil {
				return fmt.Errorf("referral %s (%s): %w", d.id, demoCaseNames[d.what], err)
			}
			added++
			if d.what == demoToBook {
				shortlists = append(shortlists, d.id)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	// The referrals awaiting booking get the shortlist the GP would save
	// with them: $shortlist with save, as the API runs it.
	var op *operation.Operation
	for _, o := range a.Referral.Operations() {
		if o.Name == "shortlist" {
			op = o
		}
	}
	if op == nil && len(shortlists) > 0 {
		return added, fmt.Errorf("demo: the referral service has no $shortlist")
	}
	body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"save","valueBoolean":true}]}`)
	for _, id := range shortlists {
		params, err := operation.ParseBody(body)
		if err != nil {
			return added, err
		}
		if _, err := op.Handle(ctx, &operation.Request{Type: "ServiceRequest", ID: id, Method: "POST", Params: params, Body: body,
			BaseURL: a.Config.BaseURL}); err != nil {
			return added, fmt.Errorf("demo: the shortlist of %s: %w", id, err)
		}
	}
	return added, nil
}

// demoFits returns the demo services (references, in the table's order)
// that suit referral d: its specialty, indirectly bookable or not as
// asked, commissioned by the board of the patient's practice, open to
// the patient's sex and age, and not kept clear (demoKeepClear).
func demoFits(d demoReferral, indirect bool, now time.Time) []string {
	p := demoPatient(d.patient, "", 0, 0, 0)
	board := demoICBs[((d.patient-1)/4)%2].id
	birth, _ := time.Parse("2006-01-02", p["birthDate"].(string))
	age := now.Year() - birth.Year()
	if now.YearDay() < birth.YearDay() {
		age--
	}
	var out []string
	for _, s := range demoServices() {
		ref := "HealthcareService/" + s.id
		if s.sp != d.sp || s.indirect != indirect || slices.Contains(demoKeepClear, ref) ||
			(s.commissioners != nil && !slices.Contains(s.commissioners, board)) {
			continue
		}
		if g, ok := s.elig["gender"]; ok && g != p["gender"] {
			continue
		}
		if m, ok := s.elig["min"].(int); ok && age < m {
			continue
		}
		if m, ok := s.elig["max"].(int); ok && age > m {
			continue
		}
		out = append(out, ref)
	}
	return out
}

// seedDemoReferral writes the referral d in tx and brings it to its state.
func seedDemoReferral(ctx context.Context, a *app.App, tx *write.Tx, d demoReferral, now time.Time) error {
	patient := fmt.Sprintf("Patient/demo-patient-%03d", d.patient)
	practice := fmt.Sprintf("Organization/demo-gp-%02d", (d.patient-1)/4+1)
	authored := now.AddDate(0, 0, -d.authored).Truncate(time.Hour)
	sr := map[string]any{"resourceType": "ServiceRequest", "id": d.id, "status": "active", "intent": "order", "priority": "routine",
		"category":      []any{map[string]any{"coding": []any{map[string]any{"system": referral.Base + "/CodeSystem/referral-source", "code": "gp"}}}},
		"performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": d.sp.code, "display": d.sp.name}}},
		"subject":       map[string]any{"reference": patient}, "requester": map[string]any{"reference": practice},
		"authoredOn": authored.Format(time.RFC3339), "reasonCode": []any{map[string]any{"text": d.why}}}
	put := func(typ, id string, v map[string]any) (*fhir.Resource, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		obj, err := fhir.ParseObject(b)
		if err != nil {
			return nil, err
		}
		res, _, err := tx.Put(ctx, typ, id, obj, 0)
		return res, err
	}
	// The services the referral may go to: of its specialty, bookable as
	// wanted, commissioned by the patient's board and open to the
	// patient (the demo county's table, as $shortlist judges them; the
	// booking rule checks the fit again).
	choose := func(bookability string) (string, error) {
		fits := demoFits(d, bookability == directory.IndirectlyBookable, now)
		if len(fits) == 0 {
			return "", fmt.Errorf("no suitable %s service for %s", bookability, d.sp.name)
		}
		if d.kingsbridge {
			for _, f := range fits {
				if strings.HasPrefix(f, "HealthcareService/demo-hs-kingsbridge-") {
					return f, nil
				}
			}
		}
		return fits[d.patient%len(fits)], nil
	}
	switch d.what {
	case demoToBook:
		_, err := put("ServiceRequest", d.id, sr)
		return err

	case demoTriage, demoSlotIssue:
		bookability := directory.DirectlyBookable
		if d.what == demoTriage {
			bookability = directory.IndirectlyBookable
		}
		svc, err := choose(bookability)
		if err != nil {
			return err
		}
		sr["performer"] = []any{map[string]any{"reference": svc}}
		if _, err := put("ServiceRequest", d.id, sr); err != nil {
			return err
		}
		if d.what == demoSlotIssue {
			_, err = a.Referral.RaiseSlotIssue(ctx, tx, "ServiceRequest/"+d.id, svc, "No appointment was free at the chosen clinic within the booking window")
		}
		return err

	case demoBooked:
		svc, err := choose(directory.DirectlyBookable)
		if err != nil {
			return err
		}
		if _, err := put("ServiceRequest", d.id, sr); err != nil {
			return err
		}
		// A free slot a week or more ahead, not the first: the walkthrough
		// and the browser tests book those.
		q, err := a.Search.Parse("Slot", map[string][]string{"schedule": {"Schedule/demo-sched-" + strings.TrimPrefix(svc, "HealthcareService/demo-hs-")},
			"status": {"free"}, "start": {"ge" + now.AddDate(0, 0, 7).Format("2006-01-02")}, "_sort": {"start"}, "_count": {"8"}}, search.ParseOptions{})
		if err != nil {
			return err
		}
		page, err := tx.Search(ctx, q)
		if err != nil {
			return err
		}
		if len(page.Resources) == 0 {
			return fmt.Errorf("no free slot at %s", svc)
		}
		slot := page.Resources[(d.patient/4)%len(page.Resources)]
		var times struct{ Start, End string }
		if err := json.Unmarshal(slot.JSON, &times); err != nil {
			return err
		}
		_, err = put("Appointment", d.id, map[string]any{"resourceType": "Appointment", "status": "booked", "start": times.Start, "end": times.End,
			"basedOn": []any{map[string]any{"reference": "ServiceRequest/" + d.id}}, "slot": []any{map[string]any{"reference": "Slot/" + slot.ID}},
			"participant": []any{map[string]any{"actor": map[string]any{"reference": patient}, "status": "accepted"},
				map[string]any{"actor": map[string]any{"reference": svc}, "status": "accepted"}},
			"comment": "Booked by the patient online"})
		return err

	case demoSeen:
		svc, err := choose(directory.DirectlyBookable)
		if err != nil {
			return err
		}
		if _, err := put("ServiceRequest", d.id, sr); err != nil {
			return err
		}
		// Seen three to seven weeks after the referral, at ten or two.
		start := authored.AddDate(0, 0, 21+d.patient%29)
		start = time.Date(start.Year(), start.Month(), start.Day(), 10+4*(d.patient%2), 0, 0, 0, start.Location())
		for start.Weekday() == time.Saturday || start.Weekday() == time.Sunday {
			start = start.AddDate(0, 0, 1)
		}
		appt := map[string]any{"resourceType": "Appointment", "status": "booked",
			"basedOn": []any{map[string]any{"reference": "ServiceRequest/" + d.id}},
			"start":   start.Format(time.RFC3339), "end": start.Add(20 * time.Minute).Format(time.RFC3339),
			"participant": []any{map[string]any{"actor": map[string]any{"reference": patient}, "status": "accepted"},
				map[string]any{"actor": map[string]any{"reference": svc}, "status": "accepted"}}}
		res, err := put("Appointment", d.id, appt)
		if err != nil {
			return err
		}
		var booked map[string]any
		if err := json.Unmarshal(res.JSON, &booked); err != nil {
			return err
		}
		booked["status"] = "fulfilled"
		delete(booked, "meta")
		_, err = put("Appointment", d.id, booked)
		return err
	}
	return fmt.Errorf("unknown demo case %d", d.what)
}
