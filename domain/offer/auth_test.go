package offer_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// TestOfferAuthorisation: with authorisation on, a patient asks for an
// earlier slot for their own booking with their own token and accepts
// their offer; another patient can neither ask for them, nor see, accept
// or decline their offer; the call centre asks on a patient's behalf.
func TestOfferAuthorisation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, app.Config{Auth: true, Offers: true})
	mint := func(o devserver.TokenOptions) string {
		tok, err := devserver.MintToken(w.a.Config.Data, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var bundle struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	raw, err := os.ReadFile("testdata/directory.json")
	if err != nil || json.Unmarshal(raw, &bundle) != nil {
		t.Fatal(err)
	}
	var dir []map[string]any
	for _, e := range bundle.Entry {
		dir = append(dir, e.Resource)
	}
	apptest.Seed(t, w.a, dir...)
	setup := w.as(mint(devserver.TokenOptions{Client: "test-setup", Scope: "system/*.cruds"}))
	setup.filler = setup.patient("filler")
	freed, slotA, slotB := setup.slot("hs-derm-city", 4, 0), setup.slot("hs-derm-city", 12, 0), setup.slot("hs-derm-city", 14, 0)
	other := setup.book(setup.filler, "", "hs-derm-city", freed)
	a, b := setup.patient("a"), setup.patient("b")
	apptA := setup.book(a, setup.referral(a, "derm", "routine", 3), "hs-derm-city", slotA)
	apptB := setup.book(b, setup.referral(b, "derm", "routine", 1), "hs-derm-city", slotB)

	asA := w.as(mint(devserver.TokenOptions{Client: devserver.ClientPatientApp, Patient: "a", Scope: "patient/*.cruds"}))
	asB := w.as(mint(devserver.TokenOptions{Client: devserver.ClientPatientApp, Patient: "b", Scope: "patient/*.cruds"}))
	callCentre := w.as(mint(devserver.TokenOptions{Client: devserver.ClientCallCentre, Scope: "user/*.cruds"}))

	if status, _ := asB.do("POST", "/"+apptA+"/$request-earlier", params()); status != 404 && status != 403 {
		t.Errorf("another patient asks for my appointment: %d, want 404 or 403", status)
	}
	asA.must(201, "POST", "/"+apptA+"/$request-earlier", params("reason", "sooner"))
	callCentre.must(201, "POST", "/"+apptB+"/$request-earlier", params())
	setup.cancel(other)

	offers := setup.offers()
	offerA := offers[a]
	if offerA == nil {
		t.Fatalf("no offer to a (older referral): %v", offers)
	}
	id := "Appointment/" + offerA["id"].(string)
	before := apptest.Versions(t, w.a, "Appointment", "Slot", "Task")
	for _, c := range []struct {
		name, method, path string
		body               any
	}{
		{"read", "GET", "/" + id, nil},
		{"accept", "POST", "/Appointment/$book", params("appointment-reference", ref(id))},
		{"decline", "POST", "/" + id + "/$decline-offer", params()},
	} {
		if status, out := asB.do(c.method, c.path, c.body); status < 400 || status >= 500 {
			t.Errorf("another patient, %s my offer: %d %v", c.name, status, out)
		}
	}
	for _, r := range asB.search("/Appointment?status=pending") {
		if r["id"] == offerA["id"] {
			t.Errorf("another patient's search shows my offer")
		}
	}
	if after := apptest.Versions(t, w.a, "Appointment", "Slot", "Task"); !equal(before, after) {
		t.Errorf("another patient's attempts changed something")
	}
	if asA.must(200, "GET", "/"+id, nil)["status"] != "pending" {
		t.Errorf("my offer is not mine to see")
	}
	asA.must(200, "POST", "/Appointment/$book", params("appointment-reference", ref(id)))
	if got := setup.status(apptA); got != "cancelled" {
		t.Errorf("my old booking is %s after accepting", got)
	}
	// B (booked later) is offered the slot A left, and withdraws with
	// their own token (patients cannot read or write Tasks).
	offerB := setup.offers()[b]
	if offerB == nil || slotOf(offerB) != slotA {
		t.Fatalf("the slot A left was not offered to B: %v", setup.offers())
	}
	if status, _ := asA.do("POST", "/"+apptB+"/$request-earlier", params("withdraw", "true")); status != 404 && status != 403 {
		t.Errorf("A withdraws B's request: %d", status)
	}
	task := asB.must(200, "POST", "/"+apptB+"/$request-earlier", map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "withdraw", "valueBoolean": true}, map[string]any{"name": "reason", "valueString": "booked elsewhere"}}})
	if task["status"] != "cancelled" || setup.status("Appointment/"+offerB["id"].(string)) != "cancelled" {
		t.Errorf("withdrawn: request %v, offer %s", task["status"], setup.status("Appointment/"+offerB["id"].(string)))
	}
	if again := asB.must(200, "POST", "/"+apptB+"/$request-earlier", params("withdraw", "true")); again["id"] != task["id"] {
		t.Errorf("withdrawn twice: %v", again)
	}
	setup.consistent()
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
