package booking_test

import (
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// TestPlanningHorizon: a schedule's planning horizon is the period its
// slots cover, so a free slot outside it could never be booked and is
// never offered. Every write path refuses a future free slot outside the
// horizon (new, moved, or freed by a client) and a horizon that would leave
// one outside; busy and past slots are not held to it, so a provider can
// record history and roll its horizon on.
func TestPlanningHorizon(t *testing.T) {
	s := newServer(t, app.Config{})
	t0 := tomorrow9()
	past := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)
	horizon := func(from, to time.Time) string {
		return `,"planningHorizon":{"start":"` + from.Format(time.RFC3339) + `","end":"` + to.Format(time.RFC3339) + `"}`
	}
	s.put(service("hs"), schedule("sc-h", "hs", horizon(past.Add(-time.Hour), t0.Add(4*time.Hour))), schedule("sc-open", "hs"))
	slot := func(id, sched, status string, start time.Time) string {
		return `{"resourceType":"Slot","id":"` + id + `","schedule":{"reference":"Schedule/` + sched + `"},"status":"` + status +
			`","start":"` + start.Format(time.RFC3339) + `","end":"` + start.Add(15*time.Minute).Format(time.RFC3339) + `"}`
	}
	steps := []struct {
		name       string
		path, body string
		status     int
		expression string // of the refusal
	}{
		{"free slot inside", "/Slot/in", slot("in", "sc-h", "free", t0), 201, ""},
		{"free slot after the end", "/Slot/late", slot("late", "sc-h", "free", t0.Add(5*time.Hour)), 422, "Slot.start"},
		{"busy slot after the end", "/Slot/late-busy", slot("late-busy", "sc-h", "busy-unavailable", t0.Add(5*time.Hour)), 201, ""},
		{"freeing it", "/Slot/late-busy", slot("late-busy", "sc-h", "free", t0.Add(5*time.Hour)), 422, "Slot.start"},
		{"moving a free slot out", "/Slot/in", slot("in", "sc-h", "free", t0.Add(6*time.Hour)), 422, "Slot.start"},
		{"past free slot before the start", "/Slot/old", slot("old", "sc-h", "free", past.Add(-3*time.Hour)), 201, ""},
		{"no horizon", "/Slot/open", slot("open", "sc-open", "free", t0.Add(500*time.Hour)), 201, ""},
		{"narrowing past a future free slot", "/Schedule/sc-h", schedule("sc-h", "hs", horizon(past, t0.Add(10*time.Minute))), 422, "Schedule.planningHorizon"},
		{"narrowing the start past it", "/Schedule/sc-h", schedule("sc-h", "hs", horizon(t0.Add(time.Hour), t0.Add(4*time.Hour))), 422, "Schedule.planningHorizon"},
		{"rolling the start past a past free slot and a busy one", "/Schedule/sc-h", schedule("sc-h", "hs", horizon(past, t0.Add(4*time.Hour))), 200, ""},
		{"widening", "/Schedule/sc-h", schedule("sc-h", "hs", horizon(past, t0.Add(8*time.Hour))), 200, ""},
		{"then the free slot after the old end", "/Slot/late", slot("late", "sc-h", "free", t0.Add(5*time.Hour)), 201, ""},
	}
	for _, st := range steps {
		r := s.do("PUT", st.path, st.body)
		if r.status != st.status {
			t.Fatalf("%s: status %d, want %d\n%s", st.name, r.status, st.status, r.body)
		}
		if st.expression != "" && !slices.Contains(r.expressions(), st.expression) {
			t.Errorf("%s: expressions %v, want %s", st.name, r.expressions(), st.expression)
		}
	}
	if got := s.count("/Slot?schedule=Schedule/sc-h&status=free&end=gt" + time.Now().UTC().Format(time.RFC3339)); got != 2 {
		t.Errorf("%d future free slots of sc-h, want 2 (in, late)", got)
	}
	s.check() // the past free slot and the busy one outside the horizon are no findings
}

// TestPlanningHorizonEdges: a horizon change is judged as a slot write is.
// A free slot ending exactly where a day-precision horizon ends is inside
// it, so the horizon may change around it; and a schedule created again
// under an id whose free slots outlived it (deleting a schedule leaves its
// slots) may not leave them outside its horizon.
func TestPlanningHorizonEdges(t *testing.T) {
	s := newServer(t, app.Config{}) // the server's time zone is Europe/London
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().In(london).AddDate(0, 0, 2)
	midnight := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, london)
	horizon := func(start, end string) string {
		return `,"planningHorizon":{"start":"` + start + `","end":"` + end + `"}`
	}
	endDay := day.Format(time.DateOnly)
	s.put(service("hs"), schedule("sc", "hs", horizon("2020-01-01", endDay)))
	steps := []struct {
		name         string
		method, path string
		body         string
		status       int
	}{
		{"the day's last slot, ending at midnight", "PUT", "/Slot/last", slotAt("last", "sc", midnight.Add(-15*time.Minute), 15*time.Minute), 201},
		{"moving the horizon's start, its end kept", "PUT", "/Schedule/sc", schedule("sc", "hs", horizon("2021-01-01", endDay)), 200},
		{"ending the horizon a day earlier", "PUT", "/Schedule/sc", schedule("sc", "hs", horizon("2021-01-01", day.AddDate(0, 0, -1).Format(time.DateOnly))), 422},
		{"deleting the schedule", "DELETE", "/Schedule/sc", "", 204},
		{"creating it again with a horizon that leaves the slot out", "PUT", "/Schedule/sc", schedule("sc", "hs", horizon("2020-01-01", "2020-02-01")), 422},
		{"creating it again with a horizon that covers the slot", "PUT", "/Schedule/sc", schedule("sc", "hs", horizon("2020-01-01", endDay)), 201},
	}
	for _, st := range steps {
		var body any
		if st.body != "" {
			body = st.body
		}
		r := s.do(st.method, st.path, body)
		if r.status != st.status {
			t.Fatalf("%s: status %d, want %d\n%s", st.name, r.status, st.status, r.body)
		}
		if st.status == 422 && !slices.Contains(r.expressions(), "Schedule.planningHorizon") {
			t.Errorf("%s: expressions %v, want Schedule.planningHorizon", st.name, r.expressions())
		}
	}
}
