package sqlite

import (
	"context"
	"github.com/signpost-fhir/signpost/internal/gens"
	"hash/maphash"
	"strconv"
	"sync/atomic"
)

// The page cache keeps the rows of keyed pair pages (the free-slot search:
// "free Slots of these schedules from this date", plan.go pairCandidate,
// search.go keyedRowsSQL) by their SQL and arguments, so that a page asked
// for again runs no SQL: its rows come from here, its current rows'
// bodies from the body cache. Under load every commit empties the read
// connections' page caches (WAL mode), and such a page was the server's
// most frequent and most costly query.
//
// Why it is correct: a keyed pair page is answered from idx_pair rows of
// its pair (cid) and its references alone (the driver covers every
// condition), and idx_pair rows change only in a write transaction's
// index writes, which record the (cid, referenced id) partitions of the
// rows they delete, update or insert (txn.touchPairs). After the commit,
// before answering any request of the batch, the writer moves those
// partitions' epochs on. A page is cached with the epochs its partitions
// had before its query ran, and is served only while they still have
// them. So, as with the heads cache (heads.go), a search that begins after
// a write was acknowledged never gets a page from before it. Epochs live
// in a fixed table by hash: two partitions sharing a slot only cost
// each other cached pages. Pages read inside write transactions never
// use it.

// pageSlots is the size of the epoch table.
const pageSlots = 4096

// pageBudget bounds the page cache: about 10,000 pages of 50 rows,
// counting pageRowCost per row.
const (
	pageBudget  = 64 << 20
	pageRowCost = 128
)

// pageRow is one row of a page as its SQL returns it.
type pageRow struct {
	typ, id               string
	version, updated, seq int64
}

// cachedPage is a page's rows, with the epoch slots of its partitions and
// the epochs they had before its query.
type cachedPage struct {
	rows   []pageRow
	slots  []uint32
	epochs []uint64
}

// pageCache is the page cache; nil is none (when the body cache is off).
type pageCache struct {
	pages  *gens.Cache[string, cachedPage]
	epochs [pageSlots]atomic.Uint64
}

var pageSeed = maphash.MakeSeed()

func newPageCache(bodyCache int64) *pageCache {
	if bodyCache < 0 {
		return nil
	}
	return &pageCache{pages: gens.New[string, cachedPage](headShards, pageBudget,
		func(p cachedPage) int64 { return int64(len(p.rows)+1) * pageRowCost },
		func(k string) uint64 { return maphash.String(pageSeed, k) })}
}

// pagePart names a partition: the pair's cid and a referenced id (of any
// type: a bare id may match several).
func pagePart(cid int64, refID string) string {
	return strconv.FormatInt(cid, 10) + "|" + refID
}

func pageSlot(part string) uint32 {
	return uint32(maphash.String(pageSeed, part) % pageSlots)
}

// pageKey is the cache key of a query: its SQL and arguments.
func pageKey(q frag) string {
	b := []byte(q.sql)
	for _, a := range q.args {
		b = appendKey(b, a)
	}
	return string(b)
}

// get returns the rows cached under key, if their partitions have not
// changed since.
func (c *pageCache) get(key string) ([]pageRow, bool) {
	p, ok := c.pages.Get(key)
	if !ok {
		return nil, false
	}
	for i, s := range p.slots {
		if c.epochs[s].Load() != p.epochs[i] {
			return nil, false
		}
	}
	return p.rows, true
}

// since returns the epochs of parts' slots, to take before a query whose
// rows put will cache.
func (c *pageCache) since(parts []string) cachedPage {
	p := cachedPage{slots: make([]uint32, len(parts)), epochs: make([]uint64, len(parts))}
	for i, part := range parts {
		p.slots[i] = pageSlot(part)
		p.epochs[i] = c.epochs[p.slots[i]].Load()
	}
	return p
}

// put caches rows under key with the epochs p took before the query. An
// older entry of key is replaced.
func (c *pageCache) put(key string, p cachedPage, rows []pageRow) {
	p.rows = rows
	c.pages.Forget([]string{key})
	c.pages.Put(key, p)
}

// changed moves the epochs of parts on: the writer calls it after a
// commit, before it answers.
func (c *pageCache) changed(parts []string) {
	if c == nil {
		return
	}
	for _, part := range parts {
		c.epochs[pageSlot(part)].Add(1)
	}
}

func (c *pageCache) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	return c.pages.Stats()
}

// touchPairs records, for the page cache, the partitions of resource row
// rid's idx_pair rows as they are now (old: before they are deleted or
// updated, read from the table) and as rs will write them.
func (t *txn) touchPairs(ctx context.Context, rid int64, rs *rowSet, old bool) error {
	if t.s.pages == nil {
		return nil
	}
	n := tables[tPair].n
	args := rs.args[tPair]
	for j := 0; j+2 < len(args); j += n {
		t.batch.pairs = append(t.batch.pairs, pagePart(args[j].(int64), args[j+2].(string)))
	}
	if !old {
		return nil
	}
	rows, err := t.batch.QueryContext(ctx, "SELECT DISTINCT cid, ref_id FROM idx_pair WHERE rid = ?", rid)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var cid int64
		var ref string
		if err := rows.Scan(&cid, &ref); err != nil {
			return err
		}
		t.batch.pairs = append(t.batch.pairs, pagePart(cid, ref))
	}
	return rows.Err()
}
