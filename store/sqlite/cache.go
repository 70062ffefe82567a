package sqlite

import "sync"

// gens is the bounded, sharded map the store's caches are made of (the
// body cache, bodycache.go, and the heads cache, heads.go), safe for
// concurrent use. Each shard keeps two generations: entries are added to
// the young one; when it holds half the shard's budget the old one is
// dropped and the young one becomes old. A hit in the old generation moves
// the entry to the young one, so entries in use survive and the rest age
// out: LRU's effect at the cost of a map lookup, within the budget.
//
// Each shard also counts its changes (epoch): a caller that read a value
// from the database may add it only if nothing invalidated its key's
// shard since it began (putIf), so a value read before a commit never
// outlives that commit's invalidation.
type gens[K comparable, V any] struct {
	shards []gensShard[K, V]
	half   int64 // each generation's budget, per shard
	size   func(V) int64
	hash   func(K) uint64
}

type gensShard[K comparable, V any] struct {
	mu                 sync.Mutex
	young, old         map[K]V
	youngSize          int64
	epoch              uint64
	hits, misses, adds int64
	_                  [64]byte // keeps shards' locks off each other's cache lines
}

// newGens returns a cache of about budget units (as size counts them) in
// n shards.
func newGens[K comparable, V any](n int, budget int64, size func(V) int64, hash func(K) uint64) *gens[K, V] {
	g := &gens[K, V]{shards: make([]gensShard[K, V], n), half: max(budget/int64(n)/2, 1), size: size, hash: hash}
	for i := range g.shards {
		g.shards[i].young = map[K]V{}
	}
	return g
}

func (g *gens[K, V]) shard(k K) *gensShard[K, V] {
	return &g.shards[g.hash(k)%uint64(len(g.shards))]
}

// get returns k's value, if cached.
func (g *gens[K, V]) get(k K) (V, bool) {
	sh := g.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if v, ok := sh.young[k]; ok {
		sh.hits++
		return v, true
	}
	if v, ok := sh.old[k]; ok {
		sh.hits++
		delete(sh.old, k)
		sh.addLocked(g, k, v)
		return v, true
	}
	sh.misses++
	var zero V
	return zero, false
}

// epoch returns k's shard's change count, for putIf.
func (g *gens[K, V]) epoch(k K) uint64 {
	sh := g.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.epoch
}

// put caches v under k unless k is cached already. A value bigger than a
// generation is not kept.
func (g *gens[K, V]) put(k K, v V) { g.putIf(k, v, nil) }

// putIf is put, done only if k's shard's epoch is still *since (nil:
// always).
func (g *gens[K, V]) putIf(k K, v V, since *uint64) {
	if g.size(v) > g.half {
		return
	}
	sh := g.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if since != nil && sh.epoch != *since {
		return
	}
	if _, ok := sh.young[k]; ok {
		return
	}
	delete(sh.old, k)
	sh.adds++
	sh.addLocked(g, k, v)
}

// forget removes the keys' entries and moves their shards' epochs on.
func (g *gens[K, V]) forget(keys []K) {
	for _, k := range keys {
		sh := g.shard(k)
		sh.mu.Lock()
		if _, ok := sh.young[k]; ok {
			delete(sh.young, k)
			// youngSize keeps counting it: the generation turns over a
			// little early, never late.
		}
		delete(sh.old, k)
		sh.epoch++
		sh.mu.Unlock()
	}
}

// forgetAll empties the cache and moves every shard's epoch on.
func (g *gens[K, V]) forgetAll() {
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		sh.young, sh.old, sh.youngSize = map[K]V{}, nil, 0
		sh.epoch++
		sh.mu.Unlock()
	}
}

func (sh *gensShard[K, V]) addLocked(g *gens[K, V], k K, v V) {
	n := g.size(v)
	if sh.youngSize+n > g.half {
		sh.old, sh.young, sh.youngSize = sh.young, make(map[K]V, len(sh.young)), 0
	}
	sh.young[k] = v
	sh.youngSize += n
}

// CacheStats are a cache's counters since the store opened, and what it
// holds now (Bytes as the cache counts them against its budget).
type CacheStats struct {
	Hits, Misses, Adds, Entries, Bytes int64
}

func (g *gens[K, V]) stats() CacheStats {
	var st CacheStats
	if g == nil {
		return st
	}
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		st.Hits += sh.hits
		st.Misses += sh.misses
		st.Adds += sh.adds
		st.Entries += int64(len(sh.young) + len(sh.old))
		for _, m := range []map[K]V{sh.young, sh.old} {
			for _, v := range m {
				st.Bytes += g.size(v)
			}
		}
		sh.mu.Unlock()
	}
	return st
}

// Caches reports the store's caches by name: "bodies" (bodycache.go),
// "heads" and "derived" (heads.go) and "pages" (pagecache.go); a cache
// that is off reports zeros.
func (s *Store) Caches() map[string]CacheStats {
	out := map[string]CacheStats{"bodies": s.bodies.stats(), "heads": s.heads.stats(), "pages": s.pages.stats(), "derived": {}}
	if s.heads != nil {
		out["derived"] = s.heads.derived.stats()
	}
	return out
}
