package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// TestLimitKeepsPlans: the same search shape asked for pages of different
// sizes, in turn, inside writes (the PAS adapter's lookups) and on the
// read pool, is planned once per connection, not once per run (see
// limitParam). It reads SQLite's own count of re-preparations of every
// statement on the writer's connection and on a read pool of one.
func TestLimitKeepsPlans(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.rdb.SetMaxOpenConns(1)
	ctx := context.Background()
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for i := range 50 {
			id := fmt.Sprint("a", i)
			res := &fhir.Resource{Type: "Appointment", ID: id, Version: 1, LastUpdated: at,
				JSON: []byte(`{"resourceType":"Appointment","id":"` + id + `","status":"booked"}`)}
			index := []search.Entry{{Param: "identifier", Type: search.Token, System: "urn:filler", Value: fmt.Sprint("F-", i)},
				{Param: "status", Type: search.Token, Value: "booked"}}
			if err := tx.Put(ctx, &store.Write{Resource: res, Index: index}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	query := func(i int) *search.Query {
		return &search.Query{Type: "Appointment", Count: []int{2, 100, 7}[i%3], Filter: []search.Expr{
			search.TokenIn{Param: "identifier", System: "urn:filler", HasSystem: true, Codes: []string{fmt.Sprint("F-", i%50)}}}}
	}
	const runs = 60
	for i := range runs {
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			page, err := tx.Search(ctx, query(i))
			if err == nil && len(page.Resources) != 1 {
				err = fmt.Errorf("found %d appointments, want 1", len(page.Resources))
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if page, err := s.Search(ctx, query(i)); err != nil || len(page.Resources) != 1 {
			t.Fatalf("read pool: %v, %v", page, err)
		}
	}
	for name, n := range map[string]map[string]int32{"writer": reprepared(t, s.wdb), "read pool": reprepared(t, s.rdb)} {
		for sql, k := range n {
			if k > 2 {
				t.Errorf("%s: prepared %d more times in %d runs: %.160s", name, k, runs, sql)
			}
		}
	}
}

// reprepared returns, per statement prepared on db's one open connection,
// how many times SQLite prepared it again (SQLITE_STMTSTATUS_REPREPARE).
// The driver keeps its connection's handles unexported; the test reads
// them by reflection.
func reprepared(t *testing.T, db *sql.DB) map[string]int32 {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string]int32{}
	if err := c.Raw(func(dc any) error {
		v := reflect.ValueOf(dc).Elem()
		db, tlsField := v.FieldByName("db"), v.FieldByName("tls")
		if !db.IsValid() || !tlsField.IsValid() {
			return fmt.Errorf("the driver's connection (%T) no longer has the fields db and tls this test reads", dc)
		}
		h := uintptr(db.Uint())
		tls := (*libc.TLS)(unsafe.Pointer(tlsField.Pointer()))
		for p := lib.Xsqlite3_next_stmt(tls, h, 0); p != 0; p = lib.Xsqlite3_next_stmt(tls, h, p) {
			out[libc.GoString(lib.Xsqlite3_sql(tls, p))] += lib.Xsqlite3_stmt_status(tls, p, lib.SQLITE_STMTSTATUS_REPREPARE, 0)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no statements found on the connection")
	}
	return out
}

// BenchmarkLimitShapes times one search statement run with page sizes of
// 3 and 101 in turn, its LIMIT bound bare ("LIMIT ?", planned again at
// every change of the count) and as limitParam's expression (planned
// once), on one read connection. The filler lookup of the PAS adapter has
// this shape.
func BenchmarkLimitShapes(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 1000 {
		if _, err := s.wdb.Exec(`INSERT INTO idx_token (pid, system, value, text, rid) VALUES (28, 'sys', ?, '', ?)`, fmt.Sprint("F-", i), i+1); err != nil {
			b.Fatal(err)
		}
	}
	const shape = "SELECT g.rid FROM (SELECT DISTINCT rid FROM (SELECT rid FROM idx_token WHERE pid = ?1 AND value IN (?2) AND system = ?3) ORDER BY rid"
	for _, limit := range []struct{ name, sql string }{{"bare", " LIMIT ?4"}, {"expression", " LIMIT ?4+0"}} {
		b.Run(limit.name, func(b *testing.B) {
			st, err := s.rdb.PrepareContext(ctx, shape+limit.sql+") g")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			i := 0
			for b.Loop() {
				rows, err := st.QueryContext(ctx, int64(28), fmt.Sprint("F-", i%1000), "sys", int64(3+98*(i%2)))
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
				i++
			}
		})
	}
}
