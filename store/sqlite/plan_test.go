package sqlite

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// scan matches a step that reads a whole stored table (by name or by the
// aliases the translation gives them); scans of derived tables (d, x, m)
// are fine.
var scan = regexp.MustCompile(`^\s*SCAN (r|h|f|p|t\d+|resources|history|idx_\w+)\b`)

// TestHotQueryPlans loads a region and checks SQLite's plan for the hot
// searches: no step scans a stored table, and each is driven from the
// index meant for it.
func TestHotQueryPlans(t *testing.T) {
	reg := storetest.Registry(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	loadRegion(t, s, synth.Config{Seed: 1, Slots: 30000, Patients: 3000})
	tests := []struct {
		query string
		uses  string // the index search the plan must contain
		// pageOnPairs: the page is ordered, cut and answered on the pair
		// rows: the slots' resources rows are never read (a chain still
		// reads its targets').
		pageOnPairs bool
	}{
		{"Slot?schedule.actor:HealthcareService=HealthcareService/hs-00003&status=free&start=ge2026-03-09&start=le2026-03-23", "(cid=? AND ref_id=? AND ref_type=? AND low>? AND low<?)", true},
		{"Slot?schedule=Schedule/sch-00007&start=ge2026-03-09&start=le2026-03-23&status=free", "idx_pair USING PRIMARY KEY (cid=? AND ref_id=? AND ref_type=? AND low>? AND low<?)", true},
		{"Patient?identifier=" + url.QueryEscape(synth.NHSNumberSystem+"|"+synth.NHSNumber(1234)), "idx_token", false},
		{"HealthcareService?specialty=" + url.QueryEscape(synth.SNOMEDSystem+"|394579002"), "idx_token", false},
		{"Schedule?_id=sch-00001,sch-00002", "sqlite_autoindex_resources_1 (type=? AND id=?)", false},
		{"Slot?status=free", "resources_type_updated", false},
		{"Slot?schedule=Schedule/sch-00007&_sort=-start,status", "idx_ref", false},
		{"Slot?start=ge2026-05-20T10:00:00Z&start=lt2026-05-20T11:00:00Z", "idx_date", false},
	}
	for _, tt := range tests {
		typ, raw, _ := strings.Cut(tt.query, "?")
		params, _ := url.ParseQuery(raw)
		q, err := reg.Parse(typ, params, search.ParseOptions{Strict: true})
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		lines, err := reader{s: s, q: s.rdb}.explain(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("%s\n%s", tt.query, plan)
		for _, l := range lines {
			if scan.MatchString(l) {
				t.Errorf("%s: full scan %q in plan\n%s", tt.query, l, plan)
			}
		}
		if !strings.Contains(plan, tt.uses) {
			t.Errorf("%s: plan does not use %s\n%s", tt.query, tt.uses, plan)
		}
		if tt.pageOnPairs && (!strings.Contains(plan, "USE TEMP B-TREE FOR ORDER BY") || strings.Contains(plan, "SEARCH r ")) {
			t.Errorf("%s: the page is not answered on the pair rows alone\n%s", tt.query, plan)
		}
	}
}

// loadRegion bulk-loads a generated region into s (PutAll, 5,000
// resources a transaction), every resource last updated at 1 March 2026.
func loadRegion(t *testing.T, s *Store, cfg synth.Config) {
	t.Helper()
	reg := storetest.Registry(t)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var ws []*store.Write
	flush := func() {
		if err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error { return tx.(*txn).PutAll(ctx, ws) }); err != nil {
			t.Fatal(err)
		}
		ws = ws[:0]
	}
	err := synth.Generate(cfg, func(r synth.Resource) error {
		idx, err := reg.Extract(r.Type, r.JSON)
		ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: r.Type, ID: r.ID, Version: 1, LastUpdated: now, JSON: r.JSON}, Index: idx})
		if len(ws) == 5000 {
			flush()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	flush()
}

// TestCursorBoundToSort: a cursor made for one _sort is refused by a search
// with another, and a cursor that is not one is refused.
func TestCursorBoundToSort(t *testing.T) {
	start := []search.SortKey{{Param: "start", Type: search.Date}}
	c := (&cursor{sort: sortSig(start), keys: []any{int64(5)}, updated: 7, id: "a", typ: "Slot"}).encode()
	tests := []struct {
		cursor string
		keys   []search.SortKey
		ok     bool
	}{
		{c, start, true},
		{c, []search.SortKey{{Param: "start", Type: search.Date, Desc: true}}, false},
		{c, []search.SortKey{{Param: "end", Type: search.Date}}, false},
		{c, nil, false},
		{"not-a-cursor", start, false},
	}
	for _, tt := range tests {
		got, err := decodeCursor(tt.cursor, tt.keys)
		if (err == nil) != tt.ok {
			t.Errorf("decodeCursor(%q, %s) = %v, %v; want ok %v", tt.cursor, sortSig(tt.keys), got, err, tt.ok)
		}
		if err != nil && fhir.KindOf(err) != fhir.Invalid {
			t.Errorf("decodeCursor(%q): error kind %v, want Invalid", tt.cursor, fhir.KindOf(err))
		}
	}
}
