package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestDurablePragmas checks the settings an acknowledged write's survival
// rests on: the write connection is in WAL mode with synchronous=FULL, so
// every commit is fsynced before Update returns.
func TestDurablePragmas(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
	} {
		var got string
		if err := s.wdb.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
}

// TestCancelledUpdateLeavesBatchIntact cancels one Update's context while
// its statement runs in a batch that other Updates share. SQLite answers an
// interrupted write by rolling back the whole transaction, so an
// interrupt would undo the batch's other savepoints and let the Updates
// after it commit outside the batch. The contract must hold for each:
// Update returns nil exactly when its write is stored.
func TestCancelledUpdateLeavesBatchIntact(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Hold the writer so the next Updates queue up and share one batch.
	hold, held := make(chan struct{}), make(chan struct{})
	go s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		close(held)
		<-hold
		return nil
	})
	<-held

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := context.Background()
			if i == 1 {
				c = ctx
			}
			errs[i] = s.Update(c, func(ctx context.Context, tx store.Tx) error {
				if err := tx.Put(ctx, &store.Write{Resource: storetest.Version("Patient", fmt.Sprint("p", i), 1)}); err != nil {
					return err
				}
				if i != 1 {
					return nil
				}
				// A write statement long enough to be interrupted: cancel
				// lands while it runs.
				time.AfterFunc(20*time.Millisecond, cancel)
				_, err := tx.(*txn).exec(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000)
					INSERT INTO params (type, code) SELECT 'Slow', max(x) FROM c`)
				return err
			})
		}()
		time.Sleep(20 * time.Millisecond) // queue in order
	}
	close(hold)
	wg.Wait()

	for i, uerr := range errs {
		_, rerr := s.Read(context.Background(), "Patient", fmt.Sprint("p", i))
		stored := rerr == nil
		if !stored && fhir.KindOf(rerr) != fhir.NotFound {
			t.Fatalf("Read p%d: %v", i, rerr)
		}
		if (uerr == nil) != stored {
			t.Errorf("Update %d returned %v, but stored = %v", i, uerr, stored)
		}
		if i != 1 && uerr != nil {
			t.Errorf("Update %d, not cancelled, failed: %v", i, uerr)
		}
	}
	// The writer still works, and parameter ids are consistent.
	if err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		return tx.Put(ctx, &store.Write{Resource: storetest.Version("Patient", "after", 1)})
	}); err != nil {
		t.Errorf("Update after the cancelled one: %v", err)
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("the cancel never fired")
	}
}
