package offer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/offer"
)

// TestAcceptReschedules: accepting an offer with $book books it and, in
// the same transaction, cancels the booking it replaces (its slot freed),
// the offer pointing at it (replaces) and based on the referral, whose
// state stays booked; the request is completed; the slot freed in turn is
// offered to the next patient, for whom it is earlier.
func TestAcceptReschedules(t *testing.T) {
	t.Parallel()
	w := newWorld(t, app.Config{Offers: true})
	freed, slotA, slotB := w.slot("hs-derm-city", 4, 0), w.slot("hs-derm-city", 12, 0), w.slot("hs-derm-city", 15, 0)
	other := w.book(w.filler, "", "hs-derm-city", freed)
	a, b := w.patient("a"), w.patient("b")
	srA, srB := w.referral(a, "derm", "urgent", 3), w.referral(b, "derm", "routine", 3)
	apptA, apptB := w.book(a, srA, "hs-derm-city", slotA), w.book(b, srB, "hs-derm-city", slotB)
	reqA := w.requestEarlier(apptA)
	w.requestEarlier(apptB)
	w.cancel(other)

	offerA := w.offers()[a]
	if offerA == nil {
		t.Fatalf("no offer to %s: %v", a, w.offers())
	}
	id := "Appointment/" + offerA["id"].(string)
	if sub(offerExt(offerA), "replaces") != apptA || sub(offerExt(offerA), "request") != "Task/"+reqA["id"].(string) {
		t.Errorf("offer extension: %v", offerExt(offerA))
	}
	task := w.must(200, "GET", "/Task/"+reqA["id"].(string), nil)
	if task["status"] != "in-progress" {
		t.Errorf("request while an offer is out: %v", task["status"])
	}
	out := w.must(200, "POST", "/Appointment/$book", params("appointment-reference", ref(id)))
	booked := asList(out["entry"])[0].(map[string]any)["resource"].(map[string]any)
	if booked["status"] != "booked" || asList(booked["basedOn"])[0].(map[string]any)["reference"] != srA {
		t.Errorf("accepted offer: %v", booked)
	}
	replaces := ""
	for _, e := range asList(booked["extension"]) {
		if m := e.(map[string]any); m["url"] == booking.ExtReplaces {
			replaces = m["valueReference"].(map[string]any)["reference"].(string)
		}
	}
	if replaces != apptA {
		t.Errorf("accepted offer replaces %q, want %s", replaces, apptA)
	}
	if got := w.status(apptA); got != "cancelled" {
		t.Errorf("the replaced booking is %s, want cancelled", got)
	}
	if got := w.status(freed); got != "busy" {
		t.Errorf("the accepted slot is %s, want busy", got)
	}
	if got := w.state(srA); got != "booked" {
		t.Errorf("referral after the reschedule: %s, want booked", got)
	}
	if got := w.status("Task/" + reqA["id"].(string)); got != "completed" {
		t.Errorf("request after acceptance: %s, want completed", got)
	}
	// A's old slot (day 12) is earlier than B's booking (day 15).
	offerB := w.offers()[b]
	if offerB == nil || slotOf(offerB) != slotA {
		t.Fatalf("the slot A left was not offered to B: %v", w.offers())
	}
	w.consistent()
}

// TestDeclineAndExpiry: a declined offer goes to the next patient, an
// expired one (the hold sweeper releases it) too; a patient is not offered
// a slot they declined again, and their request goes on waiting.
func TestDeclineAndExpiry(t *testing.T) {
	t.Parallel()
	w := newWorld(t, app.Config{Offers: true})
	freed := w.slot("hs-derm-city", 4, 0)
	later := map[string]string{}
	for i, n := range []string{"a", "b", "c"} {
		later[n] = w.slot("hs-derm-city", 20, i*20)
	}
	other := w.book(w.filler, "", "hs-derm-city", freed)
	pat, req := map[string]string{}, map[string]string{}
	for i, n := range []string{"a", "b"} {
		pat[n] = w.patient(n)
		sr := w.referral(pat[n], "derm", []string{"urgent", "routine"}[i], 3)
		req[n] = "Task/" + w.requestEarlier(w.book(pat[n], sr, "hs-derm-city", later[n]))["id"].(string)
	}
	w.cancel(other)
	offerA := w.offers()[pat["a"]]
	if offerA == nil {
		t.Fatalf("no offer to a: %v", w.offers())
	}
	declined := w.must(200, "POST", "/Appointment/"+offerA["id"].(string)+"/$decline-offer", params("reason", "cannot make it"))
	if declined["status"] != "cancelled" {
		t.Errorf("declined offer: %v", declined["status"])
	}
	if got := w.status(req["a"]); got != "requested" {
		t.Errorf("a's request after declining: %s, want requested (waiting)", got)
	}
	comm := strings.TrimPrefix(sub(offerExt(offerA), "communication").(string), "")
	if got := w.status(comm); got != "stopped" {
		t.Errorf("announcement of a declined offer: %s, want stopped", got)
	}
	offerB := w.offers()[pat["b"]]
	if offerB == nil || slotOf(offerB) != freed {
		t.Fatalf("declined slot not offered to b: %v", w.offers())
	}
	// b lets it expire: the sweeper releases the hold; a declined it
	// already, so it waits for c, who asks now.
	w.expire("Appointment/" + offerB["id"].(string))
	if n, err := w.a.Booking.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if got := w.status("Appointment/" + offerB["id"].(string)); got != "cancelled" {
		t.Errorf("expired offer: %s", got)
	}
	if offers := w.offers(); len(offers) != 0 || w.status(freed) != "free" {
		t.Fatalf("after expiry, with nobody else waiting: offers %v, slot %s", offers, w.status(freed))
	}
	pat["c"] = w.patient("c")
	srC := w.referral(pat["c"], "derm", "routine", 1)
	apptC := w.book(pat["c"], srC, "hs-derm-city", later["c"])
	w.requestEarlier(apptC)
	// The slot is free already: it goes to c when it is freed again, or
	// published; a hold on it released does so.
	if _, err := w.a.Offers.OfferSlots(context.Background(), []string{strings.TrimPrefix(freed, "Slot/")}); err != nil {
		t.Fatal(err)
	}
	o := w.offers()[pat["c"]]
	if o == nil || slotOf(o) != freed {
		t.Fatalf("c was not offered the slot a and b passed on: %v", w.offers())
	}
	// c accepts by an update carrying an Idempotency-Key: one answer,
	// replayed; the booking replaced cancelled.
	o["status"] = "booked"
	for i, want := range []string{"", "true"} {
		b, _ := json.Marshal(o)
		req, _ := http.NewRequest("PUT", w.base+"/Appointment/"+o["id"].(string), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Idempotency-Key", "accept-c")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != want {
			t.Errorf("accepting by PUT, try %d: %d, replayed %q", i, resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
		}
	}
	if got := w.status(apptC); got != "cancelled" {
		t.Errorf("c's replaced booking is %s", got)
	}
	w.consistent()
}

// TestSlotIssueCleared: a referral on the slot-issues worklist is offered
// a newly published slot; accepting books it, clearing the slot issue,
// and $booking-outcomes counts it.
func TestSlotIssueCleared(t *testing.T) {
	t.Parallel()
	w := newWorld(t, app.Config{Offers: true})
	p := w.patient("p")
	sr := w.referral(p, "derm", "routine", 2)
	w.must(200, "POST", "/"+sr+"/$defer", params("reason", "no slots"))
	if got := w.state(sr); got != "slot-issue" {
		t.Fatalf("referral: %s", got)
	}
	slot := w.slot("hs-derm-city", 5, 0) // published: offered at once
	o := w.offers()[p]
	if o == nil || slotOf(o) != slot || sub(offerExt(o), "slot-issue") != true {
		t.Fatalf("offer to the slot issue: %v", o)
	}
	if got := w.state(sr); got != "slot-issue" {
		t.Errorf("the offer alone moved the referral to %s", got)
	}
	w.must(200, "POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+o["id"].(string))))
	if got := w.state(sr); got != "booked" {
		t.Errorf("referral after accepting: %s, want booked", got)
	}
	out := w.must(200, "GET", "/$booking-outcomes?service=HealthcareService/hs-derm-city", nil)
	got := ""
	for _, row := range asList(out["parameter"]) {
		for _, part := range asList(row.(map[string]any)["part"]) {
			if m := part.(map[string]any); m["name"] == "slot-issues-cleared-by-offer" {
				got = strings.TrimSpace(strings.Trim(string(mustMarshal(m["valueInteger"])), `"`))
			}
		}
	}
	if got != "1" {
		t.Errorf("slot-issues-cleared-by-offer = %q, want 1: %v", got, out)
	}
	w.consistent()
}

// TestRequests: $request-earlier is idempotent, refused for what cannot
// move earlier, and a request is withdrawn by cancelling its Task, which
// cancels its offer; clients cannot make or reshape requests.
func TestRequests(t *testing.T) {
	t.Parallel()
	w := newWorld(t, app.Config{Offers: true})
	freed, mine := w.slot("hs-derm-city", 4, 0), w.slot("hs-derm-city", 20, 0)
	other := w.book(w.filler, "", "hs-derm-city", freed)
	p := w.patient("p")
	sr := w.referral(p, "derm", "routine", 2)
	appt := w.book(p, sr, "hs-derm-city", mine)

	status, first := w.do("POST", "/"+appt+"/$request-earlier", params("reason", "sooner"))
	if status != 201 || first["resourceType"] != "Task" {
		t.Fatalf("$request-earlier: %d %v", status, first)
	}
	status, again := w.do("POST", "/"+appt+"/$request-earlier", params("reason", "sooner"))
	if status != 200 || again["id"] != first["id"] || again["meta"].(map[string]any)["versionId"] != first["meta"].(map[string]any)["versionId"] {
		t.Errorf("asked again: %d %v", status, again)
	}
	if n := len(w.search("/Task?code=" + offer.CodeSystem + "|" + offer.TaskCode)); n != 1 {
		t.Errorf("%d requests after asking twice", n)
	}
	for _, c := range []struct {
		name, path string
		body       map[string]any
		status     int
	}{
		{"bad date", "/" + appt + "/$request-earlier", params("latest", "next tuesday"), 400},
		{"not booked", "/" + other + "/$request-earlier", nil, 0},
		{"no referral", "/" + other + "/$request-earlier", nil, 422},
		{"unknown appointment", "/Appointment/nope/$request-earlier", nil, 404},
		{"decline what is no offer", "/" + appt + "/$decline-offer", nil, 422},
		{"a client-made request", "/Task", map[string]any{"resourceType": "Task", "status": "requested", "intent": "order",
			"code": map[string]any{"coding": []any{map[string]any{"system": offer.CodeSystem, "code": offer.TaskCode}}}, "focus": ref(appt)}, 422},
	} {
		if c.status == 0 {
			continue
		}
		body := c.body
		if body == nil {
			body = params()
		}
		if status, out := w.do("POST", c.path, body); status != c.status {
			t.Errorf("%s: %d, want %d: %v", c.name, status, c.status, out)
		}
	}
	w.cancel(other)
	o := w.offers()[p]
	if o == nil {
		t.Fatal("no offer")
	}
	// What offers build is valid FHIR, and the operations are published.
	for _, res := range []map[string]any{o, w.must(200, "GET", "/Task/"+first["id"].(string), nil),
		w.must(200, "GET", "/"+sub(offerExt(o), "communication").(string), nil)} {
		out := w.must(200, "POST", "/"+res["resourceType"].(string)+"/$validate", res)
		for _, is := range asList(out["issue"]) {
			if sev := is.(map[string]any)["severity"]; sev == "error" || sev == "fatal" {
				t.Errorf("%s/%s is not valid: %v", res["resourceType"], res["id"], is)
			}
		}
	}
	published := fmt.Sprint(w.must(200, "GET", "/metadata", nil))
	for _, op := range []string{"OperationDefinition/Appointment-request-earlier", "OperationDefinition/Appointment-decline-offer"} {
		if !strings.Contains(published, op) {
			t.Errorf("the CapabilityStatement does not name %s", op)
		}
	}
	task := w.must(200, "GET", "/Task/"+first["id"].(string), nil)
	task["priority"] = "stat"
	if status, _ := w.do("PUT", "/Task/"+first["id"].(string), task); status != 422 {
		t.Errorf("reshaping a request: %d, want 422", status)
	}
	delete(task, "priority")
	task["status"] = "cancelled"
	task["statusReason"] = map[string]any{"text": "found another date"}
	w.must(200, "PUT", "/Task/"+first["id"].(string), task)
	if got := w.status("Appointment/" + o["id"].(string)); got != "cancelled" {
		t.Errorf("the offer of a withdrawn request is %s, want cancelled", got)
	}
	if got := w.status(freed); got != "free" {
		t.Errorf("its slot is %s, want free", got)
	}
	w.consistent()
}

// TestOffersOff: with offers off, requests are recorded but a freed slot
// stays free for anyone to book.
func TestOffersOff(t *testing.T) {
	t.Parallel()
	w := newWorld(t, app.Config{})
	freed, mine := w.slot("hs-derm-city", 4, 0), w.slot("hs-derm-city", 20, 0)
	other := w.book(w.filler, "", "hs-derm-city", freed)
	p := w.patient("p")
	w.requestEarlier(w.book(p, w.referral(p, "derm", "urgent", 2), "hs-derm-city", mine))
	w.cancel(other)
	if offers := w.offers(); len(offers) != 0 || w.status(freed) != "free" {
		t.Errorf("offers off: offers %v, freed slot %s", offers, w.status(freed))
	}
}
