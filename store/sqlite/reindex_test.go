package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// reindexNow is when the test resources were written.
var reindexNow = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// reindexResources returns a small region (more slots than one reindex
// batch) and DocumentReferences each replacing the one before, in write
// order.
func reindexResources(t *testing.T, slots int) []*fhir.Resource {
	t.Helper()
	var out []*fhir.Resource
	add := func(typ, id string, body []byte) {
		out = append(out, &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: reindexNow.Add(time.Duration(len(out)) * time.Millisecond), JSON: body})
	}
	err := synth.Generate(synth.Config{Seed: 5, Slots: slots, Patients: 30, Appointments: 5, SlotsPerSchedule: 100}, func(r synth.Resource) error {
		add(r.Type, r.ID, r.JSON)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		id := fmt.Sprintf("doc-%04d", i)
		body := fmt.Sprintf(`{"resourceType":"DocumentReference","id":%q,"status":"current","content":[{"attachment":{"url":"urn:doc:%d"}}]`, id, i)
		if i > 0 {
			body += fmt.Sprintf(`,"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/doc-%04d"}}]`, i-1)
		}
		add("DocumentReference", id, []byte(body+"}"))
	}
	return out
}

// olderEntries are the entries an older release would have written for
// res: no composite tuples, no Patient family, Slot starts read as a day
// earlier, and a parameter since retired.
func olderEntries(t *testing.T, reg *search.Registry, res *fhir.Resource) []search.Entry {
	t.Helper()
	es, err := reg.Extract(res.Type, res.JSON)
	if err != nil {
		t.Fatal(err)
	}
	var out []search.Entry
	for _, e := range es {
		switch {
		case e.Type == search.Composite, res.Type == "Patient" && e.Param == "family":
			continue
		case res.Type == "Slot" && e.Param == "start":
			e.Low -= (24 * time.Hour).Microseconds()
		}
		out = append(out, e)
	}
	return append(out, search.Entry{Param: "retired", Type: search.Token, System: "urn:old", Value: res.ID})
}

// writeAll writes ws with PutAll, as a bulk load does.
func writeAll(t *testing.T, s *Store, ws []*store.Write) {
	t.Helper()
	err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error { return tx.(*txn).PutAll(ctx, ws) })
	if err != nil {
		t.Fatal(err)
	}
}

// TestReindex writes a region with an older release's entries, changes
// and deletes some of it (one change while the reindex runs), reindexes
// with the registry's extraction, and checks that searches agree with the
// oracle, that every index table and the planner's date shapes hold
// exactly what a fresh bulk load of the current resources gives, that
// deleted resources have no rows, and that the version is recorded.
func TestReindex(t *testing.T) {
	reg := storetest.Registry(t)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	resources := reindexResources(t, 2500)
	var ws []*store.Write
	for _, res := range resources {
		ws = append(ws, &store.Write{Resource: res, Index: olderEntries(t, reg, res)})
	}
	writeAll(t, s, ws)
	put := func(w *store.Write) {
		t.Helper()
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.Put(ctx, w) }); err != nil {
			t.Fatal(err)
		}
	}
	// Before the reindex, under the older release: a changed Patient, a
	// deleted Slot and DocumentReference.
	byID := map[string]*fhir.Resource{}
	for _, res := range resources {
		byID[res.Reference()] = res
	}
	firstPatient := resources[slices.IndexFunc(resources, func(r *fhir.Resource) bool { return r.Type == "Patient" })]
	changed := *firstPatient
	changed.Version, changed.LastUpdated = 2, reindexNow.Add(time.Hour)
	changed.JSON = []byte(strings.Replace(string(changed.JSON), `"family":"`, `"family":"Reindexed`, 1))
	put(&store.Write{Resource: &changed, Index: olderEntries(t, reg, &changed)})
	deleted := []string{"DocumentReference/doc-0003"}
	for _, res := range resources {
		if res.Type == "Slot" && len(deleted) < 3 {
			deleted = append(deleted, res.Reference())
		}
	}
	for _, ref := range deleted {
		res := byID[ref]
		put(&store.Write{Resource: &fhir.Resource{Type: res.Type, ID: res.ID, Version: 2, LastUpdated: reindexNow.Add(time.Hour), Deleted: true}})
	}
	// A Slot written and another deleted while the reindex runs (by the
	// first extraction, while the reader prepares the first batch).
	var slotsSeen []*fhir.Resource
	for _, res := range resources {
		if res.Type == "Slot" && !slices.Contains(deleted, res.Reference()) && len(slotsSeen) < 2 {
			slotsSeen = append(slotsSeen, res)
		}
	}
	duringChanged, duringDeleted := *slotsSeen[0], slotsSeen[1]
	duringChanged.Version, duringChanged.LastUpdated = 2, reindexNow.Add(2*time.Hour)
	duringChanged.JSON = []byte(strings.Replace(string(duringChanged.JSON), `"status":"`, `"comment":"moved","status":"`, 1))
	var fired atomic.Bool
	extract := func(res *fhir.Resource) ([]search.Entry, error) {
		if fired.CompareAndSwap(false, true) {
			idx, err := reg.Extract(duringChanged.Type, duringChanged.JSON)
			if err != nil {
				return nil, err
			}
			err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				if err := tx.Put(ctx, &store.Write{Resource: &duringChanged, Index: idx}); err != nil {
					return err
				}
				return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Slot", ID: duringDeleted.ID, Version: 2,
					LastUpdated: reindexNow.Add(2 * time.Hour), Deleted: true}})
			})
			if err != nil {
				return nil, err
			}
		}
		return reg.Extract(res.Type, res.JSON)
	}
	deleted = append(deleted, duringDeleted.Reference())

	current := currentResources(t, s) // as the reindex starts
	current[slices.IndexFunc(current, func(r *fhir.Resource) bool { return r.Reference() == duringChanged.Reference() })] = &duringChanged
	current = slices.DeleteFunc(current, func(r *fhir.Resource) bool { return r.Reference() == duringDeleted.Reference() })
	o, err := search.NewOracle(reg, current)
	if err != nil {
		t.Fatal(err)
	}
	family := ""
	for _, e := range mustExtract(t, reg, &changed) {
		if e.Param == "family" {
			family = e.Value
		}
	}
	slotStart := time.UnixMicro(mustEntry(t, reg, slotsSeen[0], "start").Low).UTC().Format(time.RFC3339)
	queries := []struct {
		query        string
		missedBefore bool // the older entries give another answer
	}{
		{"DocumentReference?relationship=replaces$DocumentReference/doc-0001", true},
		{"DocumentReference?relationship=replaces$DocumentReference/doc-0002,replaces$DocumentReference/doc-0004", true},
		{"Patient?family=" + url.QueryEscape(family), true},
		{"Slot?start=lt" + url.QueryEscape(slotStart), true},
		{"Slot?start=ge" + url.QueryEscape(slotStart) + "&status=free", false},
		{"Slot?schedule=" + mustEntry(t, reg, slotsSeen[0], "schedule").RefType + "/" + mustEntry(t, reg, slotsSeen[0], "schedule").RefID, false},
	}
	total := func(query string) (got, want int) {
		t.Helper()
		typ, raw, _ := strings.Cut(query, "?")
		params, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		params.Set("_total", "accurate")
		q, err := reg.Parse(typ, params, search.ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		page, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return page.Total, len(o.Search(q))
	}
	for _, tt := range queries {
		if got, want := total(tt.query); tt.missedBefore && got == want {
			t.Errorf("before the reindex: %s: %d matches, as the oracle: the older entries should differ", tt.query, got)
		}
	}
	if v, err := s.IndexVersion(ctx); err != nil || v != "" {
		t.Errorf("IndexVersion before any reindex = %q, %v; want \"\"", v, err)
	}
	oldShapes := dateShapes(t, s)
	// A statistic of the rows before the reindex, which must not survive it.
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.(*txn).exec(ctx, "INSERT OR REPLACE INTO idx_stats (tbl, pid, typ, v0, v1, v2) VALUES (0, 999999, '', 1, 1, 0)")
		return err
	}); err != nil {
		t.Fatal(err)
	}

	var calls [][2]int
	if err := s.Reindex(ctx, "v2", extract, func(done, total int) { calls = append(calls, [2]int{done, total}) }); err != nil {
		t.Fatalf("Reindex: %v", err)
	}

	n := len(current) + 1 // the resources when the reindex started
	if want := [][2]int{{0, n}, {reindexBatch, n}, {n, n}}; !slices.Equal(calls, want) {
		t.Errorf("progress calls = %v, want %v", calls, want)
	}
	if v, err := s.IndexVersion(ctx); err != nil || v != "v2" {
		t.Errorf("IndexVersion = %q, %v; want v2", v, err)
	}
	for _, tt := range queries {
		if got, want := total(tt.query); got != want {
			t.Errorf("after the reindex: %s: %d matches, the oracle %d", tt.query, got, want)
		}
	}
	fresh, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	ws = nil
	for _, res := range currentResources(t, s) {
		w := &store.Write{Resource: res, Index: mustExtract(t, reg, res)}
		res.Version = 1
		ws = append(ws, w)
	}
	writeAll(t, fresh, ws)
	got, want := indexRowSets(t, s), indexRowSets(t, fresh)
	for _, tb := range tables {
		if g, w := got[tb.name], want[tb.name]; !slices.Equal(g, w) {
			t.Errorf("%s after the reindex: %d rows, fresh load %d; differences:\n%s", tb.name, len(g), len(w), rowDiff(g, w))
		}
	}
	for _, ref := range deleted {
		for table, rows := range got {
			for _, row := range rows {
				if strings.Contains(row, "rid="+ref+" ") {
					t.Errorf("deleted %s has a row in %s: %s", ref, table, row)
				}
			}
		}
	}
	gotShapes, wantShapes := dateShapes(t, s), dateShapes(t, fresh)
	if !slices.Equal(gotShapes, wantShapes) {
		t.Errorf("date shapes after the reindex:\n%s\nfresh load:\n%s", strings.Join(gotShapes, "\n"), strings.Join(wantShapes, "\n"))
	}
	if slices.Equal(oldShapes, wantShapes) {
		t.Errorf("date shapes before the reindex equal a fresh load's: the test does not exercise their rebuilding")
	}
	var stale int
	if err := s.rdb.QueryRow("SELECT count(*) FROM idx_stats WHERE pid = 999999").Scan(&stale); err != nil || stale != 0 {
		t.Errorf("statistics from before the reindex: %d, %v; want none", stale, err)
	}

	// Reopened, the store keeps the version, and the planner's shapes
	// are those it rebuilt.
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if v, err := s.IndexVersion(ctx); err != nil || v != "v2" {
		t.Errorf("IndexVersion after reopening = %q, %v; want v2", v, err)
	}
	for _, tt := range queries {
		if got, want := total(tt.query); got != want {
			t.Errorf("reopened: %s: %d matches, the oracle %d", tt.query, got, want)
		}
	}
}

// TestReindexResumes interrupts a reindex after its first batch and checks
// that the next one of the same version resumes after it, that one of
// another version starts again, and that neither records a version until
// it completes.
func TestReindexResumes(t *testing.T) {
	reg := storetest.Registry(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ws []*store.Write
	for _, res := range reindexResources(t, 4500) {
		ws = append(ws, &store.Write{Resource: res, Index: olderEntries(t, reg, res)})
	}
	writeAll(t, s, ws)
	n := len(ws)
	extract := func(res *fhir.Resource) ([]search.Entry, error) { return reg.Extract(res.Type, res.JSON) }
	tests := []struct {
		version   string
		interrupt bool
		wantFirst int // done at the first progress call
	}{
		{"a", true, 0},
		{"a", true, reindexBatch}, // resumes, and is interrupted again
		{"b", true, 0},            // another version starts again
		{"b", false, reindexBatch},
	}
	for i, tt := range tests {
		ctx, cancel := context.WithCancel(context.Background())
		var calls []int
		err := s.Reindex(ctx, tt.version, extract, func(done, total int) {
			if total != n {
				t.Errorf("run %d: total %d, want %d", i, total, n)
			}
			calls = append(calls, done)
			if tt.interrupt && len(calls) == 2 {
				cancel()
			}
		})
		cancel()
		if tt.interrupt != errors.Is(err, context.Canceled) || (!tt.interrupt && err != nil) {
			t.Fatalf("run %d (%s): Reindex: %v", i, tt.version, err)
		}
		if len(calls) == 0 || calls[0] != tt.wantFirst {
			t.Errorf("run %d (%s): progress %v, want it to start at %d", i, tt.version, calls, tt.wantFirst)
		}
		want := ""
		if !tt.interrupt {
			want = tt.version
		}
		if v, err := s.IndexVersion(context.Background()); err != nil || v != want {
			t.Errorf("run %d (%s): IndexVersion = %q, %v; want %q", i, tt.version, v, err, want)
		}
	}
	var composites int
	if err := s.rdb.QueryRow("SELECT count(*) FROM idx_composite").Scan(&composites); err != nil || composites != 9 {
		t.Errorf("composite tuples after the resumed reindex: %d, %v; want 9", composites, err)
	}
}

// TestReindexInterruptedVersion: once a reindex to another version has
// committed a batch, the index is no longer the recorded version's, so
// IndexVersion no longer reports it (else a server started again with the
// recorded version, as after a --timezone tried and given up, would skip
// the reindex and search half-converted rows); an interrupted reindex to
// the recorded version itself keeps it. A reindex to the recorded version
// after an interrupted one to another starts again and leaves the rows of
// a fresh load.
func TestReindexInterruptedVersion(t *testing.T) {
	reg := storetest.Registry(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ws []*store.Write
	for _, res := range reindexResources(t, 4500) {
		ws = append(ws, &store.Write{Resource: res, Index: olderEntries(t, reg, res)})
	}
	writeAll(t, s, ws)
	older := func(res *fhir.Resource) ([]search.Entry, error) { return olderEntries(t, reg, res), nil }
	current := func(res *fhir.Resource) ([]search.Entry, error) { return reg.Extract(res.Type, res.JSON) }
	tests := []struct {
		name      string
		version   string
		extract   func(*fhir.Resource) ([]search.Entry, error)
		interrupt bool
		wantFirst int    // done at the first progress call
		want      string // IndexVersion afterwards
	}{
		{"complete", "old", older, false, 0, "old"},
		{"same version interrupted", "old", older, true, 0, "old"},
		{"other version interrupted", "new", current, true, 0, ""},
		{"back to the recorded version", "old", older, false, 0, "old"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithCancel(context.Background())
		var calls []int
		err := s.Reindex(ctx, tt.version, tt.extract, func(done, total int) {
			calls = append(calls, done)
			if tt.interrupt && len(calls) == 2 {
				cancel()
			}
		})
		cancel()
		if tt.interrupt != errors.Is(err, context.Canceled) || (!tt.interrupt && err != nil) {
			t.Fatalf("%s: Reindex: %v", tt.name, err)
		}
		if len(calls) == 0 || calls[0] != tt.wantFirst {
			t.Errorf("%s: progress %v, want it to start at %d", tt.name, calls, tt.wantFirst)
		}
		if got, err := s.IndexVersion(context.Background()); err != nil || got != tt.want {
			t.Errorf("%s: IndexVersion = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	fresh, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	writeAll(t, fresh, ws)
	got, want := indexRowSets(t, s), indexRowSets(t, fresh)
	for _, tb := range tables {
		if g, w := got[tb.name], want[tb.name]; !slices.Equal(g, w) {
			t.Errorf("%s: %d rows, fresh load %d; differences:\n%s", tb.name, len(g), len(w), rowDiff(g, w))
		}
	}
}

// TestReindexExtractError: a resource extract refuses stops the reindex
// with the resource named, and no version is recorded.
func TestReindexExtractError(t *testing.T) {
	reg := storetest.Registry(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ws []*store.Write
	for _, res := range reindexResources(t, 10) {
		ws = append(ws, &store.Write{Resource: res, Index: olderEntries(t, reg, res)})
	}
	writeAll(t, s, ws)
	ctx := context.Background()
	err = s.Reindex(ctx, "v", func(res *fhir.Resource) ([]search.Entry, error) {
		if res.Reference() == "DocumentReference/doc-0002" {
			return nil, errors.New("cannot read it")
		}
		return reg.Extract(res.Type, res.JSON)
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "DocumentReference/doc-0002: cannot read it") {
		t.Errorf("Reindex = %v, want an error naming DocumentReference/doc-0002", err)
	}
	if v, err := s.IndexVersion(ctx); err != nil || v != "" {
		t.Errorf("IndexVersion = %q, %v; want \"\"", v, err)
	}
}

// TestReindexEmpty: an empty store records the version at once.
func TestReindexEmpty(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var calls [][2]int
	err = s.Reindex(ctx, "v1", func(*fhir.Resource) ([]search.Entry, error) {
		return nil, errors.New("nothing to extract")
	}, func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{0, 0}}; !slices.Equal(calls, want) {
		t.Errorf("progress calls = %v, want %v", calls, want)
	}
	if v, err := s.IndexVersion(ctx); err != nil || v != "v1" {
		t.Errorf("IndexVersion = %q, %v; want v1", v, err)
	}
}

func mustExtract(t *testing.T, reg *search.Registry, res *fhir.Resource) []search.Entry {
	t.Helper()
	es, err := reg.Extract(res.Type, res.JSON)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// mustEntry returns res's first entry for param.
func mustEntry(t *testing.T, reg *search.Registry, res *fhir.Resource, param string) search.Entry {
	t.Helper()
	for _, e := range mustExtract(t, reg, res) {
		if e.Param == param {
			return e
		}
	}
	t.Fatalf("%s has no %s entry", res.Reference(), param)
	return search.Entry{}
}

// currentResources reads the current version of every resource not
// deleted, in row order.
func currentResources(t *testing.T, s *Store) []*fhir.Resource {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT r.type, r.id, r.version, r.updated, h.body FROM resources r JOIN history h ON h.seq = r.seq
		WHERE r.deleted = 0 ORDER BY r.rid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*fhir.Resource
	for rows.Next() {
		res := &fhir.Resource{}
		var updated int64
		if err := rows.Scan(&res.Type, &res.ID, &res.Version, &updated, &res.JSON); err != nil {
			t.Fatal(err)
		}
		res.LastUpdated = time.UnixMicro(updated).UTC()
		out = append(out, res)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// indexRowSets returns every row of every index table, by table, sorted,
// each as its columns with parameter ids replaced by "Type.code",
// resource rows by "Type/id", and the version and history row that pair
// rows repeat by whether they are the resource's current ones:
// comparable across databases.
func indexRowSets(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tb := range tables {
		cols := strings.Split(tb.cols, ", ")
		sel := make([]string, len(cols))
		for i, c := range cols {
			switch c {
			case "pid", "cid":
				sel[i] = "(SELECT p.type || '.' || p.code FROM params p WHERE p.pid = x." + c + ")"
			case "rid":
				sel[i] = "(SELECT r.type || '/' || r.id FROM resources r WHERE r.rid = x.rid)"
			case "version", "seq": // the resource's current one (true) or not
				sel[i] = "(x." + c + " = (SELECT r." + c + " FROM resources r WHERE r.rid = x.rid))"
			default:
				sel[i] = "x." + c
			}
		}
		rows, err := s.rdb.Query("SELECT " + strings.Join(sel, ", ") + " FROM " + tb.name + " x")
		if err != nil {
			t.Fatalf("%s: %v", tb.name, err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, c := range cols {
				fmt.Fprintf(&b, "%s=%v ", c, vals[i])
			}
			out[tb.name] = append(out[tb.name], b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		slices.Sort(out[tb.name])
	}
	return out
}

// dateShapes returns the planner's date shapes of s, as stored, by
// parameter.
func dateShapes(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT p.type || '.' || p.code, d.width, d.multi FROM idx_date_shape d JOIN params p ON p.pid = d.pid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		var width int64
		var multi bool
		if err := rows.Scan(&name, &width, &multi); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s width=%d multi=%v", name, width, multi))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// rowDiff lists the rows only one of got and want (both sorted) has, at
// most ten.
func rowDiff(got, want []string) string {
	var b strings.Builder
	n := 0
	for i, j := 0, 0; (i < len(got) || j < len(want)) && n < 10; {
		switch {
		case j == len(want) || (i < len(got) && got[i] < want[j]):
			fmt.Fprintf(&b, "  only after the reindex: %s\n", got[i])
			i++
			n++
		case i == len(got) || want[j] < got[i]:
			fmt.Fprintf(&b, "  only in the fresh load: %s\n", want[j])
			j++
			n++
		default:
			i++
			j++
		}
	}
	return b.String()
}

// TestReindexWritesOnlyChanges: a reindex writes only the index rows whose
// entries change. Triggers log every row inserted, deleted or updated in
// the index tables, and every update of a resource row (its digest), by
// resource; a region loaded with the registry's extraction is reindexed
// with extractions that change one parameter of one type, and back. With
// the same extraction nothing is written; otherwise exactly the tables
// that parameter's rows are in, for the resources of that type (a changed
// Slot status also sets its pair rows' code), and the index tables then
// hold exactly what a fresh bulk load with that extraction gives.
func TestReindexWritesOnlyChanges(t *testing.T) {
	reg := storetest.Registry(t)
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resources := reindexResources(t, 2500)
	count := map[string]int{}
	var ws []*store.Write
	for _, res := range resources {
		ws = append(ws, &store.Write{Resource: res, Index: mustExtract(t, reg, res)})
		count[res.Type]++
	}
	writeAll(t, s, ws)
	logSQL := "CREATE TABLE write_log (tbl TEXT NOT NULL, op TEXT NOT NULL, rid INTEGER NOT NULL);\n" +
		"CREATE TRIGGER log_resources AFTER UPDATE ON resources BEGIN INSERT INTO write_log VALUES ('resources', 'update', new.rid); END;\n"
	for _, tb := range tables {
		for _, op := range []string{"insert", "delete", "update"} {
			row := "new"
			if op == "delete" {
				row = "old"
			}
			logSQL += fmt.Sprintf("CREATE TRIGGER log_%[1]s_%[2]s AFTER %[3]s ON %[1]s BEGIN INSERT INTO write_log VALUES ('%[1]s', '%[2]s', %[4]s.rid); END;\n",
				tb.name, op, strings.ToUpper(op), row)
		}
	}
	if _, err := s.wdb.Exec(logSQL); err != nil {
		t.Fatal(err)
	}
	// written returns what the log holds, as "table op Type: resources",
	// and empties it.
	written := func() []string {
		t.Helper()
		rows, err := s.rdb.Query(`SELECT l.tbl, l.op, r.type, count(DISTINCT l.rid) FROM write_log l JOIN resources r ON r.rid = l.rid
			GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var tbl, op, typ string
			var n int
			if err := rows.Scan(&tbl, &op, &typ, &n); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %s: %d", tbl, op, typ, n))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.wdb.Exec("DELETE FROM write_log"); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// changing returns an extraction that changes the entries of param on
	// typ with change.
	changing := func(typ, param string, change func(*search.Entry)) func(*fhir.Resource) ([]search.Entry, error) {
		return func(res *fhir.Resource) ([]search.Entry, error) {
			es, err := reg.Extract(res.Type, res.JSON)
			for i := range es {
				if res.Type == typ && es[i].Param == param {
					change(&es[i])
				}
			}
			return es, err
		}
	}
	all := func(typ string, tables ...string) []string {
		var out []string
		for _, tb := range tables {
			tbl, op, _ := strings.Cut(tb, " ")
			out = append(out, fmt.Sprintf("%s %s %s: %d", tbl, op, typ, count[typ]))
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name    string
		extract func(*fhir.Resource) ([]search.Entry, error)
		want    []string // and the same back
	}{
		{"unchanged", changing("", "", nil), nil},
		{"Patient family", changing("Patient", "family", func(e *search.Entry) { e.Value += "X" }),
			all("Patient", "idx_string delete", "idx_string insert", "resources update")},
		{"Slot status", changing("Slot", "status", func(e *search.Entry) { e.Value += "X" }),
			all("Slot", "idx_token delete", "idx_token insert", "idx_pair update", "resources update")},
		{"Slot start", changing("Slot", "start", func(e *search.Entry) { e.Low, e.High = e.Low+3600e6, e.High+3600e6 }),
			all("Slot", "idx_date delete", "idx_date insert", "idx_pair delete", "idx_pair insert", "resources update")},
		{"DocumentReference relationship", changing("DocumentReference", "relationship", func(e *search.Entry) { e.Components = e.Components[:1] }),
			// doc-0000 replaces none: its rows stay.
			[]string{"idx_composite delete DocumentReference: 9", "idx_composite insert DocumentReference: 9", "resources update DocumentReference: 9"}},
	}
	base := func(res *fhir.Resource) ([]search.Entry, error) { return reg.Extract(res.Type, res.JSON) }
	for _, tt := range tests {
		if err := s.Reindex(ctx, tt.name, tt.extract, nil); err != nil {
			t.Fatalf("%s: Reindex: %v", tt.name, err)
		}
		if got := written(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: reindex wrote\n%s\nwant\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
		fresh, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ws = nil
		for _, res := range resources {
			es, err := tt.extract(res)
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, &store.Write{Resource: res, Index: es})
		}
		writeAll(t, fresh, ws)
		got, want := indexRowSets(t, s), indexRowSets(t, fresh)
		fresh.Close()
		for _, tb := range tables {
			if g, w := got[tb.name], want[tb.name]; !slices.Equal(g, w) {
				t.Errorf("%s: %s after the reindex: %d rows, fresh load %d; differences:\n%s", tt.name, tb.name, len(g), len(w), rowDiff(g, w))
			}
		}
		if err := s.Reindex(ctx, tt.name+" back", base, nil); err != nil {
			t.Fatalf("%s back: Reindex: %v", tt.name, err)
		}
		if got := written(); !slices.Equal(got, tt.want) {
			t.Errorf("%s back: reindex wrote\n%s\nwant\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}
