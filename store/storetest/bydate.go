package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
)

// plainReader hides a store's optional capabilities, so that
// store.SearchByDate takes its fallback.
type plainReader struct{ store.Reader }

// testSearchByDate pages through searches with store.SearchByDate, through
// the store (its DateOrderer, when it has one) and through the fallback:
// the matches are the oracle's, each once, their start values in the
// oracle's order for the query sorted by start (equal values may come in
// any order), and no page is larger than asked. Among the queries: slots
// of named schedules with a status (a pair scan in SQLite), by status
// alone and by specialty (a walk of the dates), untyped references, a
// selective _id (which Search sorting a few answers best), Appointments
// of patients, and slots that change status between pages.
func testSearchByDate(t *testing.T, s store.Store) {
	l := newLoader(t, s)
	cfg := synth.Config{Seed: 5, Slots: 900, Patients: 40, Appointments: 30, SlotsPerSchedule: 30, SchedulesPerService: 3, Weeks: 2}
	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	var batch []*fhir.Resource
	i := 0
	err := synth.Generate(cfg, func(r synth.Resource) error {
		batch = append(batch, &fhir.Resource{Type: r.Type, ID: r.ID, JSON: r.JSON, LastUpdated: t0.Add(time.Duration(i) * time.Second)})
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.write(t0, batch...)
	ctx := context.Background()
	readers := []struct {
		name string
		r    store.Reader
	}{{"store", s}, {"fallback", plainReader{s}}}
	queries := []string{
		"Slot?schedule=Schedule/sch-00001,Schedule/sch-00011,Schedule/sch-00021&status=free&start=ge2026-03-03&start=lt2026-03-12&end=le2026-03-12",
		"Slot?schedule=Schedule/sch-00002,Schedule/sch-00002&status=busy,busy-tentative&start=ge2026-03-02",
		"Slot?schedule=Schedule/sch-00003&start=ge2026-03-05T10:00:00Z",
		"Slot?status=free&start=ge2026-03-02&schedule=" + schedules(1, 15),
		"Slot?schedule=sch-00004,Schedule/sch-00005&start=ge2026-03-02&start=le2026-03-20",
		"Slot?status=free&start=ge2026-03-04T10:00:00Z&start=lt2026-03-10",
		"Slot?specialty=" + synth.SNOMEDSystem + "|394579002&start=gt2026-03-02&end=le2026-03-31",
		"Slot?_id=slot-0000005,slot-0000100,slot-0000101,slot-0000700&start=ge2026-03-01",
		"Slot?schedule=Schedule/sch-99999&start=ge2026-03-01",
		"Appointment?patient=Patient/pat-000001,Patient/pat-000002,Patient/pat-000003&date=ge2026-03-01",
	}
	for _, qs := range queries {
		q := parse(t, l.reg, qs)
		sorted := *q
		sorted.Sort = []search.SortKey{{Param: dateParam(q), Type: search.Date}}
		o, err := search.NewOracle(l.reg, l.current())
		if err != nil {
			t.Fatal(err)
		}
		want := o.Search(&sorted)
		for _, rd := range readers {
			for _, count := range []int{1, 7, 50} {
				q.Count = count
				got := byDatePages(t, rd.r, q, dateParam(q), nil)
				checkByDate(t, l.reg, fmt.Sprintf("%s %s _count=%d", rd.name, qs, count), dateParam(q), got, want)
			}
		}
	}

	// Slots turning busy and free between pages: a slot changed after its
	// page was read is not seen again, one changed before is seen as it
	// is then, and the rest are each seen once, in order.
	flip := func(id string) { // free ↔ busy
		old := l.cur["Slot/"+id]
		body := strings.Replace(string(old.JSON), `"status":"free"`, `"status":"busy"`, 1)
		if body == string(old.JSON) {
			body = strings.Replace(body, `"status":"busy"`, `"status":"free"`, 1)
		}
		l.write(old.LastUpdated.Add(time.Hour), &fhir.Resource{Type: "Slot", ID: id, JSON: []byte(body)})
	}
	qs := "Slot?schedule=Schedule/sch-00006,Schedule/sch-00007&status=free&start=ge2026-03-02"
	for _, rd := range readers {
		q := parse(t, l.reg, qs)
		q.Count = 4
		var flipped []string
		got := byDatePages(t, rd.r, q, "start", func(page int) {
			if page >= 3 {
				return
			}
			id := fmt.Sprintf("slot-%07d", 6*30+29-page) // the last slots of sch-00006, from the end
			flip(id)
			flipped = append(flipped, id)
		})
		o, err := search.NewOracle(l.reg, l.current())
		if err != nil {
			t.Fatal(err)
		}
		sorted := *q
		sorted.Sort = []search.SortKey{{Param: "start", Type: search.Date}}
		want := o.Search(&sorted)
		// The flipped slots lie after every page read while they were
		// flipped (they are the schedule's last), so the end state rules.
		checkByDate(t, l.reg, rd.name+" "+qs+" while changing", "start", got, want)
		if len(flipped) < 3 {
			t.Errorf("%s while changing: only %d pages", rd.name, len(flipped)+1)
		}
		for _, id := range flipped { // back as they were, for the next reader
			flip(id)
		}
	}

	q := parse(t, l.reg, "Slot?start=ge2026-03-02&_sort=start")
	if _, err := store.SearchByDate(ctx, s, q, "start"); err == nil {
		t.Errorf("SearchByDate with _sort: no error")
	}
}

// schedules lists Schedule references sch-0000from to sch-0000to.
func schedules(from, to int) string {
	var refs []string
	for i := from; i <= to; i++ {
		refs = append(refs, fmt.Sprintf("Schedule/sch-%05d", i))
	}
	return strings.Join(refs, ",")
}

// dateParam is the date parameter a test query of testSearchByDate is
// ordered by.
func dateParam(q *search.Query) string {
	if q.Type == "Appointment" {
		return "date"
	}
	return "start"
}

// byDatePages pages through store.SearchByDate, calling between after
// each page but the last.
func byDatePages(t *testing.T, r store.Reader, q *search.Query, param string, between func(page int)) []*fhir.Resource {
	t.Helper()
	var got []*fhir.Resource
	q.Cursor = ""
	for n := 0; ; n++ {
		if n > 2000 {
			t.Fatalf("paging does not end")
		}
		page, err := store.SearchByDate(context.Background(), r, q, param)
		if err != nil {
			t.Fatalf("page %d: %v", n, err)
		}
		if len(page.Resources) > q.Count {
			t.Errorf("page %d: %d resources, _count %d", n, len(page.Resources), q.Count)
		}
		got = append(got, page.Resources...)
		if page.Next == "" {
			return got
		}
		if between != nil {
			between(n)
		}
		q.Cursor = page.Next
	}
}

// checkByDate compares SearchByDate's results with the oracle's sorted
// ones: the same resources (the oracle's are distinct, so each once), with
// the same sequence of values.
func checkByDate(t *testing.T, reg *search.Registry, what, param string, got, want []*fhir.Resource) {
	t.Helper()
	gotIDs, wantIDs := ids(got), ids(want)
	sortedGot, sortedWant := slices.Sorted(slices.Values(gotIDs)), slices.Sorted(slices.Values(wantIDs))
	if !slices.Equal(sortedGot, sortedWant) {
		t.Errorf("%s: %d matches %v, want %d %v", what, len(gotIDs), head(gotIDs), len(wantIDs), head(wantIDs))
		return
	}
	for i := range got {
		if g, w := lowOf(t, reg, got[i], param), lowOf(t, reg, want[i], param); g != w {
			t.Errorf("%s: match %d is %s at %d, want a match at %d (%s)", what, i, got[i].ID, g, w, want[i].ID)
			return
		}
	}
}

// lowOf is the smallest low bound of res's values of the date parameter.
func lowOf(t *testing.T, reg *search.Registry, res *fhir.Resource, param string) int64 {
	t.Helper()
	entries, err := reg.Extract(res.Type, res.JSON)
	if err != nil {
		t.Fatal(err)
	}
	low := search.MaxTime
	for _, e := range entries {
		if e.Param == param && e.Type == search.Date {
			low = min(low, e.Low)
		}
	}
	return low
}
