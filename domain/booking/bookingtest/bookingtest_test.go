package bookingtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestVerify: Verify reports each acknowledged outcome the server does not
// show, and nothing else.
func TestVerify(t *testing.T) {
	status := map[string]string{
		"kept": "booked", "kept-wrong": "cancelled",
		"cancelled": "cancelled", "cancel-lost": "booked",
		"moved-from": "cancelled", "moved-to": "booked",
		"moved-from-lost":  "booked", // its new one is missing too
		"unsettled-booked": "booked", "unsettled-cancelled": "cancelled", "unsettled-odd": "noshow",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/fhir/Appointment/")
		st, ok := status[id]
		if r.Method != "GET" || !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"resourceType":"Appointment","id":%q,"status":%q}`, id, st)
	}))
	defer srv.Close()
	res := &Result{
		Appointments: []string{"kept", "kept-wrong", "cancelled", "cancel-lost", "moved-from", "moved-from-lost",
			"unsettled-booked", "unsettled-cancelled", "unsettled-odd", "never-stored"},
		Cancels:     []string{"cancelled", "cancel-lost"},
		Reschedules: []Reschedule{{From: "moved-from", To: "moved-to"}, {From: "moved-from-lost", To: "moved-to-lost"}},
		Unsettled:   []string{"unsettled-booked", "unsettled-cancelled", "unsettled-odd"},
	}
	var got []string
	for _, err := range (Workload{}).Verify(context.Background(), srv.URL+"/fhir", res) {
		got = append(got, regexp.MustCompile(`Appointment/[^ :,]+`).FindString(err.Error()))
	}
	slices.Sort(got)
	want := []string{"Appointment/cancel-lost", "Appointment/kept-wrong", "Appointment/moved-from-lost",
		"Appointment/moved-to-lost", "Appointment/never-stored", "Appointment/unsettled-odd"}
	if !slices.Equal(got, want) {
		t.Errorf("Verify reported %v, want %v", got, want)
	}
}

// TestServerVanishes: with ServerMayVanish, a request whose connection is
// dropped ends its client quietly and is never counted as acknowledged;
// without, it is an error of the run.
func TestServerVanishes(t *testing.T) {
	for _, vanish := range []bool{true, false} {
		t.Run(fmt.Sprintf("ServerMayVanish=%v", vanish), func(t *testing.T) {
			var n atomic.Int64
			var mu sync.Mutex
			var answered []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := n.Add(1)
				if i > 40 { // gone: drop the connection without an answer
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				switch {
				case r.Method == "POST" && r.URL.Path == "/fhir/Appointment":
					id := fmt.Sprintf("a%d", i)
					mu.Lock()
					answered = append(answered, id)
					mu.Unlock()
					w.WriteHeader(http.StatusCreated)
					fmt.Fprintf(w, `{"resourceType":"Appointment","id":%q,"status":"booked"}`, id)
				case r.Method == "PATCH":
					fmt.Fprint(w, `{"resourceType":"Appointment","status":"cancelled"}`)
				default: // $reschedule: the new slot is taken
					w.WriteHeader(http.StatusConflict)
				}
			}))
			defer srv.Close()
			w := Workload{Slots: 100, Services: 4, Clients: 8, ServerMayVanish: vanish}
			res := w.Start(context.Background(), srv.URL+"/fhir").Wait()
			if res.Unanswered != w.Clients {
				t.Errorf("%d requests unanswered, want one per client (%d)", res.Unanswered, w.Clients)
			}
			if got := len(res.Errors) > 0; got == vanish {
				t.Errorf("errors %v, want errors: %v", res.Errors, !vanish)
			}
			for _, id := range res.Appointments {
				if !slices.Contains(answered, id) {
					t.Errorf("Appointment/%s counted as acknowledged but never answered", id)
				}
			}
			if len(res.Appointments) != res.Booked || res.Booked+res.Conflicts != res.Attempts {
				t.Errorf("tallies disagree: %d ids, %v", len(res.Appointments), res.Counts)
			}
		})
	}
}
