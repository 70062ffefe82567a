package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// slotWrite is a new Slot of schedule Schedule/<schedule>, with its index
// entries.
func slotWrite(t *testing.T, id, schedule, status, start string, updated time.Time) *store.Write {
	t.Helper()
	body := `{"resourceType":"Slot","id":"` + id + `","schedule":{"reference":"Schedule/` + schedule + `"},"status":"` + status +
		`","start":"` + start + `","end":"` + start + `"}`
	idx, err := storetest.Registry(t).Extract("Slot", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &store.Write{Resource: &fhir.Resource{Type: "Slot", ID: id, Version: 1, LastUpdated: updated, JSON: []byte(body)}, Index: idx}
}

// olderDatabase writes ws into a new store in dir, then runs stmts on the
// file directly to make it look like a database made by an older release.
func olderDatabase(t *testing.T, dir string, ws []*store.Write, stmts ...string) {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	putEach(t, s, ws...)
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrateIndex: a database written before the planner's metadata
// (no date shapes, no pair rows) answers the hot slot search correctly
// after it is opened again.
func TestMigrateIndex(t *testing.T) {
	reg := storetest.Registry(t)
	dir := t.TempDir()
	ctx := context.Background()
	now := time.Now()
	// Make it look like a database from before: no shapes, no pair rows.
	olderDatabase(t, dir, []*store.Write{slotWrite(t, "a", "s1", "free", "2026-03-10T09:00:00Z", now),
		slotWrite(t, "b", "s1", "free", "2026-03-11T09:00:00Z", now), slotWrite(t, "c", "s2", "free", "2026-03-10T09:00:00Z", now)},
		"DELETE FROM idx_date_shape", "DELETE FROM idx_pair", "DELETE FROM params WHERE code LIKE '%+%'")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	params, _ := url.ParseQuery("schedule=Schedule/s1&start=ge2026-03-10&start=le2026-03-10&status=free")
	q, err := reg.Parse("Slot", params, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range page.Resources {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, " "); got != "a" {
		t.Errorf("after migration: %q, want a", got)
	}
	if sh := s.plan.shape(ctx, s.rdb, mustPid(t, s, "Slot", "start")); !sh.multi || sh.width < 1 {
		t.Errorf("migrated shape of Slot start = %+v, want general", sh)
	}
}

func mustPid(t *testing.T, s *Store, typ, code string) int64 {
	t.Helper()
	pid, ok := s.pids.get(typ + "." + code)
	if !ok {
		t.Fatalf("no pid for %s.%s", typ, code)
	}
	return pid
}

// TestMigratePairOrder: pair rows written before they carried the
// resource's updated and id get them when the database is opened again,
// and the free-slot search, which then orders its page on the pair rows,
// pages through the slots in _lastUpdated, id order both ways.
func TestMigratePairOrder(t *testing.T) {
	reg := storetest.Registry(t)
	dir := t.TempDir()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const start = "2026-03-10T09:00:00Z"
	// Written in this order, with these times: the expected order is by
	// time (e before d), then id (b before c at the same time).
	ws := []*store.Write{
		slotWrite(t, "a", "s1", "free", start, t0), slotWrite(t, "c", "s2", "free", start, t0.Add(time.Minute)),
		slotWrite(t, "b", "s1", "free", start, t0.Add(time.Minute)), slotWrite(t, "x", "s1", "busy", start, t0.Add(2*time.Minute)),
		slotWrite(t, "e", "s2", "free", start, t0.Add(3*time.Minute)), slotWrite(t, "d", "s1", "free", start, t0.Add(4*time.Minute)),
	}
	// Busy slots in other schedules, so that the statistics make the pair
	// scan the cheapest way in.
	for i := range 10 {
		ws = append(ws, slotWrite(t, fmt.Sprintf("y%d", i), fmt.Sprintf("t%d", i), "busy", start, t0.Add(time.Hour)))
	}
	olderDatabase(t, dir, ws, "ALTER TABLE idx_pair DROP COLUMN updated", "ALTER TABLE idx_pair DROP COLUMN id")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var unfilled int
	if err := s.rdb.QueryRow("SELECT count(*) FROM idx_pair WHERE id = '' OR updated = 0").Scan(&unfilled); err != nil || unfilled > 0 {
		t.Fatalf("pair rows without updated or id after migration: %d (%v)", unfilled, err)
	}
	params, _ := url.ParseQuery("schedule=Schedule/s1,Schedule/s2&start=ge2026-03-10&start=le2026-03-10&status=free&_count=2")
	q, err := reg.Parse("Slot", params, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	planMode = driveAlways // a few slots: left to its costs, the planner would walk them all
	defer func() { planMode = costBased }()
	if p, _ := (&builder{r: reader{s: s, q: s.rdb}, ctx: ctx}).plan(q, 2); !p.keyedPage(q) {
		t.Fatal("the free-slot search is not answered on the pair rows alone")
	}
	var pages []string
	var last *store.Page
	for q.Cursor = ""; ; q.Cursor = last.Next {
		if last, err = s.Search(ctx, q); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range last.Resources {
			ids = append(ids, r.ID)
		}
		pages = append(pages, strings.Join(ids, " "))
		if last.Next == "" {
			break
		}
	}
	if got, want := strings.Join(pages, " | "), "a b | c e | d"; got != want {
		t.Errorf("pages forward: %q, want %q", got, want)
	}
	q.Cursor = last.Prev
	back, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range back.Resources {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, " "); got != "c e" {
		t.Errorf("previous page from the last: %q, want %q", got, "c e")
	}
}

// TestMigratePairVersion: pair rows written before they carried the
// resource's version and history row get them when the database is opened
// again (and rows of a deleted resource, which a keyed page no longer
// checks against resources, are dropped), and the free-slot search, which
// then answers its page from the pair rows alone, gives what it gave
// before: the same slots, versions, times and bodies, pages both ways and
// totals.
func TestMigratePairVersion(t *testing.T) {
	reg := storetest.Registry(t)
	dir := t.TempDir()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const start = "2026-03-10T09:00:00Z"
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(ws ...*store.Write) {
		t.Helper()
		putEach(t, s, ws...)
	}
	var ws []*store.Write
	for i := range 12 {
		ws = append(ws, slotWrite(t, fmt.Sprintf("a%02d", i), fmt.Sprintf("s%d", i%2), "free", start, t0.Add(time.Duration(i%5)*time.Minute)))
	}
	for i := range 10 { // so that the statistics make the pair scan the way in
		ws = append(ws, slotWrite(t, fmt.Sprintf("y%d", i), fmt.Sprintf("t%d", i), "busy", start, t0))
	}
	put(ws...)
	// Later versions: one booked and freed again (version 3), one booked,
	// one deleted.
	again := func(w *store.Write, status string, at time.Time) *store.Write {
		var sch struct{ Schedule struct{ Reference string } }
		if err := json.Unmarshal(w.Resource.JSON, &sch); err != nil {
			t.Fatal(err)
		}
		n := slotWrite(t, w.Resource.ID, strings.TrimPrefix(sch.Schedule.Reference, "Schedule/"), status, start, at)
		n.Resource.Version = w.Resource.Version + 1
		return n
	}
	v2 := again(ws[2], "busy", t0.Add(10*time.Minute))
	put(v2)
	put(again(v2, "free", t0.Add(11*time.Minute)), again(ws[5], "busy", t0.Add(12*time.Minute)))
	put(&store.Write{Resource: &fhir.Resource{Type: "Slot", ID: ws[7].Resource.ID, Version: 2, LastUpdated: t0.Add(13 * time.Minute), Deleted: true}})

	planMode = driveAlways // a few slots: left to its costs, the planner would walk them all
	defer func() { planMode = costBased }()
	params, _ := url.ParseQuery("schedule=Schedule/s0,Schedule/s1&start=ge2026-03-10&start=le2026-03-10&status=free&_count=3&_total=accurate")
	q, err := reg.Parse("Slot", params, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := pairPages(t, s, q)
	if !strings.Contains(before, "a02@3") || strings.Contains(before, "a05") || strings.Contains(before, "a07") {
		t.Fatalf("the slots' later versions are not what the search finds: %s", before)
	}
	s.Close()

	// As an older release left it: no version or seq, and (as no release
	// wrote, but a keyed page would now trust) a pair row of the deleted slot.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"ALTER TABLE idx_pair DROP COLUMN version", "ALTER TABLE idx_pair DROP COLUMN seq",
		`INSERT INTO idx_pair (cid, ref_type, ref_id, low, high, rid, code, updated, id)
			SELECT cid, ref_type, ref_id, low, high, (SELECT rid FROM resources WHERE id = 'a07'), 'free', updated, 'a07' FROM idx_pair WHERE id = 'a00'`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stale int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM idx_pair p LEFT JOIN resources r ON r.rid = p.rid
		WHERE r.rid IS NULL OR r.deleted OR p.version != r.version OR p.seq != r.seq`).Scan(&stale); err != nil || stale > 0 {
		t.Fatalf("pair rows not those of their resource's current version after migration: %d (%v)", stale, err)
	}
	if p, _ := (&builder{r: reader{s: s, q: s.rdb}, ctx: ctx}).plan(q, 3); !p.keyedPage(q) {
		t.Fatal("the free-slot search is not answered on the pair rows alone")
	}
	if after := pairPages(t, s, q); after != before {
		t.Errorf("after migration:\n%s\nbefore:\n%s", after, before)
	}
	// Writes keep the columns: a booking of a migrated slot.
	put(again(ws[0], "busy", t0.Add(20*time.Minute)))
	if err := s.rdb.QueryRow(`SELECT count(*) FROM idx_pair p JOIN resources r ON r.rid = p.rid
		WHERE p.version != r.version OR p.seq != r.seq`).Scan(&stale); err != nil || stale > 0 {
		t.Fatalf("pair rows not those of their resource's current version after a write: %d (%v)", stale, err)
	}
}

// pairPages renders every page of q, forward from the first and then back
// from the last, each resource as id@version with its time and body as a
// read gives them, and the total.
func pairPages(t *testing.T, s *Store, q *search.Query) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	render := func(page *store.Page) {
		fmt.Fprintf(&b, "total %d:", page.Total)
		for _, r := range page.Resources {
			fmt.Fprintf(&b, " %s@%d", r.ID, r.Version)
			read, err := s.Read(ctx, r.Type, r.ID)
			if err != nil || read.Version != r.Version || !read.LastUpdated.Equal(r.LastUpdated) || string(read.JSON) != string(r.JSON) {
				t.Errorf("%s in the page: version %d at %s, %s; a read: %+v, %v", r.ID, r.Version, r.LastUpdated, r.JSON, read, err)
			}
		}
		b.WriteString("\n")
	}
	qq := *q
	var last *store.Page
	for qq.Cursor = ""; ; qq.Cursor = last.Next {
		var err error
		if last, err = s.Search(ctx, &qq); err != nil {
			t.Fatal(err)
		}
		render(last)
		if last.Next == "" {
			break
		}
	}
	b.WriteString("back\n")
	for qq.Cursor = last.Prev; qq.Cursor != ""; qq.Cursor = last.Prev {
		var err error
		if last, err = s.Search(ctx, &qq); err != nil {
			t.Fatal(err)
		}
		render(last)
	}
	return b.String()
}
