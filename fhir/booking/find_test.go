package booking_test

import (
	"github.com/signpost-fhir/signpost/app"
	"slices"
	"testing"
	"time"
)

// TestFindAcrossWindows: $find reads free slots window by window in time;
// its answer is still the earliest free slots of the whole request window,
// in order (start, then id), cut at _count, skipping busy slots, slots
// ending after the window and days with nothing free.
func TestFindAcrossWindows(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	at := func(day int, hm string) time.Time {
		d, _ := time.ParseDuration(hm)
		return t0.AddDate(0, 0, day).Add(d)
	}
	s.put(
		slotAt("a3", "sc", at(0, "2h"), 20*time.Minute),
		slotAt("a1", "sc", at(0, "0h"), 20*time.Minute),
		slotAt("a2", "sc", at(0, "1h"), 20*time.Minute),
		slotAt("b1", "sc", at(3, "0h"), 20*time.Minute),
		slotAt("b0", "sc", at(3, "0h"), 20*time.Minute), // the same start as b1: id breaks the tie
		slotAt("c1", "sc", at(12, "0h"), 20*time.Minute),
		slotAt("c2", "sc", at(12, "3h"), 20*time.Minute),
		slotAt("d1", "sc", at(26, "0h"), 20*time.Minute),
		slotAt("z1", "sc", at(40, "0h"), 20*time.Minute), // after the default 28 days
	)
	busy := s.read("Slot", "b1")
	busy["status"] = "busy"
	must(t, "PUT busy slot", s.do("PUT", "/Slot/b1", busy), 200)
	find := func(query string) []string {
		t.Helper()
		r := s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs"+query, nil)
		if query == "&_count=5" { // by POST: a GET query's _count is the API's
			r = s.do("POST", "/Appointment/$find", params("healthcare-service", ref("HealthcareService/hs"), "_count", "5"))
		}
		var got []string
		for _, a := range entries(t, must(t, "$find", r, 200)) {
			got = append(got, slotOf(a))
		}
		return got
	}
	day := func(d int) string { return t0.AddDate(0, 0, d).Format("2006-01-02") }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"a1", "a2", "a3", "b0", "c1", "c2", "d1"}},
		{"&_count=5", []string{"a1", "a2", "a3", "b0", "c1"}},
		{"&start=" + day(1) + "&end=" + day(12), []string{"b0", "c1", "c2"}},
		{"&start=" + day(12) + "&end=" + day(45), []string{"c1", "c2", "d1", "z1"}},
		{"&start=" + day(4) + "&end=" + day(11), nil},
	} {
		if got := find(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("$find%s = %v, want %v", tc.query, got, tc.want)
		}
	}
}
