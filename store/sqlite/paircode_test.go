package sqlite

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestPairCode: the free-slot search, answered from the status carried in
// the pair rows, finds the same slots whether a row has the code, has none,
// is marked for probing (a resource with several status entries), or was
// written before the column existed and migrated on open.
func TestPairCode(t *testing.T) {
	reg := storetest.Registry(t)
	ctx := context.Background()
	slot := func(id, status string, extra ...search.Entry) *store.Write {
		body := `{"resourceType":"Slot","id":"` + id + `","schedule":{"reference":"Schedule/s1"},"status":"` + status +
			`","start":"2026-03-10T09:00:00Z","end":"2026-03-10T09:15:00Z"}`
		idx, err := reg.Extract("Slot", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &store.Write{Resource: &fhir.Resource{Type: "Slot", ID: id, Version: 1, LastUpdated: time.Now(), JSON: []byte(body)},
			Index: append(idx, extra...)}
	}
	// "both" has a second status entry, as no valid Slot has: its pair row
	// is marked for probing.
	writes := []*store.Write{slot("free1", "free"), slot("busy1", "busy"),
		slot("both", "busy", search.Entry{Param: "status", Type: search.Token, System: "http://hl7.org/fhir/slotstatus", Value: "free"})}
	tests := []struct {
		name    string
		query   string
		dropCol bool // make the database look as if written before the code column
		want    []string
	}{
		{"free", "status=free", false, []string{"both", "free1"}},
		{"busy", "status=busy", false, []string{"both", "busy1"}},
		{"free or busy", "status=free,busy", false, []string{"both", "busy1", "free1"}},
		// Slot status codes are indexed without a system; only the extra
		// entry has one. (This condition is probed, not read from the pair.)
		{"with a system", "status=http://hl7.org/fhir/slotstatus|free", false, []string{"both"}},
		{"free, migrated", "status=free", true, []string{"both", "free1"}},
		{"busy, migrated", "status=busy", true, []string{"both", "busy1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				for _, w := range writes {
					if err := tx.Put(ctx, w); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if tt.dropCol {
				s.Close()
				db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec("ALTER TABLE idx_pair DROP COLUMN code"); err != nil {
					t.Fatal(err)
				}
				db.Close()
				if s, err = Open(dir); err != nil {
					t.Fatal(err)
				}
			}
			defer s.Close()
			params, _ := url.ParseQuery("schedule=Schedule/s1&start=ge2026-03-10&start=le2026-03-10&" + tt.query)
			q, err := reg.Parse("Slot", params, search.ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range page.Resources {
				got = append(got, r.ID)
			}
			slices.Sort(got)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
			}
		})
	}
}
