package sqlite

import (
	"context"
	"database/sql"
	"math"
	"sync"
)

// planner holds what the search planner knows about the data: the shape of
// each date parameter (kept exact: the planner relies on it for
// correctness) and statistics per parameter (estimates, refreshed as
// writes accumulate).
type planner struct {
	mu     sync.Mutex
	loaded bool
	shapes map[int64]dateShape
	dirty  map[int64]bool  // shapes widened in memory and not yet saved
	writes map[int64]int64 // index entries written per pid since start
	stats  map[statKey]*stat
	stmts  map[string]*sql.Stmt // prepared search statements on the read pool

	// save persists a statistic once computed (Open sets it), so that
	// the first searches after a restart need not compute it again. seq
	// is the last history row when it was computed.
	save func(k statKey, v [3]float64, seq int64)
	// refreshing counts the statistics being computed in the
	// background; the store waits for them when it closes, so that none
	// reads or writes the database after Close. closed (on mu) stops
	// new ones: every refreshing.Add happens on mu while it is false.
	refreshing sync.WaitGroup
	closed     bool
}

// close stops background statistics and waits for those under way.
func (p *planner) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.refreshing.Wait()
}

// maxStmts bounds the prepared statements kept. Search shapes are few;
// once that many are cached, other shapes are prepared per search, as
// without a cache. (Nothing is evicted: closing a statement another search
// is about to use would fail that search.)
const maxStmts = 512

// prepared returns a statement for query on the read pool, prepared once.
// When it is not cached (the cache is full) the caller must close it.
func (p *planner) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, bool, error) {
	p.mu.Lock()
	st := p.stmts[query]
	p.mu.Unlock()
	if st != nil {
		return st, true, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.stmts[query]; old != nil {
		st.Close()
		return old, true, nil
	}
	if p.stmts == nil {
		p.stmts = map[string]*sql.Stmt{}
	}
	if len(p.stmts) >= maxStmts {
		return st, false, nil
	}
	p.stmts[query] = st
	return st, true, nil
}

// dateShape is the widest range of a date parameter and whether any
// resource has several values.
type dateShape struct {
	width int64
	multi bool
}

type statKey struct {
	table int // a t… constant, or -1 for the resource count of typ
	pid   int64
	typ   string
}

// stat is one statistic: v[0] entries, v[1] distinct values (or the
// smallest low of a date parameter), v[2] the largest low.
type stat struct {
	v          [3]float64
	writes     int64
	refreshing bool
}

// load reads the date shapes once.
func (p *planner) load(ctx context.Context, db querier) {
	if p.loaded {
		return
	}
	p.shapes = map[int64]dateShape{}
	p.writes = map[int64]int64{}
	p.stats = map[statKey]*stat{}
	rows, err := db.QueryContext(ctx, "SELECT pid, width, multi FROM idx_date_shape")
	if err != nil {
		return // not loaded: tried again next time
	}
	defer rows.Close()
	for rows.Next() {
		var pid int64
		var sh dateShape
		if rows.Scan(&pid, &sh.width, &sh.multi) == nil {
			p.shapes[pid] = sh
		}
	}
	if p.loaded = rows.Err() == nil; !p.loaded {
		return
	}
	// Statistics saved before: estimates, refreshed like the others once
	// the writes since this start exceed a quarter of them. A statistic
	// computed more versions ago than that (by history seq: versions
	// written by another process, such as a bulk import, or before a
	// crash) is left out, to be computed afresh when first needed.
	var last int64
	if err := db.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM history").Scan(&last); err != nil {
		return
	}
	srows, err := db.QueryContext(ctx, "SELECT tbl, pid, typ, v0, v1, v2, seq FROM idx_stats")
	if err != nil {
		return
	}
	defer srows.Close()
	for srows.Next() {
		var k statKey
		var v [3]float64
		var seq int64
		if srows.Scan(&k.table, &k.pid, &k.typ, &v[0], &v[1], &v[2], &seq) == nil && !staleAfter(last-seq, v[0]) {
			p.stats[k] = &stat{v: v}
		}
	}
}

// staleAfter reports whether a statistic counting n entries is out of date
// after writes more writes.
func staleAfter(writes int64, n float64) bool {
	return writes > max(500, int64(n/4))
}

// lastSeq is the history row of the latest version, for saved statistics.
func lastSeq(db *sql.DB) int64 {
	var seq int64
	_ = db.QueryRowContext(context.Background(), "SELECT coalesce(max(seq), 0) FROM history").Scan(&seq)
	return seq
}

// shape returns the shape of date parameter pid. While the shapes cannot
// be read it answers the most general shape, which is always correct.
func (p *planner) shape(ctx context.Context, db querier, pid int64) dateShape {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.load(ctx, db)
	if !p.loaded {
		return dateShape{width: math.MaxInt64, multi: true}
	}
	return p.shapes[pid]
}

// widen records a date entry of width w (multi: its resource has several
// values of pid) before it is committed. A shape it changes is marked
// dirty, to be saved by the next batch that commits (takeDirty), whether
// or not the request that widened it commits: a wider shape than the rows
// need is always correct, a narrower one is not, and another request of
// the batch may have relied on the widening.
func (p *planner) widen(ctx context.Context, db querier, pid, w int64, multi bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.load(ctx, db)
	sh := p.shapes[pid]
	if w <= sh.width && (!multi || sh.multi) {
		return
	}
	sh.width, sh.multi = max(sh.width, w), sh.multi || multi
	if p.shapes == nil {
		p.shapes = map[int64]dateShape{}
	}
	p.shapes[pid] = sh
	if p.dirty == nil {
		p.dirty = map[int64]bool{}
	}
	p.dirty[pid] = true
}

// takeDirty returns the shapes widened since they were last taken, to be
// saved in the batch about to commit; markDirty puts them back when it
// does not.
func (p *planner) takeDirty() map[int64]dateShape {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dirty) == 0 {
		return nil
	}
	out := make(map[int64]dateShape, len(p.dirty))
	for pid := range p.dirty {
		out[pid] = p.shapes[pid]
	}
	clear(p.dirty)
	return out
}

func (p *planner) markDirty(shapes map[int64]dateShape) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty == nil {
		p.dirty = map[int64]bool{}
	}
	for pid := range shapes {
		p.dirty[pid] = true
	}
}

// wrote counts one index entry written for pid.
func (p *planner) wrote(pid int64) {
	p.mu.Lock()
	if p.writes == nil {
		p.writes = map[int64]int64{}
	}
	p.writes[pid]++
	p.writes[-1]++ // all entries: the staleness of resource counts
	p.mu.Unlock()
}

// stat returns a statistic, computing it with query the first time and
// again, in the background, once the writes since exceed a quarter of it.
func (p *planner) stat(db *sql.DB, k statKey, query string, args ...any) [3]float64 {
	p.mu.Lock()
	p.load(context.Background(), db)
	if p.stats == nil {
		p.stats = map[statKey]*stat{}
	}
	if p.writes == nil {
		p.writes = map[int64]int64{}
	}
	s := p.stats[k]
	w := p.writes[k.pid]
	if s != nil {
		if staleAfter(w-s.writes, s.v[0]) && !s.refreshing && !p.closed {
			s.refreshing = true
			p.refreshing.Add(1)
			go func() {
				defer p.refreshing.Done()
				seq := lastSeq(db)
				v := compute(db, query, args...)
				p.mu.Lock()
				s.v, s.writes, s.refreshing = v, w, false
				save := p.save
				p.mu.Unlock()
				if save != nil {
					save(k, v, seq)
				}
			}()
		}
		v := s.v
		p.mu.Unlock()
		return v
	}
	p.mu.Unlock()
	seq := lastSeq(db)
	v := compute(db, query, args...)
	p.mu.Lock()
	p.stats[k] = &stat{v: v, writes: w}
	if save := p.save; save != nil && !p.closed {
		p.refreshing.Add(1)
		go func() {
			defer p.refreshing.Done()
			save(k, v, seq)
		}()
	}
	p.mu.Unlock()
	return v
}

func compute(db *sql.DB, query string, args ...any) [3]float64 {
	var v [3]sql.NullFloat64
	_ = db.QueryRowContext(context.Background(), query, args...).Scan(&v[0], &v[1], &v[2])
	return [3]float64{v[0].Float64, v[1].Float64, v[2].Float64}
}

var distinctCol = [numTables]string{tString: "text", tToken: "value", tNumber: "low", tRef: "ref_id", tURI: "value", tPair: "ref_id", tDate: "low", tComposite: "v1"}

// entries estimates the index entries of pid in table t.
func (b *builder) entries(t int, pid int64) float64 {
	return b.tableStat(t, pid)[0]
}

// avg estimates the entries per distinct value of pid in table t.
func (b *builder) avg(t int, pid int64) float64 {
	v := b.tableStat(t, pid)
	if v[1] < 1 {
		return v[0]
	}
	return max(1, v[0]/v[1])
}

func (b *builder) tableStat(t int, pid int64) [3]float64 {
	col := "pid"
	if t == tPair {
		col = "cid"
	}
	return b.r.s.plan.stat(b.r.s.rdb, statKey{table: t, pid: pid},
		"SELECT count(*), count(DISTINCT "+distinctCol[t]+"), 0 FROM "+tables[t].name+" WHERE "+col+" = ?", pid)
}

// dateStats returns the entries of date parameter pid and the range of
// their lows.
func (b *builder) dateStats(pid int64) (n float64, minLow, maxLow int64) {
	v := b.r.s.plan.stat(b.r.s.rdb, statKey{table: tDate, pid: pid}, "SELECT count(*), min(low), max(low) FROM idx_date WHERE pid = ?", pid)
	return v[0], int64(v[1]), int64(v[2])
}

// typeCount estimates the live resources of typ ("" for all).
func (b *builder) typeCount(typ string) float64 {
	if typ == "" {
		return b.r.s.plan.stat(b.r.s.rdb, statKey{table: -1, pid: -1}, "SELECT count(*), 0, 0 FROM resources WHERE deleted = 0")[0]
	}
	return b.r.s.plan.stat(b.r.s.rdb, statKey{table: -1, pid: -1, typ: typ}, "SELECT count(*), 0, 0 FROM resources WHERE type = ? AND deleted = 0", typ)[0]
}
