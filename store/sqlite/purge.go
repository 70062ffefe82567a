package sqlite

// Physical removal of old resources (store.Purger), and what keeps the
// store's caches right when it happens, in this process or in another one
// on the same database (signpost audit archive beside signpost serve).
//
// The caches (heads.go, bodycache.go, pagecache.go) assume that rows
// change only through this process's writer, which forgets what it
// wrote. A purge breaks two of their premises, and this file restores
// them:
//
//   - History rows are removed. The body cache keeps bodies by seq, which
//     is only right while a seq, once given, always names the same
//     version. SQLite gives a new row the greatest rowid plus one, so a
//     removed seq would be given again only if the greatest one were
//     removed: a purge never removes the resource whose current version
//     is the newest history row (PurgeList holds it back too). A removed
//     seq's body left in a cache is then never asked for again.
//   - Current rows, index rows and derived values go. The purge's own
//     store forgets them as any write does (the batch's keys and pair
//     partitions). Another process's store learns of it through a
//     generation record the purge increments in its transaction: each
//     store polls it (every purgePoll) and, when it has moved, forgets
//     every cached head, derived value and page. So a server on the same
//     data directory stops answering from memory what a purge removed
//     within purgePoll of its commit; what it reads from SQLite is right
//     at once.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

var _ store.Purger = (*Store)(nil)

// The purge generation: a record (records.go's table) that every purge
// which removes something increments in its transaction.
const (
	purgeKind = "sqlite"
	purgeKey  = "purge-generation"
)

// purgePoll is how often a store looks at the purge generation.
const purgePoll = 200 * time.Millisecond

// purgeWatch is the goroutine that polls the purge generation.
type purgeWatch struct {
	stop, done chan struct{}
}

// PurgeList implements store.Purger. It lists the current resources
// first, then the tombstones, each in (lastUpdated, id) order, through
// the index on (type, deleted, updated, id).
func (s *Store) PurgeList(ctx context.Context, typ string, before time.Time, cursor string, limit int) ([]*fhir.Resource, string, error) {
	deleted, updated, id, err := parsePurgeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = store.PurgeBatch
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback()
	var newest int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM history").Scan(&newest); err != nil {
		return nil, "", err
	}
	rows, err := tx.QueryContext(ctx, `SELECT r.id, r.version, r.updated, r.seq, h.body
		FROM resources r JOIN history h ON h.seq = r.seq
		WHERE r.type = ? AND r.deleted = ? AND r.updated < ? AND (r.updated, r.id) > (?, ?)
		ORDER BY r.updated, r.id`+limitParam, typ, deleted, before.UnixMicro(), updated, id, limit)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []*fhir.Resource
	n := 0
	for rows.Next() {
		res := &fhir.Resource{Type: typ, Deleted: deleted == 1}
		var seq int64
		if err := rows.Scan(&res.ID, &res.Version, &updated, &seq, &res.JSON); err != nil {
			return nil, "", err
		}
		n++
		id = res.ID
		res.LastUpdated = time.UnixMicro(updated).UTC()
		if seq == newest {
			continue // held back: see the top of the file
		}
		if res.Deleted {
			res.JSON = nil
		}
		out = append(out, res)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	switch {
	case n == limit:
		return out, purgeCursor(deleted, updated, id), nil
	case deleted == 0:
		return out, purgeCursor(1, math.MinInt64, ""), nil
	}
	return out, "", nil
}

// purgeCursor is PurgeList's cursor: the part (0 current, 1 tombstones)
// and the last (updated, id) listed.
func purgeCursor(deleted int, updated int64, id string) string {
	return strconv.Itoa(deleted) + ":" + strconv.FormatInt(updated, 10) + ":" + id
}

func parsePurgeCursor(c string) (deleted int, updated int64, id string, err error) {
	if c == "" {
		return 0, math.MinInt64, "", nil
	}
	parts := strings.SplitN(c, ":", 3)
	if len(parts) == 3 {
		deleted, err = strconv.Atoi(parts[0])
		if err == nil {
			updated, err = strconv.ParseInt(parts[1], 10, 64)
		}
		if err == nil && (deleted == 0 || deleted == 1) {
			return deleted, updated, parts[2], nil
		}
	}
	return 0, 0, "", fmt.Errorf("sqlite: purge list: the cursor %q is not one PurgeList gave", c)
}

// Purge implements store.Purger, in one transaction of the writer, with
// one statement per table for the whole batch (the ids and row ids go in
// as a JSON array): with a statement per resource and table, a thousand
// AuditEvents held the write lock twice as long (BenchmarkPurge).
func (s *Store) Purge(ctx context.Context, typ string, refs []store.PurgeRef) (int, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	want := make(map[string]int64, len(refs))
	ids := make([]string, 0, len(refs))
	for _, r := range refs {
		if _, dup := want[r.ID]; !dup {
			ids = append(ids, r.ID)
		}
		want[r.ID] = r.Version
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return 0, err
	}
	// None of them there (a rerun, or a store that keeps no such
	// resources): no write transaction, so no writer waits for one.
	var there int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM resources WHERE type = ? AND id IN (SELECT value FROM json_each(?))",
		typ, string(idList)).Scan(&there); err != nil {
		return 0, err
	}
	if there == 0 {
		return 0, nil
	}
	var removed int
	var seqs []int64
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		t := tx.(*txn)
		removed, seqs = 0, seqs[:0]
		var newest int64
		if err := t.batch.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM history").Scan(&newest); err != nil {
			return err
		}
		rows, err := t.batch.QueryContext(ctx, "SELECT id, rid, version, seq FROM resources WHERE type = ? AND id IN (SELECT value FROM json_each(?))", typ, string(idList))
		if err != nil {
			return err
		}
		var rids []int64
		var gone []string
		for rows.Next() {
			var id string
			var rid, version, seq int64
			if err := rows.Scan(&id, &rid, &version, &seq); err != nil {
				rows.Close()
				return err
			}
			if version != want[id] || seq == newest {
				continue // written again since it was listed, or held back
			}
			rids = append(rids, rid)
			gone = append(gone, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(rids) == 0 {
			return nil
		}
		ridList, err := json.Marshal(rids)
		if err != nil {
			return err
		}
		goneList, err := json.Marshal(gone)
		if err != nil {
			return err
		}
		const inRids = " WHERE rid IN (SELECT value FROM json_each(?))"
		// The page cache's partitions of their pair rows, before they go.
		if s.pages != nil {
			rows, err := t.batch.QueryContext(ctx, "SELECT DISTINCT cid, ref_id FROM idx_pair"+inRids, string(ridList))
			if err != nil {
				return err
			}
			for rows.Next() {
				var cid int64
				var ref string
				if err := rows.Scan(&cid, &ref); err != nil {
					rows.Close()
					return err
				}
				t.batch.pairs = append(t.batch.pairs, pagePart(cid, ref))
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		for _, tb := range tables {
			if _, err := t.exec(ctx, "DELETE FROM "+tb.name+inRids, string(ridList)); err != nil {
				return err
			}
		}
		if _, err := t.exec(ctx, "DELETE FROM derived"+inRids, string(ridList)); err != nil {
			return err
		}
		const inIDs = " WHERE type = ? AND id IN (SELECT value FROM json_each(?))"
		rows, err = t.batch.QueryContext(ctx, "SELECT seq FROM history"+inIDs, typ, string(goneList))
		if err != nil {
			return err
		}
		for rows.Next() {
			var q int64
			if err := rows.Scan(&q); err != nil {
				rows.Close()
				return err
			}
			seqs = append(seqs, q)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := t.exec(ctx, "DELETE FROM history"+inIDs, typ, string(goneList)); err != nil {
			return err
		}
		if _, err := t.exec(ctx, "DELETE FROM resources"+inRids, string(ridList)); err != nil {
			return err
		}
		for _, id := range gone {
			key := typ + "/" + id
			delete(t.memo, key)
			t.batch.wrote = append(t.batch.wrote, key) // the heads cache forgets it at the commit
		}
		removed = len(gone)
		_, err = t.exec(ctx, `INSERT INTO records (kind, key, value, expires) VALUES (?, ?, 1, ?)
			ON CONFLICT (kind, key) DO UPDATE SET value = records.value + 1, expires = excluded.expires`,
			purgeKind, purgeKey, int64(math.MaxInt64))
		return err
	})
	if err != nil {
		return 0, err
	}
	if s.bodies != nil {
		s.bodies.Forget(seqs) // never asked for again (see the top of the file): only to free them
	}
	return removed, nil
}

// purgeGeneration reads the purge generation (0 before the first purge).
func (s *Store) purgeGeneration(ctx context.Context) (int64, error) {
	var g int64
	err := s.rdb.QueryRowContext(ctx, "SELECT value FROM records WHERE kind = ? AND key = ?", purgeKind, purgeKey).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return g, err
}

// watchPurges starts the goroutine that forgets the caches when a purge
// (of any process) has removed something; stopPurgeWatch stops it.
func (s *Store) watchPurges() {
	if s.heads == nil && s.pages == nil {
		return // nothing cached
	}
	w := &purgeWatch{stop: make(chan struct{}), done: make(chan struct{})}
	s.purges = w
	seen, err := s.purgeGeneration(context.Background())
	go func() {
		defer close(w.done)
		tick := time.NewTicker(purgePoll)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			g, gerr := s.purgeGeneration(context.Background())
			if gerr != nil {
				continue // try again at the next tick
			}
			if err != nil || g != seen {
				s.forgetCached()
				seen, err = g, nil
			}
		}
	}()
}

func (s *Store) stopPurgeWatch() {
	if s.purges != nil {
		close(s.purges.stop)
		<-s.purges.done
	}
}

// forgetCached empties the heads (and derived values) and page caches,
// moving every epoch on so that no read begun before is cached after.
func (s *Store) forgetCached() {
	if s.heads != nil {
		s.heads.Cache.ForgetAll()
		s.heads.derived.ForgetAll()
	}
	if s.pages != nil {
		s.pages.pages.ForgetAll()
		for i := range s.pages.epochs {
			s.pages.epochs[i].Add(1)
		}
	}
}
