package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestObserveCommits: every committed batch is reported once with the
// requests it carried (so they add up to the updates made, however the
// writer grouped them) and its timings; a lone update that fails rolls
// its batch back and is not reported; nil stops the reports.
func TestObserveCommits(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var got []sqlite.CommitStats
	s.ObserveCommits(func(cs sqlite.CommitStats) {
		mu.Lock()
		got = append(got, cs)
		mu.Unlock()
	})
	ctx := context.Background()
	put := func(id string) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Patient", ID: id, Version: 1, LastUpdated: time.Now(),
				JSON: []byte(`{"resourceType":"Patient","id":"` + id + `"}`)}})
		})
	}
	if err := s.Update(ctx, func(context.Context, store.Tx) error { return errors.New("refused") }); err == nil {
		t.Fatal("a refused update succeeded")
	}
	if len(got) != 0 {
		t.Fatalf("a batch rolled back was reported: %+v", got)
	}
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := put(fmt.Sprintf("p%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	total := 0
	for _, cs := range got {
		total += cs.Requests
		if cs.Requests < 1 || cs.Commit <= 0 || cs.Batch < cs.Commit {
			t.Errorf("implausible report %+v: want at least one request and 0 < Commit <= Batch", cs)
		}
	}
	mu.Unlock()
	if total != n {
		t.Errorf("reports carried %d requests in %d batches, want %d", total, len(got), n)
	}
	before := len(got)
	s.ObserveCommits(nil)
	if err := put("after"); err != nil {
		t.Fatal(err)
	}
	if len(got) != before {
		t.Errorf("reported after ObserveCommits(nil): %+v", got[before:])
	}
}
