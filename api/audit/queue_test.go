package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// errCrash stands for a process killed at that point.
var errCrash = errors.New("killed here")

// crashingMain is a real main store whose queue deletes fail while
// failDrop is set, as if the process were killed between the audit
// commit and the delete: the records are copied but stay queued.
type crashingMain struct {
	*sqlite.Store
	failDrop atomic.Bool
}

func (s *crashingMain) DropAudits(ctx context.Context, seqs []int64) (int, error) {
	if s.failDrop.Load() {
		return 0, errCrash
	}
	return s.Store.DropAudits(ctx, seqs)
}

// crashingAudits is a real audit database whose commits fail while
// failCommit is set: the transaction does all its work, then rolls back,
// as if the process were killed before its commit.
type crashingAudits struct {
	store.Store
	failCommit atomic.Bool
}

func (s *crashingAudits) Update(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if s.failCommit.Load() {
			return errCrash
		}
		return nil
	})
}

// countingIndex indexes nothing and counts the records it was asked to
// index: a record is indexed once, when the mover stores it in the audit
// database.
type countingIndex struct{ n atomic.Int64 }

func (c *countingIndex) Extract(string, []byte) ([]search.Entry, error) {
	c.n.Add(1)
	return nil, nil
}

// queueAudits queues n AuditEvents in main's queue in one transaction, as
// writes' transactions queue their records.
func queueAudits(t *testing.T, main store.Store, prefix string, n int) {
	t.Helper()
	now := time.Now().UTC()
	err := main.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for i := range n {
			id := fmt.Sprintf("%s-%d", prefix, i)
			body := fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"action":"C","recorded":"2030-01-01T00:00:00Z"}`, id)
			if err := tx.(store.AuditQueueTx).QueueAudit(ctx, &fhir.Resource{Type: audit.Type, ID: id, Version: 1, LastUpdated: now, JSON: body}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// queueLen is how many records wait in main's queue.
func queueLen(t *testing.T, main store.AuditQueue) int {
	t.Helper()
	recs, err := main.QueuedAudits(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestMoverQueue: the mover moves the main store's queue into the audit
// database, indexing each record there once, and empties the queue; a
// crash at any step of a move (simulated by failing the audit commit, or
// the queue's delete after it) loses nothing and, on the next move or
// after a restart (a new Mover), copies nothing twice. A read's Sync
// copies without deleting, reading on from what it copied; the next Move
// deletes, copying only what Sync did not. AuditEvent
// resources of the main store (an older release's) are copied beside the
// queue, as before, and stay there.
func TestMoverQueue(t *testing.T) {
	sq := openSQLite(t)
	main := &crashingMain{Store: sq}
	adb := openSQLite(t)
	audits := &crashingAudits{Store: adb}
	ix := &countingIndex{}
	m := audit.NewMover(main, audits, ix)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	steps := []struct {
		name          string
		before        func()
		restart       bool
		sync          bool // a read's Sync rather than the flush's Move
		failCommit    bool
		failDrop      bool
		moved         int // copied by this step
		indexed       int // records indexed by this step
		total, queued int // in the audit database, in the queue after it
	}{
		{name: "queued records moved", before: func() { queueAudits(t, main, "a", 3) }, moved: 3, indexed: 3, total: 3},
		{name: "nothing queued", before: func() {}, total: 3},
		{name: "killed before the audit commit", before: func() { queueAudits(t, main, "b", 2) }, failCommit: true, indexed: 2, total: 3, queued: 2},
		{name: "moved by the next move", before: func() {}, moved: 2, indexed: 2, total: 5},
		{name: "killed between the audit commit and the delete", before: func() { queueAudits(t, main, "c", 2) }, failDrop: true, moved: 2, indexed: 2, total: 7, queued: 2},
		{name: "after a restart, deleted without a second copy", before: func() {}, restart: true, total: 7},
		{name: "a read's sync copies, leaving the queue", before: func() { queueAudits(t, main, "g", 2) }, sync: true, moved: 2, indexed: 2, total: 9, queued: 2},
		{name: "another sync reads on from there", before: func() {}, sync: true, total: 9, queued: 2},
		{name: "a sync killed before the audit commit", before: func() { queueAudits(t, main, "h", 1) }, sync: true, failCommit: true, indexed: 1, total: 9, queued: 3},
		{name: "the flush's move deletes, copying only what was not", before: func() {}, moved: 1, indexed: 1, total: 10},
		{name: "a sync after the queue was emptied sees what is queued anew", before: func() { queueAudits(t, main, "j", 1) }, sync: true, moved: 1, indexed: 1, total: 11, queued: 1},
		{name: "more than a transaction's worth, with resources of an older release",
			before: func() { queueAudits(t, main, "d", 1100); putAudits(t, main, "old", 4, now) }, moved: 1104, indexed: 1104, total: 1115},
		{name: "killed before the audit commit, resources and queue",
			before: func() { queueAudits(t, main, "e", 1); putAudits(t, main, "older", 1, now.Add(time.Second)) }, failCommit: true, indexed: 2, total: 1115, queued: 1},
		{name: "after a restart, both copied once", before: func() {}, restart: true, moved: 2, indexed: 2, total: 1117},
	}
	for _, s := range steps {
		s.before()
		if s.restart {
			m = audit.NewMover(main, audits, ix)
		}
		audits.failCommit.Store(s.failCommit)
		main.failDrop.Store(s.failDrop)
		ix.n.Store(0)
		move := m.Move
		if s.sync {
			move = m.Sync
		}
		n, err := move(ctx)
		audits.failCommit.Store(false)
		main.failDrop.Store(false)
		switch {
		case (s.failCommit || s.failDrop) && !errors.Is(err, errCrash):
			t.Fatalf("%s: Move = %v, want the crash", s.name, err)
		case !s.failCommit && !s.failDrop && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		}
		if n != s.moved {
			t.Errorf("%s: copied %d, want %d", s.name, n, s.moved)
		}
		if got := ix.n.Load(); got != int64(s.indexed) {
			t.Errorf("%s: indexed %d records, want %d", s.name, got, s.indexed)
		}
		if got := countAudits(t, audits); got != s.total {
			t.Errorf("%s: %d AuditEvent versions in the audit database, want %d (each once)", s.name, got, s.total)
		}
		if got := queueLen(t, main); got != s.queued {
			t.Errorf("%s: %d records queued, want %d", s.name, got, s.queued)
		}
	}
	if got := countAudits(t, main); got != 5 {
		t.Errorf("%d AuditEvent resources in the main store, want the 5 an older release stored (copied, not moved away)", got)
	}
	total, missing, err := audit.Uncopied(ctx, main, audits)
	if err != nil || total != 5 || missing != 0 {
		t.Errorf("Uncopied = %d, %d, %v; want 5 records of writes kept, none missing", total, missing, err)
	}
	queueAudits(t, main, "f", 2)
	if total, missing, err := audit.Uncopied(ctx, main, audits); err != nil || total != 7 || missing != 2 {
		t.Errorf("Uncopied with 2 queued = %d, %d, %v; want 7, 2", total, missing, err)
	}
}

// queuelessStore is a real store whose transactions have no audit queue
// (a Tx that is only a store.Tx): a write's record is stored as an
// AuditEvent resource of the main store, as by a store without one.
type queuelessStore struct{ *sqlite.Store }

func (s queuelessStore) Update(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error { return fn(ctx, struct{ store.Tx }{tx}) })
}

// TestRoutedReadYourWrites: the record of a write is found by every read
// of the audit trail through Routed as soon as the write is acknowledged,
// before any flush: by id, by version, by search and in the type's
// history; whether the write's transaction queued it (the main store's
// queue, emptied by the read's sync) or stored it as a resource (a
// transaction without a queue, which Sync then looks for). The reads copy
// without deleting from the queue (that waits for the flush, so a read
// writes nothing to the main store), and the flush copies nothing twice.
func TestRoutedReadYourWrites(t *testing.T) {
	for _, tt := range []struct {
		name   string
		queued bool // the write's transaction queues its record
	}{{"queued", true}, {"stored as a resource", false}} {
		t.Run(tt.name, func(t *testing.T) {
			sq := openSQLite(t)
			adb := openSQLite(t)
			routed := audit.Split(sq, adb, indexer{})
			var writes store.Store = routed
			if !tt.queued {
				writes = queuelessStore{sq}
			}
			trail := audit.New(audit.Config{BaseURL: "http://x/fhir", Writes: write.New(writes, noIndex{}), Search: noIndex{},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Flush: time.Hour, Store: adb, Mover: routed.Mover()})
			defer trail.Close()
			ctx := write.AsServer(context.Background())
			// The mover's first move (the server's start) before the write.
			if _, err := routed.Mover().Move(ctx); err != nil {
				t.Fatal(err)
			}
			record := func(id string) {
				t.Helper()
				err := write.New(writes, noIndex{}).Update(ctx, func(ctx context.Context, tx *write.Tx) error {
					return trail.RecordWrite(ctx, tx, &auth.Principal{ClientID: "c"}, &write.Change{Type: "Patient", ID: id}, auth.Create, "")
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			findRecord := func(id string) string {
				t.Helper()
				page, err := routed.Search(ctx, &search.Query{Type: audit.Type, Count: 100})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Resources {
					if bytes.Contains(r.JSON, []byte(`"Patient/`+id+`"`)) {
						return r.ID
					}
				}
				return ""
			}
			record("p1")
			if q := queueLen(t, sq); tt.queued != (q == 1) {
				t.Fatalf("%d records queued after the write", q)
			}
			id := findRecord("p1")
			if id == "" {
				t.Fatal("a search of the audit trail right after the write does not find its record")
			}
			if _, err := adb.Read(ctx, audit.Type, id); err != nil {
				t.Errorf("the record is not in the audit database after the search: %v", err)
			}
			for _, r := range []struct {
				name string
				read func(id string) error
			}{
				{"read", func(id string) error { _, err := routed.Read(ctx, audit.Type, id); return err }},
				{"vread", func(id string) error { _, err := routed.ReadVersion(ctx, audit.Type, id, 1); return err }},
				{"history", func(id string) error {
					h, err := routed.History(ctx, store.HistoryQuery{Type: audit.Type, Count: 100})
					if err == nil && !historyHas(h, id) {
						err = fmt.Errorf("not in the history of AuditEvent")
					}
					return err
				}},
			} {
				// Each read after a write of its own, before any flush.
				record("p-" + r.name)
				rid := ""
				if !tt.queued {
					// Stored as a resource of the main store, not yet in the
					// audit database.
					page, err := sq.Search(ctx, &search.Query{Type: audit.Type, Count: 100})
					if err != nil {
						t.Fatal(err)
					}
					for _, res := range page.Resources {
						if bytes.Contains(res.JSON, []byte(`"Patient/p-`+r.name+`"`)) {
							rid = res.ID
						}
					}
					if _, err := adb.Read(ctx, audit.Type, rid); rid == "" || fhir.KindOf(err) != fhir.NotFound {
						t.Fatalf("%s: the record %q is not a resource of the main store only: %v", r.name, rid, err)
					}
				} else {
					// Queued last (those a read copied stay queued until
					// the next flush deletes them: a read writes nothing
					// to the main store).
					recs, err := sq.QueuedAudits(ctx, 0, 10)
					if err != nil || len(recs) == 0 {
						t.Fatalf("%s: queue %d, %v", r.name, len(recs), err)
					}
					rid = recs[len(recs)-1].Resource.ID
				}
				if err := r.read(rid); err != nil {
					t.Errorf("%s of the record right after its write: %v", r.name, err)
				}
			}
			if _, err := routed.Read(ctx, audit.Type, "nobody"); fhir.KindOf(err) != fhir.NotFound {
				t.Errorf("Read of an unknown AuditEvent = %v, want not found", err)
			}
			// The flush deletes what the reads copied, copying nothing
			// twice: four writes, four records.
			trail.Flush()
			if q := queueLen(t, sq); q != 0 {
				t.Errorf("%d records still queued after a flush", q)
			}
			if n := countAudits(t, adb); n != 4 {
				t.Errorf("%d AuditEvent versions in the audit database, want the 4 writes' records once each", n)
			}
		})
	}
}

// indexer is what audit.Split needs, indexing nothing.
type indexer struct{ noIndex }

func (indexer) Targets(string, [][]byte, string, string) ([]search.Ref, error) { return nil, nil }

func historyHas(h *store.HistoryPage, id string) bool {
	for _, v := range h.Versions {
		if v.ID == id {
			return true
		}
	}
	return false
}

// TestRecordWriteWithoutMover: a trail without an audit database of its
// own (no Mover: MongoDB, or a store beside no audit database) stores a
// write's record as an AuditEvent resource of the main store, indexed, in
// the write's transaction, as before, and queues nothing, even on a store
// with an audit queue.
func TestRecordWriteWithoutMover(t *testing.T) {
	sq := openSQLite(t)
	ix := &countingIndex{}
	wp := write.New(sq, noIndex{})
	trail := audit.New(audit.Config{BaseURL: "http://x/fhir", Writes: wp, Search: ix,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Flush: time.Hour})
	defer trail.Close()
	ctx := write.AsServer(context.Background())
	err := wp.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		return trail.RecordWrite(ctx, tx, &auth.Principal{ClientID: "c"}, &write.Change{Type: "Patient", ID: "p1"}, auth.Create, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countAudits(t, sq); n != 1 {
		t.Errorf("%d AuditEvent resources in the store, want the write's record", n)
	}
	if n := ix.n.Load(); n != 1 {
		t.Errorf("the record was indexed %d times, want once, in its transaction", n)
	}
	if n := queueLen(t, sq); n != 0 {
		t.Errorf("%d records queued, want none", n)
	}
}
