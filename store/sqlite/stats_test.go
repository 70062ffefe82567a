package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// putPatients writes n new Patients from index from, in one transaction.
func putPatients(t *testing.T, s *Store, from, n int) {
	t.Helper()
	if err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for i := from; i < from+n; i++ {
			id := fmt.Sprint("p", i)
			if err := tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Patient", ID: id, Version: 1, LastUpdated: time.Now(),
				JSON: []byte(`{"resourceType":"Patient","id":"` + id + `"}`)}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// waitSaved waits until the statistic k is saved (saving is asynchronous).
func waitSaved(t *testing.T, s *Store, k statKey, v0 float64) {
	t.Helper()
	for i := 0; ; i++ {
		var n int
		if err := s.rdb.QueryRow("SELECT count(*) FROM idx_stats WHERE tbl = ? AND pid = ? AND typ = ? AND v0 = ?", k.table, k.pid, k.typ, v0).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if i == 100 {
			t.Fatalf("the statistic %v = %v was not saved", k, v0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStaleStatsNotLoaded: a statistic saved before many more versions
// were written (by a bulk import, another process, or before a crash) is
// computed afresh after a restart instead of being trusted; one saved
// before a few writes is kept.
func TestStaleStatsNotLoaded(t *testing.T) {
	k := statKey{table: -1, pid: -1, typ: "Patient"}
	query := "SELECT count(*), 0, 0 FROM resources WHERE type = ? AND deleted = 0"
	tests := []struct {
		later int     // Patients written after the statistic was saved, before the restart
		want  float64 // the statistic after the restart
	}{
		{later: 10, want: 5},      // within max(500, n/4): the saved 5 is kept
		{later: 2000, want: 2005}, // far more: computed again
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.later), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			putPatients(t, s, 0, 5)
			if got := s.plan.stat(s.rdb, k, query, "Patient"); got[0] != 5 {
				t.Fatalf("computed statistic %v, want 5 resources", got)
			}
			waitSaved(t, s, k, 5)
			s.Close()
			// Another process writes without searching, so it never
			// refreshes the statistic.
			if s, err = Open(dir); err != nil {
				t.Fatal(err)
			}
			putPatients(t, s, 5, tt.later)
			s.Close()
			if s, err = Open(dir); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.plan.stat(s.rdb, k, query, "Patient"); got[0] != tt.want {
				t.Errorf("statistic after %d more writes and a restart = %v, want %v", tt.later, got[0], tt.want)
			}
		})
	}
}

// TestStatsSurviveRestart: a statistic the planner computed is saved, and
// after the store is opened again it is answered from what was saved,
// without running its query.
func TestStatsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	putPatients(t, s, 0, 5)
	k := statKey{table: -1, pid: -1, typ: "Patient"}
	query := "SELECT count(*), 0, 0 FROM resources WHERE type = ? AND deleted = 0"
	if got := s.plan.stat(s.rdb, k, query, "Patient"); got[0] != 5 {
		t.Fatalf("computed statistic %v, want 5 resources", got)
	}
	waitSaved(t, s, k, 5)
	s.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A query giving something else shows whether it ran.
	got := s.plan.stat(s.rdb, k, "SELECT 99, 0, 0")
	if want := [3]float64{5, 0, 0}; got != want {
		t.Errorf("statistic after a restart = %v, want the saved %v", got, want)
	}
}
