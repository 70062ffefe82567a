package booking_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking/bookingtest"
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

// TestStress runs issue 4's stress workload (bookingtest.Issue4: 64
// clients making 20,000 booking attempts on 2,000 slots over 40 services,
// cancelling and rescheduling some of what they book) against the
// in-process server. Afterwards the checker finds nothing, every live
// appointment has exactly one busy slot, the live appointments are those
// booked less those cancelled (a reschedule cancels one and books one),
// and every acknowledged outcome reads back.
//
// It runs the issue's size (a few seconds on 2 cores); -short runs 2,000
// attempts.
func TestStress(t *testing.T) {
	w := bookingtest.Issue4()
	if testing.Short() {
		w.Attempts = 2000
	}
	s := newServer(t, app.Config{})
	ctx := t.Context()
	if err := w.Seed(ctx, s.base); err != nil {
		t.Fatal(err)
	}
	res := w.Start(ctx, s.base).Wait()
	t.Logf("%d clients in %v: %v", w.Clients, res.Elapsed.Round(time.Millisecond), res.Counts)
	for _, err := range res.Errors {
		t.Error(err)
	}
	if res.Attempts != w.Attempts || res.Booked+res.Conflicts != w.Attempts {
		t.Errorf("%d attempts answered (%d booked + %d conflicts), want %d", res.Attempts, res.Booked, res.Conflicts, w.Attempts)
	}
	if res.Booked == 0 || res.Cancelled == 0 || res.Rescheduled == 0 {
		t.Errorf("the run did not book, cancel and reschedule: %v", res.Counts)
	}
	sum := s.check()
	if sum.LiveAppointments != sum.BusySlots {
		t.Errorf("%d live appointments but %d busy slots", sum.LiveAppointments, sum.BusySlots)
	}
	if want := res.Booked - res.Cancelled; sum.LiveAppointments != want {
		t.Errorf("%d live appointments, want %d booked − %d cancelled = %d", sum.LiveAppointments, res.Booked, res.Cancelled, want)
	}
	if want := res.Booked + res.Rescheduled; sum.Appointments != want {
		t.Errorf("%d appointments, want %d booked + %d rescheduled (each books a new one) = %d", sum.Appointments, res.Booked, res.Rescheduled, want)
	}
	for _, err := range w.Verify(ctx, s.base, res) {
		t.Error(err)
	}
	live, busy, err := w.Census(ctx, s.base)
	if err != nil {
		t.Fatal(err)
	}
	if live != sum.LiveAppointments || busy != sum.BusySlots {
		t.Errorf("search counts %d live appointments and %d busy slots, the checker %d and %d", live, busy, sum.LiveAppointments, sum.BusySlots)
	}
}

func slotID(i int) string { return bookingtest.SlotID(i) }

// seedSlots creates the stress workload's fixtures with n slots over
// services services (bookingtest.Workload.Resources: service hs<k>,
// schedule sc<k>, slot i in schedule i mod services), through the repo.
func seedSlots(s *server, n, services int) {
	all := bookingtest.Workload{Slots: n, Services: services}.Resources(tomorrow9())
	for from := 0; from < len(all); from += 500 {
		var batch []string
		for _, raw := range all[from:min(len(all), from+500)] {
			batch = append(batch, string(raw))
		}
		s.put(batch...)
	}
}
