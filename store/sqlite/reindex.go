package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// indexMetaSchema holds what the store knows about how its index was
// built (store.Reindexer), by key: metaVersion, the version the last
// complete reindex recorded; during a reindex, metaReindexVersion and
// metaReindexAfter, its version and the last resource row it has
// committed, from which a reindex of the same version resumes. It is
// created by the first reindex: a database without it has no version.
// A reindex to another version removes metaVersion as it starts.
const indexMetaSchema = `CREATE TABLE IF NOT EXISTS index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`

// Keys of index_meta.
const (
	metaVersion        = "version"
	metaReindexVersion = "reindex.version"
	metaReindexAfter   = "reindex.after"
)

// reindexBatch is how many resources one reindex transaction rewrites.
// Each transaction holds the single writer while it runs (in a region of
// a million slots, about 0.15 s when every row is rewritten, 15 ms when
// none changes), so writes that arrive meanwhile wait at most that long.
const reindexBatch = 2000

// IndexVersion implements store.Reindexer.
func (s *Store) IndexVersion(ctx context.Context) (string, error) {
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'index_meta'").Scan(&n); err != nil {
		return "", fmt.Errorf("sqlite: reading the index version: %w", err)
	}
	if n == 0 {
		return "", nil
	}
	var v string
	err := s.rdb.QueryRowContext(ctx, "SELECT value FROM index_meta WHERE key = ?", metaVersion).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlite: reading the index version: %w", err)
	}
	return v, nil
}

// reindexItem is one resource of a reindex batch: its row, the version
// read (by history row), and its new entries.
type reindexItem struct {
	res      fhir.Resource
	rid, seq int64
	entries  []search.Entry
}

// reindexChunk is a batch of resources read and indexed, ready to write,
// or the error that ended the walk.
type reindexChunk struct {
	items []reindexItem
	last  int64 // the last resource row read
	err   error
}

// Reindex implements store.Reindexer. The walk goes through the resource
// rows in order: a reader reads and indexes (on every core) the next batch
// from the read pool while the writer brings the current one's rows to
// their new entries, in one Update per batch that also records how far it
// got. As for a new version, only the index tables whose rows change are
// rewritten, as the resource's index digest tells: none when the
// extraction gives it the same entries (reindexIndex). A resource written
// or deleted since its batch was read is left to what that write did,
// after indexing its newest version again. Once every resource is done, a
// last transaction rebuilds the planner's date shapes from the index rows
// and drops its statistics, as after a fresh load (see finishReindex), and
// records version.
func (s *Store) Reindex(ctx context.Context, version string, extract func(*fhir.Resource) ([]search.Entry, error),
	progress func(done, total int)) error {
	if progress == nil {
		progress = func(int, int) {}
	}
	var after int64
	var done, total int
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		t := tx.(*txn)
		if _, err := t.exec(ctx, indexMetaSchema); err != nil {
			return err
		}
		after, done = 0, 0
		var v, a string
		err := t.batch.QueryRowContext(ctx, "SELECT v.value, a.value FROM index_meta v, index_meta a WHERE v.key = ? AND a.key = ?",
			metaReindexVersion, metaReindexAfter).Scan(&v, &a)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case v == version:
			if after, err = strconv.ParseInt(a, 10, 64); err != nil {
				return fmt.Errorf("index_meta %s = %q: %w", metaReindexAfter, a, err)
			}
		}
		if err := t.batch.QueryRowContext(ctx, "SELECT count(*), count(*) FILTER (WHERE rid <= ?) FROM resources WHERE deleted = 0", after).
			Scan(&total, &done); err != nil {
			return err
		}
		// From its first batch on, a reindex to another version leaves rows
		// of both: the recorded version no longer describes the index.
		if _, err := t.exec(ctx, "DELETE FROM index_meta WHERE key = ? AND value != ?", metaVersion, version); err != nil {
			return err
		}
		return setMeta(ctx, t, metaReindexVersion, version, metaReindexAfter, strconv.FormatInt(after, 10))
	})
	if err != nil {
		return fmt.Errorf("sqlite: starting the reindex: %w", err)
	}
	progress(done, total)

	// Every batch rewrites pages all over the index tables, as a bulk
	// load does: checkpoint as rarely (SetBulkLoad) until the end.
	defer s.bulk.Store(s.bulk.Swap(true))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan reindexChunk, 1)
	go s.readForReindex(ctx, after, extract, chunks)
	for c := range chunks {
		if c.err != nil {
			return c.err
		}
		if err := s.writeReindexed(ctx, c, extract); err != nil {
			return err
		}
		done += len(c.items)
		progress(done, total)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.finishReindex(ctx, version)
}

// readForReindex sends the current resources after resource row after, a
// batch at a time with their entries, until there are none or ctx ends,
// then closes out.
func (s *Store) readForReindex(ctx context.Context, after int64, extract func(*fhir.Resource) ([]search.Entry, error), out chan<- reindexChunk) {
	defer close(out)
	for {
		c := reindexChunk{last: after}
		c.items, c.err = s.readReindexBatch(ctx, after)
		if c.err == nil && len(c.items) > 0 {
			c.last = c.items[len(c.items)-1].rid
			c.err = extractAll(c.items, extract)
		}
		if len(c.items) == 0 && c.err == nil {
			return
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
		if c.err != nil || len(c.items) < reindexBatch {
			return
		}
		after = c.last
	}
}

// reindexReadSQL reads a batch of current resources in row order.
const reindexReadSQL = `SELECT r.rid, r.seq, r.type, r.id, r.version, r.updated, h.body
	FROM resources r JOIN history h ON h.seq = r.seq WHERE r.rid > ? AND r.deleted = 0 ORDER BY r.rid` + limitParam

// readReindexBatch reads the next reindexBatch current resources after
// resource row after, from the read pool.
func (s *Store) readReindexBatch(ctx context.Context, after int64) ([]reindexItem, error) {
	rows, err := s.rdb.QueryContext(ctx, reindexReadSQL, after, reindexBatch)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reindex: reading resources: %w", err)
	}
	defer rows.Close()
	items := make([]reindexItem, 0, reindexBatch)
	for rows.Next() {
		var it reindexItem
		var updated int64
		if err := rows.Scan(&it.rid, &it.seq, &it.res.Type, &it.res.ID, &it.res.Version, &updated, &it.res.JSON); err != nil {
			return nil, fmt.Errorf("sqlite: reindex: reading resources: %w", err)
		}
		it.res.LastUpdated = time.UnixMicro(updated).UTC()
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: reindex: reading resources: %w", err)
	}
	return items, nil
}

// extractAll fills the entries of items, on every core.
func extractAll(items []reindexItem, extract func(*fhir.Resource) ([]search.Entry, error)) error {
	workers := min(runtime.GOMAXPROCS(0), len(items))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(items); i += workers {
				it := &items[i]
				var err error
				if it.entries, err = extract(&it.res); err != nil {
					errs[w] = fmt.Errorf("reindex: %s: %w", it.res.Reference(), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeReindexed brings the index rows of the resources of c to their new
// entries in one Update (reindexIndex: only the tables whose rows change
// are rewritten), and records c.last as done.
func (s *Store) writeReindexed(ctx context.Context, c reindexChunk, extract func(*fhir.Resource) ([]search.Entry, error)) error {
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		t := tx.(*txn)
		// The history row and index digest of each resource's current
		// version, for those not deleted.
		type current struct {
			seq    int64
			digest []byte
		}
		cur := make(map[int64]current, len(c.items))
		rows, err := t.batch.QueryContext(ctx, "SELECT rid, seq, digest FROM resources WHERE rid >= ? AND rid <= ? AND deleted = 0",
			c.items[0].rid, c.last)
		if err != nil {
			return err
		}
		for rows.Next() {
			var rid int64
			var r current
			if err := rows.Scan(&rid, &r.seq, &r.digest); err != nil {
				rows.Close()
				return err
			}
			cur[rid] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// The entries of the derived values, which join every resource's
		// own (store.Deriver).
		derived, err := t.derivedEntries(ctx, c.items[0].rid, c.last)
		if err != nil {
			return err
		}
		for i := range c.items {
			it := &c.items[i]
			r, ok := cur[it.rid]
			if !ok {
				continue // deleted since it was read: the delete removed its rows
			}
			res, entries := &it.res, it.entries
			if r.seq != it.seq { // written since it was read: index its current version
				if res, entries, err = reread(ctx, t, it.rid, extract); err != nil {
					return err
				}
			}
			if d := derived[it.rid]; len(d) > 0 {
				entries = append(entries[:len(entries):len(entries)], d...)
			}
			if err := t.reindexIndex(ctx, res, it.rid, r.seq, entries, r.digest); err != nil {
				return fmt.Errorf("reindexing %s: %w", res.Reference(), err)
			}
		}
		return setMeta(ctx, t, metaReindexAfter, strconv.FormatInt(c.last, 10))
	})
	if err != nil {
		return fmt.Errorf("sqlite: reindex: %w", err)
	}
	return nil
}

// reread reads the current version of resource row rid inside t and
// extracts its entries.
func reread(ctx context.Context, t *txn, rid int64, extract func(*fhir.Resource) ([]search.Entry, error)) (*fhir.Resource, []search.Entry, error) {
	res := &fhir.Resource{}
	var updated int64
	err := t.batch.QueryRowContext(ctx, `SELECT r.type, r.id, r.version, r.updated, h.body
		FROM resources r JOIN history h ON h.seq = r.seq WHERE r.rid = ?`, rid).Scan(&res.Type, &res.ID, &res.Version, &updated, &res.JSON)
	if err != nil {
		return nil, nil, err
	}
	res.LastUpdated = time.UnixMicro(updated).UTC()
	entries, err := extract(res)
	if err != nil {
		return nil, nil, fmt.Errorf("reindex: %s: %w", res.Reference(), err)
	}
	return res, entries, nil
}

// Rebuilding the planner's date shapes (idx_date_shape) from the index
// rows: per date parameter its widest range (saturated as width does) and
// whether a resource has several values; per reference parameter with a
// resource of several values, that. Parameters with neither get no row,
// as writes give them none.
const (
	shapesClearSQL = "DELETE FROM idx_date_shape WHERE pid != ?"
	shapesDateSQL  = `INSERT INTO idx_date_shape (pid, width, multi)
		SELECT pid, max(w), max(n) > 1 FROM (
			SELECT pid, max(CASE WHEN low = ? OR high = ? OR high < low THEN ? ELSE high - low END) AS w, count(*) AS n
			FROM idx_date GROUP BY rid, pid)
		GROUP BY pid HAVING max(w) > 0 OR max(n) > 1`
	shapesRefSQL = `INSERT INTO idx_date_shape (pid, width, multi)
		SELECT DISTINCT pid, 0, 1 FROM (SELECT pid FROM idx_ref GROUP BY rid, pid HAVING count(*) > 1)`
)

// finishReindex ends a reindex whose every batch is committed: it leaves
// the planner's metadata as a fresh load of the same resources would, and
// records version. The date shapes only ever widen as entries are
// written, so after a reindex they may be wider than the rows now need
// (correct, but slower plans): they are rebuilt from the rows. The
// statistics (idx_stats) describe the rows before the reindex: they are
// dropped and computed again by the searches that need them, as after a
// load. The in-memory planner takes both inside the transaction: the rows
// the shapes describe are those of the transaction, and searches meanwhile
// see the same rows.
func (s *Store) finishReindex(ctx context.Context, version string) error {
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		t := tx.(*txn)
		steps := []struct {
			query string
			args  []any
		}{
			{shapesClearSQL, []any{shapesSince}},
			{shapesDateSQL, []any{search.MinTime, search.MaxTime, int64(1<<63 - 1)}},
			{shapesRefSQL, nil},
			{"DELETE FROM idx_stats", nil},
			{"DELETE FROM index_meta WHERE key IN (?, ?)", []any{metaReindexVersion, metaReindexAfter}},
		}
		for _, st := range steps {
			if _, err := t.exec(ctx, st.query, st.args...); err != nil {
				return err
			}
		}
		if err := setMeta(ctx, t, metaVersion, version); err != nil {
			return err
		}
		shapes := map[int64]dateShape{}
		rows, err := t.batch.QueryContext(ctx, "SELECT pid, width, multi FROM idx_date_shape")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var pid int64
			var sh dateShape
			if err := rows.Scan(&pid, &sh.width, &sh.multi); err != nil {
				return err
			}
			shapes[pid] = sh
		}
		if err := rows.Err(); err != nil {
			return err
		}
		s.plan.reset(shapes)
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: finishing the reindex: %w", err)
	}
	return nil
}

// reset replaces the planner's date shapes with shapes (rebuilt from the
// rows, so none is left to save) and forgets its statistics, as if it had
// just loaded them from a database without any.
func (p *planner) reset(shapes map[int64]dateShape) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shapes = shapes
	clear(p.dirty)
	p.stats = map[statKey]*stat{}
	if p.writes == nil {
		p.writes = map[int64]int64{}
	}
	p.loaded = true
}

// setMeta stores index_meta values, given as key, value, key, value….
func setMeta(ctx context.Context, t *txn, kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if _, err := t.exec(ctx, "INSERT OR REPLACE INTO index_meta (key, value) VALUES (?, ?)", kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}
