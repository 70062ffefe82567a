// Package sqlite is Signpost's embedded store: one SQLite database file in
// the data directory, in WAL mode, needing no installation.
//
// Writes go through one writer goroutine that groups the Update calls
// waiting at the moment into one SQLite transaction, each in its own
// savepoint, and commits them with a single fsync (synchronous=FULL) before
// acknowledging any: an acknowledged write survives a crash or power loss,
// and a failed Update rolls back only its own savepoint. Reads use a pool of
// read-only connections that see the last committed state.
//
// The driver is modernc.org/sqlite (pure Go, so the binary stays static).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The contract and the optional capabilities the store implements.
var (
	_ store.Store       = (*Store)(nil)
	_ store.BulkLoader  = (*Store)(nil)
	_ store.Records     = (*Store)(nil)
	_ store.Deriver     = (*Store)(nil)
	_ store.Reindexer   = (*Store)(nil)
	_ store.DateOrderer = (*Store)(nil)
	_ store.Outbox      = (*Store)(nil)
	_ store.Inbox       = (*Store)(nil)
	_ store.Purger      = (*Store)(nil)
)

// FileName is the database file's name inside the data directory.
const FileName = "signpost.db"

// maxBatch bounds how many waiting Update calls share one commit.
const maxBatch = 256

// Store is a store.Store in a SQLite database.
type Store struct {
	wdb, rdb *sql.DB
	readStmt *sql.Stmt  // readSQL, prepared on rdb
	bodyStmt *sql.Stmt  // historyBodiesSQL, prepared on rdb
	bodies   *bodyCache // committed bodies by seq (bodycache.go); nil: none
	heads    *headCache // current rows by Type/id (heads.go); nil: none
	pages    *pageCache // keyed pair pages' rows (pagecache.go); nil: none
	reqs     chan *request
	done     chan struct{}
	closing  sync.Once
	pids     pidCache
	plan     planner // search statistics and date shapes (stats.go)
	// pairs are the parameter pairs indexed together in idx_pair (see
	// index.go), from the registry the store was opened with.
	pairs []search.Pair
	// derivedTypes are the resource types with derived values (derived.go).
	derivedTypes typeSet

	// wstmts are the write path's statements, prepared on the writer's
	// connection and bound to each batch's transaction (batchState.stmt).
	// Only the writer goroutine uses it.
	wstmts map[string]*sql.Stmt
	failed bool // a request of the last batch failed (run)

	// Checkpoints (copying committed pages from the WAL into the database
	// file) run on their own connection, off the writer (checkpointer).
	cdb      *sql.DB
	ckptKick chan struct{}
	ckptStop chan struct{}
	ckptDone chan struct{}
	walBig   atomic.Bool // the WAL has outgrown its limit: the writer checkpoints once itself
	bulk     atomic.Bool // SetBulkLoad: checkpoint less often

	commits atomic.Pointer[func(CommitStats)] // ObserveCommits

	purges *purgeWatch // forgets the caches after a purge (purge.go); nil: none
}

type request struct {
	ctx  context.Context
	fn   func(context.Context, store.Tx) error
	errc chan error
}

// driver is the database/sql driver Open uses: its name, and the data
// source name of a database file with the given pragmas ("name(value)").
// A benchmark swaps it to compare drivers (bench_test.go).
var driver = struct {
	name string
	dsn  func(path string, pragmas []string) string
}{"sqlite", moderncDSN}

// moderncDSN is a modernc.org/sqlite data source name: the driver runs
// each _pragma on every new connection.
func moderncDSN(path string, pragmas []string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database in directory dir, with the
// parameter pairs Signpost declares (search.DefaultPairs).
func Open(dir string) (*Store, error) {
	return OpenOptions(dir, Options{Pairs: search.DefaultPairs()})
}

// Options are the settings of OpenOptions.
type Options struct {
	// Pairs are the parameter pairs to keep a compound index of
	// (search.Registry.Pairs). They must stay the same from one opening
	// of a database to the next, or the index be rebuilt (Reindex).
	Pairs []search.Pair
	// BodyCache is how many bytes of resource bodies the store keeps in
	// memory across commits (bodycache.go): 0 means DefaultBodyCache, a
	// negative value none, and then no heads cache either (heads.go).
	BodyCache int64
}

// OpenOptions opens (creating if needed) the database in directory dir
// with o.
func OpenOptions(dir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := probeWritable(dir); err != nil {
		return nil, err
	}
	configureMemory()
	path := filepath.Join(dir, FileName)
	pragmas := []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(FULL)",
		// Each Update runs in a savepoint, so SQLite copies every page it
		// first changes there into a sub-journal; in memory that is a
		// memcpy, on disk (the default once it passes 64 KiB) a pwrite.
		"temp_store(MEMORY)"}
	// The writer never checkpoints on commit (wal_autocheckpoint 0): the
	// checkpointer does, on its own connection.
	// The writer's transactions begin IMMEDIATE: they take the write lock
	// at BEGIN, where SQLite waits for it (busy_timeout). Begun deferred, a
	// transaction that reads first and then writes gets SQLITE_BUSY at
	// once, without waiting, if another connection or process holds the
	// lock at that moment: seen once as a batch of 500s in
	// TestBackupWhileServing while `signpost backup` ran.
	wdb, err := sql.Open(driver.name, driver.dsn(path, append(pragmas[:len(pragmas):len(pragmas)], "wal_autocheckpoint(0)", cacheSize(cacheKiB)))+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	if _, err := wdb.Exec(schema); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: creating schema: %w", err)
	}
	if err := migrate(wdb, o.Pairs); err != nil {
		wdb.Close()
		return nil, err
	}
	rdb, err := sql.Open(driver.name, driver.dsn(path, append(pragmas[:len(pragmas):len(pragmas)], "query_only(1)", cacheSize(readCacheKiB))))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	rdb.SetMaxOpenConns(16)
	rdb.SetMaxIdleConns(16)
	readStmt, err := rdb.Prepare(readSQL)
	if err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: preparing the read: %w", err)
	}
	bodyStmt, err := rdb.Prepare(historyBodiesSQL)
	if err != nil {
		readStmt.Close()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: preparing the body read: %w", err)
	}
	cdb, err := sql.Open(driver.name, driver.dsn(path, append(pragmas[:len(pragmas):len(pragmas)], cacheSize(readCacheKiB))))
	if err != nil {
		bodyStmt.Close()
		readStmt.Close()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	cdb.SetMaxOpenConns(1)
	s := &Store{pairs: o.Pairs, wdb: wdb, rdb: rdb, cdb: cdb, readStmt: readStmt, bodyStmt: bodyStmt, bodies: newBodyCache(o.BodyCache), heads: newHeadCache(o.BodyCache), pages: newPageCache(o.BodyCache), reqs: make(chan *request, maxBatch), done: make(chan struct{}),
		wstmts: map[string]*sql.Stmt{}, ckptKick: make(chan struct{}, 1), ckptStop: make(chan struct{}), ckptDone: make(chan struct{})}
	s.plan.save = s.saveStat
	go s.checkpointer()
	if err := s.pids.load(wdb); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.derivedTypes.load(wdb); err != nil {
		s.Close()
		return nil, err
	}
	go s.writer()
	s.watchPurges()
	return s, nil
}

// Close stops the writer after the queued updates and closes the database.
func (s *Store) Close() error {
	s.closing.Do(func() {
		s.stopPurgeWatch()
		s.plan.close() // a refresh saves through the writer: before it stops
		close(s.reqs)
		<-s.done
		close(s.ckptStop)
		<-s.ckptDone
	})
	var errs []error
	for _, st := range s.wstmts {
		errs = append(errs, st.Close())
	}
	s.wstmts = nil
	return errors.Join(append(errs, s.readStmt.Close(), s.bodyStmt.Close(), s.rdb.Close(), s.cdb.Close(), s.wdb.Close())...)
}

// Update implements store.Store. With tracing on (app's --otlp-endpoint),
// each Update is a span "sqlite.update", from the queue to the commit.
func (s *Store) Update(ctx context.Context, fn func(context.Context, store.Tx) error) (err error) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		var end func(error)
		ctx, end = traceUpdate(ctx)
		defer func() { end(err) }()
	}
	req := &request{ctx: ctx, fn: fn, errc: make(chan error, 1)}
	defer func() {
		if recover() != nil { // send on a closed channel: the store is closed
			err = errors.New("sqlite: store is closed")
		}
	}()
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	return classify(<-req.errc)
}

// writer runs queued updates in batches until Close.
func (s *Store) writer() {
	defer close(s.done)
	for req := range s.reqs {
		batch := []*request{req}
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.run(batch)
	}
}

// batchState is what the requests of one batch share: the transaction,
// the statements bound to it, and the parameter ids created in it. It is
// the querier of the batch's reads and writes.
type batchState struct {
	s     *Store
	tx    *sql.Tx
	pids  map[string]int64     // parameter ids created in this batch
	stmts map[string]*sql.Stmt // statements bound to tx, by query
	fresh []string             // queries prepared on tx only, to prepare on the connection after the batch
	wrote []string             // "Type/id" of every resource written, for the heads cache (heads.go)
	pairs []string             // the idx_pair partitions written, for the page cache (pagecache.go)
}

// maxWriteStmts bounds the statements kept prepared on the writer's
// connection. The write path's shapes are few (multi-row inserts by row
// count, the searches domain rules run); past the bound a query is
// prepared once per batch instead.
const maxWriteStmts = 1024

// stmt returns query prepared and bound to the batch transaction. Parsing
// and planning a statement cost more than running it for most of the
// write path's statements, so each is prepared once on the writer's
// connection (which the batch transaction holds, so a statement met for
// the first time is prepared on the transaction and, after the batch, on
// the connection for the batches to come) and bound per batch.
func (bs *batchState) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := bs.stmts[query]; st != nil {
		return st, nil
	}
	var st *sql.Stmt
	if p := bs.s.wstmts[query]; p != nil {
		st = bs.tx.StmtContext(ctx, p)
	} else {
		var err error
		if st, err = bs.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		if len(bs.s.wstmts)+len(bs.fresh) < maxWriteStmts {
			bs.fresh = append(bs.fresh, query)
		}
	}
	if bs.stmts == nil {
		bs.stmts = map[string]*sql.Stmt{}
	}
	bs.stmts[query] = st
	return st, nil
}

// ExecContext implements querier with the batch's statements.
func (bs *batchState) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := bs.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext implements querier with the batch's statements.
func (bs *batchState) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := bs.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext implements querier with the batch's statements.
func (bs *batchState) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := bs.stmt(ctx, query)
	if err != nil {
		return bs.tx.QueryRowContext(ctx, query, args...) // reports the same error through Scan
	}
	return st.QueryRowContext(ctx, args...)
}

// Statements that run once or twice per request.
const (
	savepointSQL = "SAVEPOINT req"
	rollbackSQL  = "ROLLBACK TO req"
	releaseSQL   = "RELEASE req"
)

// run executes a batch in one transaction and answers its requests once
// it is committed, then prepares on the writer's connection the
// statements the batch met for the first time.
//
// A failed request must leave no trace while the others commit. The batch
// first runs without savepoints (each costs two statements, and SQLite
// copies every page a request first changes into the savepoint's
// sub-journal); when a request of a batch of several fails, that attempt
// is rolled back and the batch runs again with a savepoint per request,
// so that only the failed request's own savepoint is rolled back (as the
// store.Store contract allows, an Update's function may run more than
// once). After a batch with a failure, the next one starts with
// savepoints, so a stream of failing writes costs one attempt per batch.
func (s *Store) run(batch []*request) {
	bs, errs, retry := s.attempt(batch, s.failed && len(batch) > 1)
	if retry {
		bs, errs, _ = s.attempt(batch, true)
	}
	if bs == nil {
		return
	}
	s.failed = slices.ContainsFunc(errs, func(err error) bool { return err != nil })
	for _, q := range bs.fresh {
		if s.wstmts[q] != nil {
			continue
		}
		// The connection is free again: prepare on it, so that later
		// batches bind the statement instead of parsing it.
		if st, err := s.wdb.Prepare(q); err == nil {
			s.wstmts[q] = st
		}
	}
}

// attempt runs batch in one transaction, each request in a savepoint when
// savepoints is set. Without savepoints, a request's failure in a batch of
// several rolls everything back and reports retry, answering no request;
// otherwise every request is answered. bs is nil when the transaction
// could not start.
func (s *Store) attempt(batch []*request, savepoints bool) (bs *batchState, errs []error, retry bool) {
	errs = make([]error, len(batch))
	fail := func(err error) {
		for _, r := range batch {
			r.errc <- err
		}
	}
	ctx := context.Background()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		fail(err)
		return nil, nil, false
	}
	defer conn.Close()
	began := time.Now()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return nil, nil, false
	}
	bs = &batchState{s: s, tx: tx, pids: map[string]int64{}}
	for i, r := range batch {
		if savepoints {
			errs[i] = s.runOne(r, bs)
			continue
		}
		if errs[i] = s.runBare(r, bs); errs[i] != nil {
			if err := tx.Rollback(); err != nil && len(batch) == 1 {
				errs[i] = errors.Join(errs[i], err)
			}
			if len(batch) > 1 {
				return bs, nil, true
			}
			// A batch of one: rolling back the transaction is rolling
			// back the request.
			batch[0].errc <- errs[0]
			return bs, errs, false
		}
	}
	// Date shapes widened since the last commit are saved with this one
	// (see planner.widen), or kept for the next if it fails.
	shapes := s.plan.takeDirty()
	err = saveShapes(ctx, tx, shapes)
	var committing time.Time
	if err == nil {
		committing = time.Now()
		err = tx.Commit()
		s.heads.forget(bs.wrote)  // before any request is answered: see heads.go
		s.pages.changed(bs.pairs) // and pagecache.go
	} else {
		tx.Rollback()
	}
	if err != nil {
		s.plan.markDirty(shapes)
		fail(fmt.Errorf("sqlite: commit: %w", err))
		return bs, errs, false
	}
	s.pids.add(bs.pids)
	if f := s.commits.Load(); f != nil {
		end := time.Now()
		(*f)(CommitStats{Requests: len(batch), Batch: end.Sub(began), Commit: end.Sub(committing)})
	}
	for i, r := range batch {
		r.errc <- errs[i]
	}
	if s.walBig.Swap(false) {
		// The checkpointer keeps up with the WAL but, under a steady
		// stream of commits, rarely finds it wholly copied when a
		// transaction starts, which is when SQLite rewinds the WAL. A
		// checkpoint here, between commits, lets the next batch rewind it.
		conn.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)") // best effort: the next big WAL tries again
	}
	select {
	case s.ckptKick <- struct{}{}:
	default:
	}
	return bs, errs, false
}

// CommitStats describes one batch transaction the writer committed.
type CommitStats struct {
	// Requests counts the Update calls that shared the commit, each
	// applied or, when its function failed, rolled back to its savepoint.
	Requests int
	// Batch is how long the writer held the transaction: from its BEGIN
	// to the end of its COMMIT, running every request of the batch.
	Batch time.Duration
	// Commit is the COMMIT alone: the write of the WAL and its fsync.
	Commit time.Duration
}

// ObserveCommits makes the writer call f after each batch transaction it
// commits (a batch rolled back whole is not reported), before the batch's
// requests are answered. f runs on the writer, the store's serial path: it
// must be quick and never block. It may be called while the store serves;
// a later call replaces f, nil stops the reports.
func (s *Store) ObserveCommits(f func(CommitStats)) {
	if f == nil {
		s.commits.Store(nil)
		return
	}
	s.commits.Store(&f)
}

// Checkpoint pacing: the checkpointer copies the WAL into the database
// at most every checkpointEvery (a page rewritten by many commits in
// between is copied once), and asks the writer to let the WAL rewind once
// it holds walRestartFrames pages. A bulk load (SetBulkLoad) rewrites the
// same index pages batch after batch: it checkpoints ten times less often.
const (
	checkpointEvery  = 100 * time.Millisecond
	walRestartFrames = 4000
	bulkFactor       = 10
)

// cacheKiB is the writer's page cache, readCacheKiB that of each read
// connection and of the checkpointer. A read connection's cache is
// emptied whenever another connection committed since its last read (WAL
// mode), which under load is before nearly every query, so a large one
// buys nothing; SQLite's memory is not returned to the system, so 16
// connections of 64 MiB each grew the process by a gigabyte in the soak
// (docs/PERFORMANCE.md) while serving from the same few pages.
const (
	cacheKiB     = 64 << 10
	readCacheKiB = 8 << 10
)

// cacheSize is the pragma setting a connection's page cache to kib KiB.
func cacheSize(kib int) string { return fmt.Sprintf("cache_size(-%d)", kib) }

// SetBulkLoad tunes the store for loading many resources at once (signpost
// import) or back for serving: while on, checkpoints are ten times rarer
// (the WAL may grow to about 160 MB between them). It changes speed only,
// never results, and only for this Store: nothing is left on the database.
func (s *Store) SetBulkLoad(on bool) {
	s.bulk.Store(on)
}

// checkpointer copies committed pages from the WAL into the database file
// after commits, on its own connection, so that the writer (the store's
// serial path) spends no time on it; SQLite's automatic checkpoint ran in
// the writer's commit.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	for {
		select {
		case <-s.ckptKick:
		case <-s.ckptStop:
			return
		}
		var busy, frames, copied int
		err := s.cdb.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		limit, every := walRestartFrames, checkpointEvery
		if s.bulk.Load() {
			limit, every = limit*bulkFactor, every*bulkFactor
		}
		if err == nil && frames >= limit {
			s.walBig.Store(true)
		}
		select {
		case <-time.After(every):
		case <-s.ckptStop:
			return
		}
	}
}

// runBare runs one request in the batch transaction without a savepoint.
func (s *Store) runBare(r *request, bs *batchState) (err error) {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	ctx := context.WithoutCancel(r.ctx) // see runOne
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: update panicked: %v", p)
		}
	}()
	return r.fn(ctx, &txn{reader: reader{s: s, q: bs, batch: bs}, batch: bs})
}

func (s *Store) runOne(r *request, bs *batchState) (err error) {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	// The request's cancellation must not reach SQLite: the driver
	// interrupts a statement whose context ends, and SQLite answers an
	// interrupted write by rolling back the whole batch transaction, not
	// just this savepoint, after which the batch's later requests would
	// commit on their own and still be reported as failed. A request is
	// skipped if its context ended before its turn; once started, it runs.
	ctx := context.WithoutCancel(r.ctx)
	if _, err := bs.ExecContext(ctx, savepointSQL); err != nil {
		return err
	}
	t := &txn{reader: reader{s: s, q: bs, batch: bs}, batch: bs}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: update panicked: %v", p)
		}
		if err != nil {
			for _, k := range t.newPids {
				delete(bs.pids, k)
			}
			if _, rerr := bs.ExecContext(ctx, rollbackSQL); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if _, rerr := bs.ExecContext(ctx, releaseSQL); rerr != nil && err == nil {
			err = rerr
		}
	}()
	return r.fn(ctx, t)
}

// saveShapes saves date shapes in tx, never narrowing a saved one.
func saveShapes(ctx context.Context, tx *sql.Tx, shapes map[int64]dateShape) error {
	for pid, sh := range shapes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO idx_date_shape (pid, width, multi) VALUES (?, ?, ?)
			ON CONFLICT (pid) DO UPDATE SET width = max(width, excluded.width), multi = max(multi, excluded.multi)`,
			pid, sh.width, sh.multi); err != nil {
			return fmt.Errorf("saving date shapes: %w", err)
		}
	}
	return nil
}

// saveStat persists a planner statistic, best effort: a statistic not
// saved is computed again after the next start.
func (s *Store) saveStat(k statKey, v [3]float64, seq int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.(*txn).exec(ctx, "INSERT OR REPLACE INTO idx_stats (tbl, pid, typ, v0, v1, v2, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
			k.table, k.pid, k.typ, v[0], v[1], v[2], seq)
		return err
	})
}

// pidCache maps "Type.code" to committed parameter ids.
type pidCache struct {
	mu sync.RWMutex
	m  map[string]int64
}

func (c *pidCache) load(db *sql.DB) error {
	rows, err := db.Query("SELECT pid, type, code FROM params")
	if err != nil {
		return fmt.Errorf("sqlite: loading params: %w", err)
	}
	defer rows.Close()
	c.m = map[string]int64{}
	for rows.Next() {
		var pid int64
		var typ, code string
		if err := rows.Scan(&pid, &typ, &code); err != nil {
			return err
		}
		c.m[typ+"."+code] = pid
	}
	return rows.Err()
}

func (c *pidCache) get(key string) (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	pid, ok := c.m[key]
	return pid, ok
}

func (c *pidCache) add(m map[string]int64) {
	if len(m) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range m {
		c.m[k] = v
	}
}
