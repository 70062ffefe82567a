package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"github.com/signpost-fhir/signpost/internal/gens"
	"hash/maphash"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// The heads cache keeps each resource's current row (its version, time,
// deletion and history seq) by "Type/id", so that a read by id and an
// _include's reads take the row from memory and the body from the body
// cache: no SQL at all for a resource in both. Under load every commit
// empties the read connections' page caches (WAL mode), and each read
// walked two B-trees from the operating system's cache.
//
// Why it is correct: a resource's row changes only in a write
// transaction's Put or PutAll, and the writer forgets every key its batch
// wrote (committed or not) after the commit and before it answers any of
// the batch's requests. A reader adds a row it read only if nothing was
// forgotten in the key's shard since before its query (gens.Cache.PutIf), so a
// row read before a commit never outlives the commit's forgetting. A read
// that begins after a write was acknowledged therefore sees it, and one
// concurrent with it sees the row before or after, as with SQLite alone.
// Rows are added only from the read pool, which sees committed state.
// Only found rows are cached (a create needs nothing forgotten, yet is
// forgotten like any write).

// headShards is how many independently locked parts the heads cache has.
const headShards = 64

// headBudget is the heads cache's size in bytes, counting headCost per
// entry: about 100,000 resources.
const (
	headBudget = 16 << 20
	headCost   = 160 // a head, its key and map slot, roughly
)

// head is a resource's current row.
type head struct {
	version, updated, seq int64
	deleted               bool
}

// headCache is the heads cache; nil is no cache (when the body cache is
// off, Options.BodyCache < 0). Beside the rows it keeps the resources'
// derived values (store.Deriver), which change in write transactions too
// (PutDerived records its key as written) and are forgotten with them.
type headCache struct {
	*gens.Cache[string, head]
	derived *gens.Cache[string, []store.DerivedValue]
}

var headSeed = maphash.MakeSeed()

func newHeadCache(bodyCache int64) *headCache {
	if bodyCache < 0 {
		return nil
	}
	hash := func(k string) uint64 { return maphash.String(headSeed, k) }
	return &headCache{gens.New[string, head](headShards, headBudget, func(head) int64 { return headCost }, hash),
		gens.New[string, []store.DerivedValue](headShards, headBudget, func(vs []store.DerivedValue) int64 {
			n := int64(headCost)
			for _, v := range vs {
				n += int64(len(v.Name) + len(v.Value))
			}
			return n
		}, hash)}
}

// forget drops keys written by a batch; see the comment at the top.
func (c *headCache) forget(keys []string) {
	if c != nil && len(keys) > 0 {
		c.Cache.Forget(keys)
		c.derived.Forget(keys)
	}
}

// readHead reads typ/id's current row through the read pool, from the
// cache when it is there.
func (s *Store) readHead(ctx context.Context, typ, id string) (head, error) {
	key := typ + "/" + id
	var since uint64
	if s.heads != nil {
		if h, ok := s.heads.Get(key); ok {
			return h, nil
		}
		since = s.heads.Epoch(key)
	}
	h, err := scanHead(s.readStmt.QueryRowContext(ctx, typ, id), typ, id)
	if err == nil && s.heads != nil {
		s.heads.PutIf(key, h, &since)
	}
	return h, err
}

// scanHead scans row, an answer of readSQL.
func scanHead(row *sql.Row, typ, id string) (head, error) {
	var h head
	err := row.Scan(&h.version, &h.updated, &h.deleted, &h.seq)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
	}
	return h, err
}

func (c *headCache) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	return c.Cache.Stats()
}
