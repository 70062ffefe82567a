package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// cacheFixture is a store with Slots of one schedule and the registry
// that indexes and parses for it.
type cacheFixture struct {
	t   testing.TB
	s   *Store
	reg *search.Registry
	t0  time.Time
}

func newCacheFixture(t testing.TB, cacheSize int64) *cacheFixture {
	t.Helper()
	reg, err := search.NewRegistry(conformance.SearchParameters(), search.Options{
		StructureDefinitions: conformance.StructureDefinitions(), Terminology: conformance.Terminology(),
		ResourceTypes: conformance.Types().Writable, Location: time.UTC, Base: "https://signpost.test/fhir"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenOptions(t.TempDir(), Options{Pairs: search.DefaultPairs(), BodyCache: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &cacheFixture{t: t, s: s, reg: reg, t0: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
}

// slot returns Slot id's version v: its body names both, so a body from
// another version or resource is seen.
func (f *cacheFixture) slot(id string, v int64, status string) *store.Write {
	f.t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Slot","id":%q,"meta":{"versionId":"%d"},"schedule":{"reference":"Schedule/s1"},"status":%q,`+
		`"start":"2026-03-02T09:00:00Z","end":"2026-03-02T09:15:00Z","comment":"%s v%d"}`, id, v, status, id, v)
	idx, err := f.reg.Extract("Slot", []byte(body))
	if err != nil {
		f.t.Fatal(err)
	}
	return &store.Write{Index: idx, Resource: &fhir.Resource{Type: "Slot", ID: id, Version: v,
		LastUpdated: f.t0.Add(time.Duration(v) * time.Minute), JSON: []byte(body)}}
}

func (f *cacheFixture) put(ws ...*store.Write) {
	f.t.Helper()
	putEach(f.t, f.s, ws...)
}

// putEach stores ws in one transaction, a Put each.
func putEach(tb testing.TB, s *Store, ws ...*store.Write) {
	tb.Helper()
	if err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, w := range ws {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

func (f *cacheFixture) del(id string, v int64) {
	f.t.Helper()
	f.put(&store.Write{Resource: &fhir.Resource{Type: "Slot", ID: id, Version: v, LastUpdated: f.t0.Add(time.Duration(v) * time.Minute), Deleted: true}})
}

func (f *cacheFixture) query(qs string) *search.Query {
	f.t.Helper()
	typ, raw, _ := strings.Cut(qs, "?")
	params, err := url.ParseQuery(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	q, err := f.reg.Parse(typ, params, search.ParseOptions{Strict: true})
	if err != nil {
		f.t.Fatal(err)
	}
	return q
}

// checkBody fails unless res's body is its own version's.
func checkBody(t testing.TB, res *fhir.Resource) {
	t.Helper()
	if want := fmt.Sprintf(`"comment":"%s v%d"`, res.ID, res.Version); !strings.Contains(string(res.JSON), want) {
		t.Errorf("%s/%s version %d has body %s", res.Type, res.ID, res.Version, res.JSON)
	}
}

// pageShapes are the ways a page reads its bodies: the keyed page (the
// pair index drives and answers every condition), the general page (a
// _sort), SearchByDate's pair arms, and Read.
var pageShapes = []string{
	"Slot?schedule=Schedule/s1&status=free&start=ge2026-03-01",
	"Slot?status=free&_sort=-_lastUpdated",
	"bydate:Slot?schedule=Schedule/s1&status=free&start=ge2026-03-01",
}

// searchAll returns the ids and bodies shape finds, checking each body.
func (f *cacheFixture) searchAll(shape string) map[string]string {
	f.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	var page *store.Page
	var err error
	if q, ok := strings.CutPrefix(shape, "bydate:"); ok {
		var used bool
		page, used, err = f.s.SearchByDate(ctx, f.query(q), "start")
		if err == nil && !used {
			f.t.Fatalf("%s: SearchByDate declined", q)
		}
	} else {
		page, err = f.s.Search(ctx, f.query(shape))
	}
	if err != nil {
		f.t.Fatalf("%s: %v", shape, err)
	}
	for _, r := range page.Resources {
		checkBody(f.t, r)
		out[r.ID] = string(r.JSON)
	}
	return out
}

// TestBodyCacheFollowsVersions: after an update between two searches (or
// reads) each shape returns the new body, and a deleted resource's cached
// body never appears, though its bodies are in the cache.
func TestBodyCacheFollowsVersions(t *testing.T) {
	for _, shape := range pageShapes {
		t.Run(shape, func(t *testing.T) {
			f := newCacheFixture(t, 0)
			f.put(f.slot("a", 1, "free"), f.slot("b", 1, "free"), f.slot("c", 1, "free"))
			if got := f.searchAll(shape); len(got) != 3 {
				t.Fatalf("first search: %v", got)
			}
			for _, id := range []string{"a", "b", "c"} {
				if _, err := f.s.Read(context.Background(), "Slot", id); err != nil {
					t.Fatal(err)
				}
			}
			if st := f.s.bodies.stats(); st.Entries != 3 {
				t.Fatalf("cache after the first search: %+v, want 3 entries", st)
			}
			f.put(f.slot("b", 2, "free"))
			f.del("c", 2)
			got := f.searchAll(shape)
			if len(got) != 2 || !strings.Contains(got["b"], "b v2") || got["c"] != "" {
				t.Errorf("after update and delete: %v", got)
			}
			res, err := f.s.Read(context.Background(), "Slot", "b")
			if err != nil || res.Version != 2 {
				t.Fatalf("Read b: %v, %v", res, err)
			}
			checkBody(t, res)
			if res, err := f.s.Read(context.Background(), "Slot", "c"); fhir.KindOf(err) != fhir.Gone || len(res.JSON) != 0 {
				t.Errorf("Read of deleted c: %v, body %s", err, res.JSON)
			}
			// A status change takes b off the page: its cached body does
			// not bring it back.
			f.put(f.slot("b", 3, "busy"))
			if got := f.searchAll(shape); len(got) != 1 || got["a"] == "" {
				t.Errorf("after b became busy: %v", got)
			}
			if st := f.s.bodies.stats(); st.Hits == 0 {
				t.Errorf("no cache hits: %+v", st)
			}
		})
	}
}

// TestBodyCacheIgnoresUncommitted: a body a write transaction reads and
// then rolls back is never cached, since SQLite gives its seq to the next
// history row.
func TestBodyCacheIgnoresUncommitted(t *testing.T) {
	f := newCacheFixture(t, 0)
	f.put(f.slot("a", 1, "free"))
	ctx := context.Background()
	rollback := errors.New("roll back")
	err := f.s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Put(ctx, f.slot("ghost", 1, "free")); err != nil {
			return err
		}
		page, err := tx.Search(ctx, f.query(pageShapes[0]))
		if err != nil {
			return err
		}
		if len(page.Resources) != 2 {
			t.Errorf("inside the transaction: %d slots, want 2", len(page.Resources))
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("Update: %v", err)
	}
	f.put(f.slot("real", 1, "free")) // takes the rolled-back seq
	for _, shape := range pageShapes {
		got := f.searchAll(shape)
		if len(got) != 2 || got["real"] == "" || got["a"] == "" {
			t.Errorf("%s: %v", shape, got)
		}
	}
	res, err := f.s.Read(ctx, "Slot", "real")
	if err != nil {
		t.Fatal(err)
	}
	checkBody(t, res)
}

// TestBodyCacheEvicts: with a small cache, many pages of bodies keep it
// within its budget and every page stays right.
func TestBodyCacheEvicts(t *testing.T) {
	const size = 64 << 10
	f := newCacheFixture(t, size)
	var ws []*store.Write
	for i := range 600 {
		ws = append(ws, f.slot(fmt.Sprintf("s%03d", i), 1, "free"))
	}
	f.put(ws...)
	for round := range 3 {
		q := f.query("Slot?schedule=Schedule/s1&status=free&start=ge2026-03-01&_count=50")
		n := 0
		for {
			page, err := f.s.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Resources {
				checkBody(t, r)
			}
			n += len(page.Resources)
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		if n != 600 {
			t.Fatalf("round %d: %d slots, want 600", round, n)
		}
		if st := f.s.bodies.stats(); st.Bytes > size || st.Entries >= 600 {
			t.Errorf("round %d: cache holds %d entries, %d bytes; budget %d", round, st.Entries, st.Bytes, size)
		}
	}
}

// TestBodyCacheKeepsHotEntries: the two generations keep what is read
// while newer entries pass through, and a body too big for a shard is
// not kept.
func TestBodyCacheKeepsHotEntries(t *testing.T) {
	c := newBodyCache(bodyShards * 2 * 10 * (100 + entryOverhead)) // ten 100-byte bodies per generation and shard
	body := make([]byte, 100)
	hot := int64(0) // shard 0
	c.put(hot, body)
	for i := int64(1); i < 1000; i++ {
		c.put(i*bodyShards, body) // all in shard 0
		if _, ok := c.get(hot); !ok {
			t.Fatalf("hot entry evicted after %d puts", i)
		}
	}
	if _, ok := c.get(bodyShards); ok {
		t.Errorf("an entry of the first puts survived 1,000 more")
	}
	if st := c.stats(); st.Bytes > 2*10*(100+entryOverhead) {
		t.Errorf("shard 0 holds %d bytes", st.Bytes)
	}
	c.put(7, make([]byte, 4000))
	if _, ok := c.get(7); ok {
		t.Errorf("a body larger than a generation was cached")
	}
	if newBodyCache(-1) != nil {
		t.Errorf("a negative size made a cache")
	}
}

// TestBodyCacheSharedBodies: a caller appending to a returned body does
// not change what the next caller gets.
func TestBodyCacheSharedBodies(t *testing.T) {
	f := newCacheFixture(t, 0)
	f.put(f.slot("a", 1, "free"))
	ctx := context.Background()
	first, err := f.s.Read(ctx, "Slot", "a")
	if err != nil {
		t.Fatal(err)
	}
	_ = append(first.JSON, "garbage"...)
	second, err := f.s.Read(ctx, "Slot", "a")
	if err != nil {
		t.Fatal(err)
	}
	if string(second.JSON) != string(first.JSON) || cap(second.JSON) != len(second.JSON) {
		t.Errorf("body changed or has spare capacity: %q (cap %d)", second.JSON, cap(second.JSON))
	}
}

// TestBodyCacheConcurrent: readers searching and reading while a writer
// updates every slot always get each version's own body (run with -race).
func TestBodyCacheConcurrent(t *testing.T) {
	f := newCacheFixture(t, 32<<10) // small: evictions happen too
	const slots = 40
	var ws []*store.Write
	for i := range slots {
		ws = append(ws, f.slot(fmt.Sprintf("s%02d", i), 1, "free"))
	}
	f.put(ws...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				if g%2 == 0 {
					res, err := f.s.Read(ctx, "Slot", fmt.Sprintf("s%02d", n%slots))
					if err != nil {
						if ctx.Err() == nil {
							t.Error(err)
						}
						return
					}
					checkBody(t, res)
					continue
				}
				page, err := f.s.Search(ctx, f.query(pageShapes[n%2]))
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				if len(page.Resources) != slots {
					t.Errorf("%d slots, want %d", len(page.Resources), slots)
				}
				for _, r := range page.Resources {
					checkBody(t, r)
				}
			}
		}()
	}
	for v := int64(2); v <= 30; v++ {
		ws = ws[:0]
		for i := range slots / 4 {
			ws = append(ws, f.slot(fmt.Sprintf("s%02d", (int(v)*7+i)%slots), 0, "free"))
		}
		// Versions per slot: read the current one and add one.
		if err := f.s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
			for _, w := range ws {
				cur, err := tx.Read(ctx, "Slot", w.Resource.ID)
				if err != nil {
					return err
				}
				if err := tx.Put(ctx, f.slot(w.Resource.ID, cur.Version+1, "free")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
}

// TestHistoryAppendOnly keeps the body cache's premise: nothing in this
// package changes or deletes a history row once written, but the purge
// (purge.go), which never removes the newest row, so that no seq it
// removes is given again, and drops the cache's entries for the seqs it
// removes (TestPurgeNeverReusesSeq).
func TestHistoryAppendOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	bad := regexp.MustCompile(`(?i)(delete\s+from|update(\s+or\s+\w+)?|replace\s+into|insert\s+or\s+replace\s+into|drop\s+table(\s+if\s+exists)?|alter\s+table)\s+history\b`)
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "purge.go" {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := bad.Find(src); m != nil {
			t.Errorf("%s: %q: history rows must stay as written while the body cache keeps them by seq", name, m)
		}
	}
}

// BenchmarkBodyCacheGet measures a hit from 16 goroutines on 2 cores
// (the read pool's size), 51 gets a page: the cost of the shard locks.
func BenchmarkBodyCacheGet(b *testing.B) {
	c := newBodyCache(0)
	body := make([]byte, 500)
	for seq := range int64(10000) {
		c.put(seq, body)
	}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		seq := n.Add(1) * 51
		for pb.Next() {
			if _, ok := c.get(seq % 10000); !ok {
				b.Error("miss")
				return
			}
			seq++
		}
	})
}
