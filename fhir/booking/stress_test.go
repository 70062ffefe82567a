package booking_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// lastSunday returns the last Sunday of month in year, as a date.
func lastSunday(year int, month time.Month) time.Time {
	d := time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC)
	for d.Weekday() != time.Sunday {
		d = d.AddDate(0, 0, -1)
	}
	return d
}

// TestClockChangeWindows: a date-only $find window over the clock-change
// Sundays returns exactly the half-hour slots that start and end on that
// London day: 46 in March (23 hours), 50 in October (25 hours).
func TestClockChangeWindows(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	year := time.Now().Year() + 1
	s := newServer(t, app.Config{})
	s.basic()
	for _, tt := range []struct {
		month time.Month
		want  int
	}{{time.March, 46}, {time.October, 50}} {
		day := lastSunday(year, tt.month)
		from := time.Date(day.Year(), day.Month(), day.Day()-1, 20, 0, 0, 0, london)
		to := time.Date(day.Year(), day.Month(), day.Day()+1, 4, 0, 0, 0, london)
		var slots []string
		want := 0
		for st := from; st.Before(to); st = st.Add(30 * time.Minute) {
			local := st.In(london)
			slots = append(slots, `{"resourceType":"Slot","id":"`+fmt.Sprintf("%s-%d", tt.month, st.Unix())+
				`","schedule":{"reference":"Schedule/sc"},"status":"free","start":"`+local.Format(time.RFC3339)+
				`","end":"`+local.Add(30*time.Minute).Format(time.RFC3339)+`"}`)
			end := local.Add(30 * time.Minute).In(london)
			if local.Format("2006-01-02") == day.Format("2006-01-02") && (end.Format("2006-01-02") == day.Format("2006-01-02") || end.Format("15:04") == "00:00") {
				want++
			}
		}
		s.put(slots...)
		if want != tt.want {
			t.Fatalf("%v: the fixture has %d slots on the day, want %d", tt.month, want, tt.want)
		}
		d := day.Format("2006-01-02")
		got := entries(t, must(t, "$find", s.do("POST", "/Appointment/$find", params("healthcare-service", ref("HealthcareService/hs"),
			"start", d, "end", d, "_count", "200")), 200))
		if len(got) != tt.want {
			t.Errorf("%s: $find start=end=%s gave %d slots, want %d", tt.month, d, len(got), tt.want)
			continue
		}
		first, _ := time.Parse(time.RFC3339, got[0]["start"].(string))
		last, _ := time.Parse(time.RFC3339, got[len(got)-1]["end"].(string))
		if f := first.In(london).Format("2006-01-02 15:04"); f != d+" 00:00" {
			t.Errorf("%s: first slot starts %s London time, want %s 00:00", tt.month, f, d)
		}
		if l := last.In(london).Format("2006-01-02 15:04"); l != day.AddDate(0, 0, 1).Format("2006-01-02")+" 00:00" {
			t.Errorf("%s: last slot ends %s London time, want midnight", tt.month, l)
		}
	}
}

// TestStress: 64 clients make booking attempts on 2,000 slots, cancelling
// and rescheduling some of what they book. Afterwards the checker finds
// nothing and every live appointment has exactly one busy slot.
//
// It runs the size, 20,000 attempts (a few seconds on 2 cores);
// -short runs 2,000.
func TestStress(t *testing.T) {
	const clients, slots = 64, 2000
	attempts := 20000
	if testing.Short() {
		attempts = 2000
	}
	s := newServer(t, app.Config{})
	s.basic()
	seedSlots(s, slots, 40)
	var next, created, conflicts, cancels, reschedules atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for next.Add(1) <= int64(attempts) {
				r := s.do("POST", "/Appointment", booked("p1", slotID(rng.IntN(slots))))
				switch r.status {
				case http.StatusConflict:
					conflicts.Add(1)
					continue
				case http.StatusCreated:
					created.Add(1)
				default:
					t.Errorf("book: %d %s", r.status, r.body)
					return
				}
				id := r.json()["id"].(string)
				switch x := rng.IntN(10); {
				case x < 2:
					p := s.do("PATCH", "/Appointment/"+id, `[{"op":"replace","path":"/status","value":"cancelled"},`+
						`{"op":"add","path":"/cancelationReason","value":{"text":"stress"}}]`, "Content-Type", "application/json-patch+json")
					if p.status != 200 {
						t.Errorf("cancel: %d %s", p.status, p.body)
					}
					cancels.Add(1)
				case x < 4:
					p := s.do("POST", "/Appointment/"+id+"/$reschedule", params("slot", ref("Slot/"+slotID(rng.IntN(slots)))))
					if p.status != 200 && p.status != 409 {
						t.Errorf("reschedule: %d %s", p.status, p.body)
					}
					if p.status == 200 {
						reschedules.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	t.Logf("%d attempts by %d clients in %v: %d booked, %d conflicts, %d cancelled, %d rescheduled",
		attempts, clients, d.Round(time.Millisecond), created.Load(), conflicts.Load(), cancels.Load(), reschedules.Load())
	sum := s.check()
	if sum.LiveAppointments != sum.BusySlots {
		t.Errorf("%d live appointments but %d busy slots", sum.LiveAppointments, sum.BusySlots)
	}
	if want := created.Load() - cancels.Load(); int64(sum.LiveAppointments) != want {
		t.Errorf("%d live appointments, want %d booked − %d cancelled = %d", sum.LiveAppointments, created.Load(), cancels.Load(), want)
	}
}

func slotID(i int) string { return fmt.Sprintf("x%d", i) }

// seedSlots creates n ten-minute slots, from tomorrow 09:00 UTC, spread
// over services schedules (service hs<k>, schedule sc<k>), slot i in
// schedule i mod services.
func seedSlots(s *server, n, services int) {
	t0 := tomorrow9()
	var seed []string
	for k := range services {
		seed = append(seed, service(fmt.Sprintf("hs%d", k)), schedule(fmt.Sprintf("sc%d", k), fmt.Sprintf("hs%d", k)))
	}
	s.put(seed...)
	for from := 0; from < n; from += 500 {
		seed = seed[:0]
		for i := from; i < min(n, from+500); i++ {
			k := i % services
			seed = append(seed, slotAt(slotID(i), fmt.Sprintf("sc%d", k), t0.Add(time.Duration(i/services)*10*time.Minute), 10*time.Minute))
		}
		s.put(seed...)
	}
}
