// Package gens is a bounded, sharded cache of two generations per shard.
package gens

import "sync"

// Cache is a bounded, sharded map, safe for concurrent use: what the SQLite
// store's caches (bodies, heads, pages) and the search registry's
// reference memo are made of. Each shard keeps two generations: entries are added to
// the young one; when it holds half the shard's budget the old one is
// dropped and the young one becomes old. A hit in the old generation moves
// the entry to the young one, so entries in use survive and the rest age
// out: LRU's effect at the cost of a map lookup, within the budget.
//
// Each shard also counts its changes (epoch): a caller that read a value
// from the database may add it only if nothing invalidated its key's
// shard since it began (PutIf), so a value read before a commit never
// outlives that commit's invalidation.
type Cache[K comparable, V any] struct {
	shards []shard[K, V]
	half   int64 // each generation's budget, per shard
	size   func(V) int64
	hash   func(K) uint64
}

type shard[K comparable, V any] struct {
	mu                 sync.Mutex
	young, old         map[K]V
	youngSize          int64
	epoch              uint64
	hits, misses, adds int64
	_                  [64]byte // keeps shards' locks off each other's cache lines
}

// New returns a cache of about budget units (as size counts them) in
// n shards.
func New[K comparable, V any](n int, budget int64, size func(V) int64, hash func(K) uint64) *Cache[K, V] {
	g := &Cache[K, V]{shards: make([]shard[K, V], n), half: max(budget/int64(n)/2, 1), size: size, hash: hash}
	for i := range g.shards {
		g.shards[i].young = map[K]V{}
	}
	return g
}

func (g *Cache[K, V]) shardOf(k K) *shard[K, V] {
	return &g.shards[g.hash(k)%uint64(len(g.shards))]
}

// Get returns k's value, if cached.
func (g *Cache[K, V]) Get(k K) (V, bool) {
	sh := g.shardOf(k)
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

// Epoch returns k's shard's change count, for PutIf.
func (g *Cache[K, V]) Epoch(k K) uint64 {
	sh := g.shardOf(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.epoch
}

// Put caches v under k unless k is cached already. A value bigger than a
// generation is not kept.
func (g *Cache[K, V]) Put(k K, v V) { g.PutIf(k, v, nil) }

// PutIf is put, done only if k's shard's epoch is still *since (nil:
// always).
func (g *Cache[K, V]) PutIf(k K, v V, since *uint64) {
	if g.size(v) > g.half {
		return
	}
	sh := g.shardOf(k)
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

// Forget removes the keys' entries and moves their shards' epochs on.
func (g *Cache[K, V]) Forget(keys []K) {
	for _, k := range keys {
		sh := g.shardOf(k)
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

// ForgetAll empties the cache and moves every shard's epoch on.
func (g *Cache[K, V]) ForgetAll() {
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		sh.young, sh.old, sh.youngSize = map[K]V{}, nil, 0
		sh.epoch++
		sh.mu.Unlock()
	}
}

func (sh *shard[K, V]) addLocked(g *Cache[K, V], k K, v V) {
	n := g.size(v)
	if sh.youngSize+n > g.half {
		sh.old, sh.young, sh.youngSize = sh.young, make(map[K]V, len(sh.young)), 0
	}
	sh.young[k] = v
	sh.youngSize += n
}

// Stats are a cache's counters since it was made, and what it holds now
// (Bytes as the cache counts them against its budget).
type Stats struct {
	Hits, Misses, Adds, Entries, Bytes int64
}

// Stats returns the cache's counters; a nil cache has none.
func (g *Cache[K, V]) Stats() Stats {
	var st Stats
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
