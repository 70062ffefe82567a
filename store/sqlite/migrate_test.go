package sqlite

import (
	"context"
	"database/sql"
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

// TestMigrateIndex: a database written before the planner's metadata
// (no date shapes, no pair rows) answers the hot slot search correctly
// after it is opened again.
func TestMigrateIndex(t *testing.T) {
	reg := storetest.Registry(t)
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	slot := func(id, schedule, start string) *store.Write {
		body := `{"resourceType":"Slot","id":"` + id + `","schedule":{"reference":"Schedule/` + schedule + `"},"status":"free","start":"` + start + `","end":"` + start + `"}`
		idx, err := reg.Extract("Slot", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &store.Write{Resource: &fhir.Resource{Type: "Slot", ID: id, Version: 1, LastUpdated: time.Now(), JSON: []byte(body)}, Index: idx}
	}
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, w := range []*store.Write{slot("a", "s1", "2026-03-10T09:00:00Z"), slot("b", "s1", "2026-03-11T09:00:00Z"), slot("c", "s2", "2026-03-10T09:00:00Z")} {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Make it look like a database from before: no shapes, no pair rows.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM idx_date_shape", "DELETE FROM idx_pair", "DELETE FROM params WHERE code LIKE '%+%'"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if s, err = Open(dir); err != nil {
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
