package sqlite

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestSearchByDatePlans checks how SearchByDate answers (the shared suite
// checks what): slots of named schedules by a range scan of the pair
// index per schedule, merged in index order; other date searches by a
// walk of the date index; neither sorting (no temporary B-tree), so a page
// reads about a page of rows. A search that an _id narrows to a few
// resources is left to Search, as is a page after one of Search's.
func TestSearchByDatePlans(t *testing.T) {
	reg := storetest.Registry(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	loadRegion(t, s, synth.Config{Seed: 1, Slots: 3000, Patients: 100})
	parse := func(qs string) *search.Query {
		t.Helper()
		typ, raw, _ := strings.Cut(qs, "?")
		params, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		q, err := reg.Parse(typ, params, search.ParseOptions{Strict: true, MaxCount: 1000})
		if err != nil {
			t.Fatalf("%s: %v", qs, err)
		}
		q.Count = 20
		return q
	}
	r := reader{s: s, q: s.rdb}
	for _, tt := range []struct {
		query string
		uses  string // the index search the plan must contain; "" when declined
	}{
		{"Slot?schedule=Schedule/sch-00001,Schedule/sch-00002,Schedule/sch-00003&status=free&start=ge2026-03-03&start=lt2026-03-31&end=le2026-03-31",
			"SEARCH p USING PRIMARY KEY (cid=? AND ref_id=? AND ref_type=? AND low>? AND low<?)"},
		{"Slot?status=free&start=ge2026-03-03&end=le2026-03-31",
			"SEARCH p USING PRIMARY KEY (pid=? AND low>?)"},
		{"Slot?schedule=sch-00001&start=ge2026-03-03",
			"SEARCH p USING PRIMARY KEY (pid=? AND low>?)"},
		{"Slot?_id=slot-0000001,slot-0000002&start=ge2026-03-03", ""},
		{"Slot?schedule=Schedule/sch-00001&end=le2026-03-31", ""}, // no condition on start
	} {
		q := parse(tt.query)
		queries, _, ok, err := r.byDateQuery(ctx, q, "start")
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		if ok != (tt.uses != "") {
			t.Errorf("%s: answered %v, want %v", tt.query, ok, tt.uses != "")
			continue
		}
		if !ok {
			continue
		}
		if len(queries) != 1 {
			t.Errorf("%s: %d statements, want 1", tt.query, len(queries))
			continue
		}
		lines, err := explainSQL(ctx, s.rdb, queries[0])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, tt.uses) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: plan\n%s\nwant %q and no sort", tt.query, plan, tt.uses)
		}
		page, ok, err := s.SearchByDate(ctx, q, "start")
		if err != nil || !ok || len(page.Resources) != 20 || !strings.HasPrefix(page.Next, dateCursorPrefix) {
			t.Errorf("%s: page of %d, ok %v, next %q, %v; want 20 and a cursor", tt.query, len(page.Resources), ok, page.Next, err)
		}
	}

	q := parse("Slot?status=free&start=ge2026-03-03&_count=5")
	sorted := *q
	sorted.Sort = []search.SortKey{{Param: "start", Type: search.Date}}
	page, err := s.Search(ctx, &sorted)
	if err != nil || page.Next == "" {
		t.Fatalf("Search: %v, next %q", err, page.Next)
	}
	q.Cursor = page.Next
	if _, ok, err := s.SearchByDate(ctx, q, "start"); ok || err != nil {
		t.Errorf("SearchByDate after a page of Search: answered %v, %v; want it left to Search", ok, err)
	}
	q.Cursor = dateCursorPrefix + "!"
	if _, _, err := s.SearchByDate(ctx, q, "start"); fhir.KindOf(err) != fhir.Invalid {
		t.Errorf("SearchByDate with a broken cursor: %v, want an Invalid error", err)
	}
}

// TestSearchByDateLastUpdated: _lastUpdated has no rows in the date index
// (Search reads resources.updated), so store.SearchByDate by it must give
// what Search sorted by it gives, not an empty page.
func TestSearchByDateLastUpdated(t *testing.T) {
	reg := storetest.Registry(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var ws []*store.Write
	err = synth.Generate(synth.Config{Seed: 2, Slots: 60, Patients: 5}, func(r synth.Resource) error {
		idx, err := reg.Extract(r.Type, r.JSON)
		ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: r.Type, ID: r.ID, Version: 1, LastUpdated: t0.Add(time.Duration(len(ws)) * time.Minute), JSON: r.JSON}, Index: idx})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, ws)
	for _, qs := range []string{
		"_lastUpdated=ge2026-03-01T09:30:00Z&_count=7",
		"_lastUpdated=lt2026-03-01T10:00:00Z&status=free&_count=4",
	} {
		params, err := url.ParseQuery(qs)
		if err != nil {
			t.Fatal(err)
		}
		q, err := reg.Parse("Slot", params, search.ParseOptions{Strict: true, MaxCount: 1000})
		if err != nil {
			t.Fatalf("%s: %v", qs, err)
		}
		pages := func(next func(*search.Query) (*store.Page, error)) []string {
			var ids []string
			q := *q
			for range 100 {
				page, err := next(&q)
				if err != nil {
					t.Fatalf("%s: %v", qs, err)
				}
				for _, r := range page.Resources {
					ids = append(ids, r.ID)
				}
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
			}
			return ids
		}
		got := pages(func(q *search.Query) (*store.Page, error) { return store.SearchByDate(ctx, s, q, "_lastUpdated") })
		want := pages(func(q *search.Query) (*store.Page, error) {
			sorted := *q
			sorted.Sort = []search.SortKey{{Param: "_lastUpdated", Type: search.Date}}
			return s.Search(ctx, &sorted)
		})
		if len(want) == 0 {
			t.Fatalf("%s: no matches: the test matches nothing", qs)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: SearchByDate by _lastUpdated = %v, want %v", qs, got, want)
		}
	}
}
