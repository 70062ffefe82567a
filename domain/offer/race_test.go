package offer_test

import (
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// TestOffersRaceOrdinaryBookings: slots freed one after another are
// fought over, through HTTP and at once, by the offers made for waiting
// patients (who accept or decline them, which frees and offers more) and
// by ordinary bookings of other patients. Whoever wins, no slot is ever
// held by two appointments, no patient holds two offers, every patient
// keeps exactly one booking, and signpost check finds nothing amiss.
func TestOffersRaceOrdinaryBookings(t *testing.T) {
	w := newWorld(t, app.Config{Offers: true})
	const contested, waiting, ordinary = 6, 6, 4
	var slots, fillers []string
	for i := 0; i < contested; i++ {
		slots = append(slots, w.slot("hs-derm-city", 3+i, 0))
	}
	for _, s := range slots {
		fillers = append(fillers, w.book(w.filler, "", "hs-derm-city", s))
	}
	var own []string
	for i := 0; i < waiting; i++ {
		own = append(own, w.slot("hs-derm-city", 20+i, 0))
	}
	var waiters, others []string
	for i := 0; i < waiting; i++ {
		p := w.patient(fmt.Sprintf("w%d", i))
		sr := w.referral(p, "derm", []string{"routine", "urgent"}[i%2], 1+i)
		w.requestEarlier(w.book(p, sr, "hs-derm-city", own[i]))
		waiters = append(waiters, p)
	}
	for i := 0; i < ordinary; i++ {
		others = append(others, w.patient(fmt.Sprintf("o%d", i)))
	}

	var wg sync.WaitGroup
	var freeing sync.WaitGroup
	var booked, accepted, refused atomic.Int64
	errs := make(chan error, 1000)
	for _, appt := range fillers {
		wg.Add(1)
		freeing.Add(1)
		go func() {
			defer wg.Done()
			defer freeing.Done()
			_, a, err := w.try("GET", "/"+appt, nil)
			if err != nil {
				errs <- err
				return
			}
			a["status"] = "cancelled"
			a["cancelationReason"] = map[string]any{"text": "patient cancelled"}
			if status, out, err := w.try("PUT", "/"+appt, a); err != nil || status != 200 {
				errs <- fmt.Errorf("cancelling %s: %d %v %v", appt, status, out, err)
			}
		}()
	}
	for _, p := range others { // ordinary bookings: any contested slot, until one is theirs
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 4; round++ {
				for _, s := range slots {
					a := map[string]any{"resourceType": "Appointment", "status": "booked", "slot": []any{ref(s)},
						"participant": []any{map[string]any{"actor": ref(p), "status": "accepted"},
							map[string]any{"actor": ref("HealthcareService/hs-derm-city"), "status": "accepted"}}}
					status, out, err := w.try("POST", "/Appointment", a)
					switch {
					case err != nil:
						errs <- err
						return
					case status == 201:
						booked.Add(1)
						return
					case status == 409:
						refused.Add(1)
					default:
						errs <- fmt.Errorf("ordinary booking: %d %v", status, out)
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { freeing.Wait(); close(done) }()
	for i, p := range waiters { // waiting patients answer their offers
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				status, out, err := w.try("GET", "/Appointment?status=pending&patient="+url.QueryEscape(p), nil)
				if err != nil || status != 200 {
					errs <- fmt.Errorf("polling offers: %d %v", status, err)
					return
				}
				var offer string
				for _, e := range asList(out["entry"]) {
					if r := e.(map[string]any)["resource"].(map[string]any); offerExt(r) != nil {
						offer = "Appointment/" + r["id"].(string)
					}
				}
				if offer == "" {
					select {
					case <-done:
						return
					default:
						time.Sleep(5 * time.Millisecond) // polling for an offer, with a deadline
						continue
					}
				}
				if i%2 == 1 { // odd patients decline once, then accept
					w.try("POST", "/"+offer+"/$decline-offer", params())
					i++
					continue
				}
				status, out, err = w.try("POST", "/Appointment/$book", params("appointment-reference", ref(offer)))
				if err != nil || (status != 200 && status != 409) {
					errs <- fmt.Errorf("accepting %s: %d %v %v", offer, status, out, err)
				}
				if status == 200 {
					accepted.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("ordinary bookings %d (409s %d), offers accepted %d", booked.Load(), refused.Load(), accepted.Load())

	live := "pending,booked,arrived,checked-in,fulfilled,noshow"
	for _, s := range append(append([]string{}, slots...), own...) {
		holders := w.search("/Appointment?slot=" + s + "&status=" + live)
		if len(holders) > 1 {
			t.Errorf("%s is held by %d appointments", s, len(holders))
		}
		want := "free"
		if len(holders) == 1 {
			want = map[string]string{"pending": "busy-tentative", "booked": "busy"}[holders[0]["status"].(string)]
		}
		if got := w.status(s); got != want {
			t.Errorf("%s is %s, held by %d, want %s", s, got, len(holders), want)
		}
	}
	w.offers() // fails on a patient with two offers
	made := 0
	for _, a := range w.search("/Appointment?_count=1000") {
		if offerExt(a) != nil {
			made++
		}
	}
	if made < contested-ordinary { // the ordinary bookings take one slot each at most
		t.Errorf("%d offers made, want at least %d", made, contested-ordinary)
	}
	for _, p := range waiters {
		if n := len(w.search("/Appointment?status=booked&patient=" + url.QueryEscape(p))); n != 1 {
			t.Errorf("%s has %d bookings, want 1", p, n)
		}
	}
	w.consistent()
}
