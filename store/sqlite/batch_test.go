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

// TestBatchFailuresAreIsolated queues many updates behind a blocked one,
// so that they share a batch, and has some of them fail or panic after
// writing: each failed update must leave nothing, each other one must
// commit, whatever way the writer runs the batch. It runs twice, so the
// second round starts right after a batch with failures.
func TestBatchFailuresAreIsolated(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(ctx context.Context, tx store.Tx, id string) error {
		return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Patient", ID: id, Version: 1, LastUpdated: time.Now(),
			JSON: []byte(`{"resourceType":"Patient","id":"` + id + `"}`)}})
	}
	errRefused := errors.New("refused")
	for round := range 2 {
		release := make(chan struct{})
		started := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				close(started)
				<-release
				return put(ctx, tx, fmt.Sprintf("r%d-blocker", round))
			})
			if err != nil {
				t.Errorf("blocker: %v", err)
			}
		}()
		<-started
		const n = 40
		got := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
					if err := put(ctx, tx, fmt.Sprintf("r%d-p%d", round, i)); err != nil {
						return err
					}
					switch i % 4 {
					case 1:
						return errRefused
					case 3:
						panic("rule bug")
					}
					return nil
				})
			}()
		}
		time.Sleep(50 * time.Millisecond) // let them queue behind the blocker
		close(release)
		wg.Wait()
		for i := range n {
			id := fmt.Sprintf("r%d-p%d", round, i)
			_, rerr := s.Read(ctx, "Patient", id)
			switch i % 4 {
			case 1, 3:
				if got[i] == nil {
					t.Errorf("round %d: Update %s succeeded, want its error", round, id)
				}
				if fhir.KindOf(rerr) != fhir.NotFound {
					t.Errorf("round %d: Read %s of a failed update: %v, want NotFound", round, id, rerr)
				}
			default:
				if got[i] != nil || rerr != nil {
					t.Errorf("round %d: %s: Update %v, Read %v; want both nil", round, id, got[i], rerr)
				}
			}
		}
		if i := 1; !errors.Is(got[i], errRefused) {
			t.Errorf("round %d: Update error %v, want %v", round, got[i], errRefused)
		}
	}
}
