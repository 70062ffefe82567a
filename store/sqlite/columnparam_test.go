package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// TestColumnParamsKeepNoRows: the _id and _lastUpdated entries of a write
// (which the registry extracts for every resource) leave no index rows;
// searches by them, :missing included, are answered from the resources
// row as before, and a new version whose only changed entry is
// _lastUpdated rewrites no date rows.
func TestColumnParamsKeepNoRows(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	write := func(id string, version int64, updated time.Time) {
		t.Helper()
		res := &fhir.Resource{Type: "Slot", ID: id, Version: version, LastUpdated: updated,
			JSON: []byte(`{"resourceType":"Slot","id":"` + id + `","status":"free","start":"2026-12-08T09:00:00Z"}`)}
		start := time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC).UnixMicro()
		index := []search.Entry{
			{Param: "_id", Type: search.Token, Value: id},
			{Param: "_lastUpdated", Type: search.Date, Low: updated.UnixMicro(), High: updated.UnixMicro() + 1000},
			{Param: "status", Type: search.Token, Value: "free"},
			{Param: "start", Type: search.Date, Low: start, High: start + 1},
		}
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.Put(ctx, &store.Write{Resource: res, Index: index})
		}); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 1, at)
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return store.PutAll(ctx, tx, []*store.Write{{Resource: &fhir.Resource{Type: "Slot", ID: "b", Version: 1, LastUpdated: at,
			JSON: []byte(`{"resourceType":"Slot","id":"b"}`)}, Index: []search.Entry{
			{Param: "_id", Type: search.Token, Value: "b"},
			{Param: "_lastUpdated", Type: search.Date, Low: at.UnixMicro(), High: at.UnixMicro() + 1000}}}})
	}); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.wdb.QueryRow(`SELECT (SELECT count(*) FROM idx_token t JOIN params p ON p.pid = t.pid WHERE p.code IN ('_id', '_lastUpdated'))
		+ (SELECT count(*) FROM idx_date d JOIN params p ON p.pid = d.pid WHERE p.code IN ('_id', '_lastUpdated'))`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d index rows for _id and _lastUpdated, want none", rows)
	}
	dateRows := func() (n int) {
		t.Helper()
		if err := s.wdb.QueryRow(`SELECT count(*) FROM idx_date d JOIN resources r ON r.rid = d.rid WHERE r.id = 'a'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := dateRows(); n != 1 {
		t.Errorf("%d date rows for Slot/a, want 1 (start)", n)
	}
	// A new version changing only lastUpdated keeps the date table's rows
	// as they are: its digest part is unchanged.
	var before []byte
	s.wdb.QueryRow(`SELECT digest FROM resources WHERE id = 'a'`).Scan(&before)
	write("a", 2, at.Add(time.Hour))
	var after []byte
	s.wdb.QueryRow(`SELECT digest FROM resources WHERE id = 'a'`).Scan(&after)
	bt, _ := digestTables(before)
	at2, _ := digestTables(after)
	if string(bt[tDate]) != string(at2[tDate]) {
		t.Errorf("the date rows' digest changed with lastUpdated alone")
	}

	later := at.Add(30 * time.Minute).UnixMicro()
	for _, tt := range []struct {
		name string
		expr search.Expr
		want int
	}{
		{"_id:missing=false", search.Missing{Param: "_id"}, 2},
		{"_id:missing=true", search.Missing{Param: "_id", Missing: true}, 0},
		{"_lastUpdated:missing=false", search.Missing{Param: "_lastUpdated"}, 2},
		{"_lastUpdated:missing=true", search.Missing{Param: "_lastUpdated", Missing: true}, 0},
		{"_id=a", search.IDIn{IDs: []string{"a"}}, 1},
		{"_lastUpdated=gt(30 min later)", search.DateMatch{Param: "_lastUpdated", Prefix: search.Gt, Low: later, High: later + 1}, 1},
		{"_lastUpdated=lt(30 min later)", search.DateMatch{Param: "_lastUpdated", Prefix: search.Lt, Low: later, High: later + 1}, 1},
		{"status:missing=true", search.Missing{Param: "status", Missing: true}, 1},
	} {
		page, err := s.Search(ctx, &search.Query{Type: "Slot", Filter: []search.Expr{tt.expr}, Count: 10, Total: search.TotalAccurate})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(page.Resources) != tt.want {
			t.Errorf("Slot?%s: %d resources, want %d", tt.name, len(page.Resources), tt.want)
		}
	}
}

// TestMigrateColumnParams: the _id and _lastUpdated rows an older release
// wrote are gone once the database is opened again; other rows stay.
func TestMigrateColumnParams(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	putPatients(t, s, 0, 3)
	// As an older release left it: the rows of _id and _lastUpdated.
	for _, stmt := range []string{
		`INSERT INTO params (type, code) VALUES ('Patient', '_id'), ('Patient', '_lastUpdated'), ('Patient', 'name')`,
		`INSERT INTO idx_token (pid, system, value, text, rid) SELECT p.pid, '', r.id, '', r.rid FROM params p, resources r WHERE p.code = '_id'`,
		`INSERT INTO idx_date (pid, low, high, rid) SELECT p.pid, 1, 2, r.rid FROM params p, resources r WHERE p.code = '_lastUpdated'`,
		`INSERT INTO idx_string (pid, text, value, rid) SELECT p.pid, 'kept', 'kept', r.rid FROM params p, resources r WHERE p.code = 'name'`,
	} {
		if _, err := s.wdb.Exec(stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var gone, kept int
	if err := s.wdb.QueryRow(`SELECT (SELECT count(*) FROM idx_token t JOIN params p ON p.pid = t.pid WHERE p.code = '_id')
		+ (SELECT count(*) FROM idx_date d JOIN params p ON p.pid = d.pid WHERE p.code = '_lastUpdated'),
		(SELECT count(*) FROM idx_string x JOIN params p ON p.pid = x.pid WHERE p.code = 'name')`).Scan(&gone, &kept); err != nil {
		t.Fatal(err)
	}
	if gone != 0 || kept != 3 {
		t.Errorf("after opening: %d rows of _id and _lastUpdated (want 0), %d of name (want 3)", gone, kept)
	}
}
