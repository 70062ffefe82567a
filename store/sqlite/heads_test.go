package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// TestHeadsFollowWrites: a Read after each kind of write answers the
// written version, whether or not the cache held the resource before, and
// a write that rolled back changes nothing.
func TestHeadsFollowWrites(t *testing.T) {
	ctx := context.Background()
	rollback := errors.New("roll back")
	for _, cacheSize := range []int64{0, -1} {
		t.Run(fmt.Sprintf("cache=%d", cacheSize), func(t *testing.T) {
			f := newCacheFixture(t, cacheSize)
			steps := []struct {
				name    string
				write   func()
				version int64
				gone    bool
			}{
				{"create", func() { f.put(f.slot("a", 1, "free")) }, 1, false},
				{"update", func() { f.put(f.slot("a", 2, "busy")) }, 2, false},
				{"delete", func() { f.del("a", 3) }, 3, true},
				{"create again", func() { f.put(f.slot("a", 4, "free")) }, 4, false},
				{"rolled back", func() {
					err := f.s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
						if err := tx.Put(ctx, f.slot("a", 5, "busy")); err != nil {
							return err
						}
						return rollback
					})
					if !errors.Is(err, rollback) {
						t.Fatalf("Update: %v", err)
					}
				}, 4, false},
				{"bulk", func() {
					if err := f.s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
						return store.PutAll(ctx, tx, []*store.Write{f.slot("a", 5, "busy"), f.slot("b", 1, "free")})
					}); err != nil {
						t.Fatal(err)
					}
				}, 5, false},
			}
			for _, st := range steps {
				// Read before the write (so the cache holds the old row)
				// and twice after it.
				f.s.Read(ctx, "Slot", "a")
				st.write()
				for range 2 {
					res, err := f.s.Read(ctx, "Slot", "a")
					var got int64
					if res != nil {
						got = res.Version
					}
					if st.gone {
						if fhir.KindOf(err) != fhir.Gone || got != st.version {
							t.Fatalf("%s: Read gave version %d, %v; want version %d gone", st.name, got, err, st.version)
						}
						continue
					}
					if err != nil || got != st.version {
						t.Fatalf("%s: Read gave version %d, %v; want version %d", st.name, got, err, st.version)
					}
					checkBody(t, res)
				}
			}
			if _, err := f.s.Read(ctx, "Slot", "nobody"); fhir.KindOf(err) != fhir.NotFound {
				t.Errorf("Read of an unknown id: %v", err)
			}
			if st := f.s.heads.stats(); (cacheSize >= 0) != (st.Hits > 0) {
				t.Errorf("heads cache with BodyCache %d: %+v", cacheSize, st)
			}
		})
	}
}

// TestHeadsConcurrentReads: readers racing a writer never read a version
// older than one already acknowledged (run it with -race).
func TestHeadsConcurrentReads(t *testing.T) {
	f := newCacheFixture(t, 0)
	ctx := context.Background()
	f.put(f.slot("hot", 1, "free"))
	var acked atomic.Int64
	acked.Store(1)
	var stale atomic.Int64
	stop := racing(8, func() {
		want := acked.Load()
		res, err := f.s.Read(ctx, "Slot", "hot")
		if err != nil {
			t.Error(err)
			return
		}
		if res.Version < want {
			stale.Add(1)
		}
		checkBody(t, res)
	})
	for v := int64(2); v <= 300; v++ {
		f.put(f.slot("hot", v, "free"))
		acked.Store(v)
	}
	stop()
	if n := stale.Load(); n > 0 {
		t.Errorf("%d reads answered a version older than one acknowledged before they began", n)
	}
}

// racing calls check from n goroutines, over and over (each at least
// once), until the stop it returns is called; stop waits for them to end.
func racing(n int, check func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for { // at least once each, however late the goroutine starts
				check()
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
