package offer_test

import (
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/offer"
)

// waiterSpec is a patient waiting for an earlier slot in TestOfferOrder.
type waiterSpec struct {
	name      string
	specialty string // derm or cardio
	priority  string // routine, urgent or 2ww
	ago       int    // the referral was made ago days ago
	booked    int    // their booking's day from now; 0: on the slot-issues worklist instead
	latest    string // the latest acceptable start they asked for, if any
}

// TestOfferOrder: a cancellation frees a dermatology slot four days
// ahead; the first waiting patient in order gets the offer: two-week-wait
// before urgent before routine, oldest referral first, skipping referrals
// the slot does not suit, patients for whom it is not earlier, and
// windows it falls outside; referrals on the slot-issues worklist wait too.
func TestOfferOrder(t *testing.T) {
	rows := []struct {
		name    string
		waiting []waiterSpec
		want    string
	}{
		{"two-week-wait before urgent before routine", []waiterSpec{
			{"routine", "derm", "routine", 30, 20, ""}, {"urgent", "derm", "urgent", 20, 20, ""}, {"tww", "derm", "2ww", 1, 12, ""}}, "tww"},
		{"urgent before routine", []waiterSpec{
			{"routine", "derm", "routine", 30, 20, ""}, {"urgent", "derm", "urgent", 1, 20, ""}}, "urgent"},
		{"oldest referral first", []waiterSpec{
			{"newer", "derm", "routine", 3, 20, ""}, {"oldest", "derm", "routine", 10, 21, ""}, {"newest", "derm", "routine", 1, 22, ""}}, "oldest"},
		{"unsuitable referral skipped", []waiterSpec{
			{"cardio", "cardio", "2ww", 1, 9, ""}, {"derm", "derm", "routine", 5, 20, ""}}, "derm"},
		{"not earlier than the current booking skipped", []waiterSpec{
			{"sooner", "derm", "2ww", 1, 2, ""}, {"later", "derm", "routine", 5, 20, ""}}, "later"},
		{"outside the window asked for skipped", []waiterSpec{
			{"window", "derm", "urgent", 5, 20, "day+2"}, {"open", "derm", "routine", 5, 20, ""}}, "open"},
		{"slot issue waits too", []waiterSpec{
			{"request", "derm", "routine", 30, 20, ""}, {"slot-issue", "derm", "urgent", 2, 0, ""}}, "slot-issue"},
		{"nobody suits: no offer", []waiterSpec{
			{"sooner", "derm", "routine", 1, 2, ""}, {"cardio", "cardio", "routine", 5, 20, ""}}, ""},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel() // each row has a server of its own
			w := newWorld(t, app.Config{Offers: true})
			// Every slot is published before anyone waits (a new free
			// slot is offered too): the waiters' bookings, and the one
			// someone else holds until the test frees it.
			freed := w.slot("hs-derm-city", 4, 0)
			other := w.book(w.filler, "", "hs-derm-city", freed)
			theirs := map[string]string{}
			for i, s := range row.waiting {
				service := map[string]string{"derm": "hs-derm-city", "cardio": "hs-cardio"}[s.specialty]
				if s.booked != 0 {
					theirs[s.name] = w.slot(service, s.booked, i+1)
				}
			}
			patients := map[string]string{}
			for _, s := range row.waiting {
				p := w.patient(s.name)
				patients[p] = s.name
				sr := w.referral(p, s.specialty, s.priority, s.ago)
				if s.booked == 0 {
					w.must(200, "POST", "/"+sr+"/$defer", params("reason", "no slots"))
					continue
				}
				service := map[string]string{"derm": "hs-derm-city", "cardio": "hs-cardio"}[s.specialty]
				appt := w.book(p, sr, service, theirs[s.name])
				kv := []any{"reason", "sooner please"}
				if s.latest == "day+2" {
					kv = append(kv, "latest", w.day(2))
				}
				w.requestEarlier(appt, kv...)
			}
			if got := len(w.offers()); got != 0 {
				t.Fatalf("%d offers before any slot was freed", got)
			}
			w.cancel(other)
			offers := w.offers()
			if row.want == "" {
				if len(offers) != 0 || w.status(freed) != "free" {
					t.Fatalf("offers %v; slot %s", offers, w.status(freed))
				}
				return
			}
			if len(offers) != 1 {
				t.Fatalf("%d offers, want 1 (to %s)", len(offers), row.want)
			}
			for p, a := range offers {
				if patients[p] != row.want {
					t.Errorf("offered to %s, want %s", patients[p], row.want)
				}
				if slotOf(a) != freed {
					t.Errorf("offered %s, want %s", slotOf(a), freed)
				}
				if got := w.status(freed); got != "busy-tentative" {
					t.Errorf("the offered slot is %s, want busy-tentative (held)", got)
				}
				comms := w.search("/Communication?category=" + offer.CodeSystem + "|" + offer.CommunicationCategory + "&recipient=" + p)
				if len(comms) != 1 || comms[0]["status"] != "preparation" ||
					asList(comms[0]["about"])[0].(map[string]any)["reference"] != "Appointment/"+a["id"].(string) {
					t.Errorf("announcement: %v", comms)
				}
			}
			w.consistent()
		})
	}
}

// day returns the date days from now, as a FHIR date (UTC).
func (w *world) day(days int) string {
	return nowUTC().AddDate(0, 0, days).Format("2006-01-02")
}
