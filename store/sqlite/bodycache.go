package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/signpost-fhir/signpost/internal/gens"
	"strconv"
	"strings"

	"github.com/signpost-fhir/signpost/fhir"
)

// The body cache keeps resource bodies in memory across commits, keyed by
// their history row (seq).
//
// Why: in WAL mode a read connection empties its page cache whenever
// another connection committed since its last read, and under load the
// writer commits every few milliseconds, so each search found SQLite's
// cache cold and walked the history B-tree from the operating system's
// cache for every row of its page (half of a free-slot search's CPU).
//
// Why it is correct: a history row is written once, by the commit that
// creates the version, and never changed or deleted afterwards (nothing in
// this package updates or deletes history rows; TestHistoryAppendOnly
// keeps it so). So the body of a committed seq is the same in every
// snapshot that has it, and a query that returned a row with seq s may take
// s's body from the cache or fetch it by seq in a later statement. Only
// bodies read through the read pool, which sees committed state only, are
// added: a seq a write transaction sees may still be rolled back, and
// SQLite hands a rolled-back rowid out again.
//
// Bodies are shared: callers get the cached slice itself (its capacity cut
// to its length, so an append copies) and must not change it in place,
// which no caller of the store does (they unmarshal or copy it).

// DefaultBodyCache is the body cache's size when Options.BodyCache is 0.
const DefaultBodyCache = 64 << 20

// bodyShards is how many independently locked parts the cache has.
const bodyShards = 64

// entryOverhead is what an entry costs beside its body (map slot, slice
// header), counted against the budget.
const entryOverhead = 64

// bodyCache is the cache of committed bodies by seq (see gens.Cache); nil is
// no cache.
type bodyCache struct{ *gens.Cache[int64, []byte] }

// newBodyCache returns a cache of about size bytes, nil (no cache) when
// size is negative.
func newBodyCache(size int64) *bodyCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultBodyCache
	}
	// seqs are consecutive, so a page's rows spread over the shards.
	return &bodyCache{gens.New[int64, []byte](bodyShards, size,
		func(b []byte) int64 { return int64(len(b)) + entryOverhead },
		func(seq int64) uint64 { return uint64(seq) })}
}

// get returns seq's body, if cached.
func (c *bodyCache) get(seq int64) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	return c.Cache.Get(seq)
}

// put caches seq's committed body. The cache keeps body: the caller must
// not change it afterwards.
func (c *bodyCache) put(seq int64, body []byte) {
	if c != nil {
		c.Cache.Put(seq, body)
	}
}

func (c *bodyCache) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	return c.Cache.Stats()
}

// historyBodiesSQL fetches the bodies of the history rows whose seqs are
// in a JSON array: one statement for any number of them, prepared once.
const historyBodiesSQL = "SELECT seq, body FROM history WHERE seq IN (SELECT value FROM json_each(?))"

// fillBodies sets res[i].JSON to the body of history row seqs[i], from
// the cache or, for those it lacks, with one query by seq. Every seq must
// be a committed history row the caller's query returned (or, inside a
// write transaction, one it sees).
func (r reader) fillBodies(ctx context.Context, res []*fhir.Resource, seqs []int64) error {
	var missing []int
	for i, seq := range seqs {
		if b, ok := r.s.bodies.get(seq); ok {
			res[i].JSON = b
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var list strings.Builder
	list.WriteByte('[')
	at := make(map[int64][]int, len(missing))
	for n, i := range missing {
		if n > 0 {
			list.WriteByte(',')
		}
		list.WriteString(strconv.FormatInt(seqs[i], 10))
		at[seqs[i]] = append(at[seqs[i]], i)
	}
	list.WriteByte(']')
	var rows *sql.Rows
	var err error
	if db, ok := r.q.(*sql.DB); ok && db == r.s.rdb {
		rows, err = r.s.bodyStmt.QueryContext(ctx, list.String())
	} else {
		rows, err = r.q.QueryContext(ctx, historyBodiesSQL, list.String())
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	committed := r.batch == nil // the read pool sees committed rows only
	found := 0
	for rows.Next() {
		var seq int64
		var body []byte
		if err := rows.Scan(&seq, &body); err != nil {
			return err
		}
		body = body[:len(body):len(body)]
		for _, i := range at[seq] {
			res[i].JSON = body
			found++
		}
		if committed {
			r.s.bodies.put(seq, body)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if found != len(missing) {
		// Cannot happen while history rows are never deleted: say so
		// rather than answer without a body.
		return fmt.Errorf("sqlite: %d of %d history rows vanished while being read", len(missing)-found, len(missing))
	}
	return nil
}
