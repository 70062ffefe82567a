package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// TestStatsSurviveRestart: a statistic the planner computed is saved, and
// after the store is opened again it is answered from what was saved,
// without running its query.
func TestStatsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for i := range 5 {
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
	k := statKey{table: -1, pid: -1, typ: "Patient"}
	query := "SELECT count(*), 0, 0 FROM resources WHERE type = ? AND deleted = 0"
	if got := s.plan.stat(s.rdb, k, query, "Patient"); got[0] != 5 {
		t.Fatalf("computed statistic %v, want 5 resources", got)
	}
	// Saving is asynchronous: wait for the row.
	for i := 0; ; i++ {
		var n int
		if err := s.rdb.QueryRow("SELECT count(*) FROM idx_stats WHERE tbl = -1 AND typ = 'Patient'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if i == 100 {
			t.Fatal("the statistic was not saved")
		}
		time.Sleep(10 * time.Millisecond)
	}
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
