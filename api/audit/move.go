package audit

// The mover: a write's AuditEvent is stored in the write's own
// transaction, in the main store; the mover moves it into the audit
// database, where every AuditEvent is read and searched, soon after (the
// trail runs it at every flush, and Routed before every read of the
// trail).
//
// A main store with a queue of audit records (store.AuditQueue, the
// SQLite store) keeps the record there, as one unindexed row: the mover
// copies the queue into the audit database, indexing each record there,
// and then deletes what it copied from the queue. A record is copied only
// if the audit database does not hold its id yet, so a crash between the
// audit commit and the delete copies nothing twice: the next move finds
// the records there and only deletes them.
//
// A main store without one (or a data directory written before the queue)
// holds the records as AuditEvent resources: the mover copies those that
// the audit database lacks, in the same audit transaction as the cursor
// that says how far the main store has been copied, and leaves them there.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// cursorType and cursorID name the mover's cursor in the audit database:
// a resource of a type the server never reads from there (only AuditEvents
// are), whose versions record how far the main store's AuditEvents have
// been copied.
const (
	cursorType = "Basic"
	cursorID   = "signpost-audit-mover"
	cursorURL  = "https://signpost.example/fhir/StructureDefinition/audit-moved-through"
)

// moveOverlap is how far before the cursor the mover looks again: a write
// whose clock lagged (the writer's clock stepped back) is still copied; the
// records seen again are skipped by id.
const moveOverlap = time.Second

// moveChunk is how many records one audit transaction copies.
const moveChunk = 500

// Mover moves the records of writes from a main store into the audit
// database: those of its queue (store.AuditQueue), and its AuditEvent
// resources.
type Mover struct {
	main  store.Reader
	queue store.AuditQueue // main's queue; nil: main has none
	audit store.Store
	ex    Extractor

	mu      sync.Mutex // one Move or Sync at a time
	through int64      // the cursor (µs since the epoch); -1 until read
	version int64      // the cursor resource's version (0: none yet)

	// With a queue, the main store gets AuditEvent resources only from an
	// older release (copied at the first Move) or from a write whose
	// transaction had no queue (stored counts them, after their commit):
	// Sync looks for them only when stored has moved since the last
	// complete copy of resources (copied, -1 before the first; m.mu).
	stored atomic.Int64
	copied int64
	// synced is how far Sync has copied the queue without deleting it
	// (every record queued with a Seq up to it is in the audit database);
	// 0 once a Move has deleted from the queue, after which a Seq may be
	// given again.
	synced int64

	lagMu    sync.Mutex
	caughtUp time.Time // when a Move last copied everything there was
	failing  bool
}

// NewMover returns a mover from main into audits; ex indexes the copies
// (Index).
func NewMover(main store.Reader, audits store.Store, ex Extractor) *Mover {
	q, _ := main.(store.AuditQueue)
	return &Mover{main: main, queue: q, audit: audits, ex: ex, through: -1, copied: -1, caughtUp: time.Now()}
}

// queued returns the main store's queue of audit records, or nil.
func (m *Mover) queued() store.AuditQueue { return m.queue }

// storedResource tells the mover that a record of a write was stored as
// an AuditEvent resource of the main store (its transaction had no
// queue), once that committed: the next Sync copies resources too.
func (m *Mover) storedResource() { m.stored.Add(1) }

// cursorBody is the cursor resource as stored.
type cursorBody struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Code         struct {
		Text string `json:"text"`
	} `json:"code"`
	Extension []struct {
		URL         string `json:"url"`
		ValueString string `json:"valueString"`
	} `json:"extension"`
}

// load reads the cursor; m.mu is held.
func (m *Mover) load(ctx context.Context) error {
	if m.through >= 0 {
		return nil
	}
	res, err := m.audit.Read(ctx, cursorType, cursorID)
	switch {
	case fhir.KindOf(err) == fhir.NotFound:
		m.through, m.version = 0, 0
		return nil
	case err != nil:
		return err
	}
	var c cursorBody
	if err := json.Unmarshal(res.JSON, &c); err != nil || len(c.Extension) != 1 {
		return fmt.Errorf("audit: the mover's cursor is damaged: %s", res.JSON)
	}
	through, err := strconv.ParseInt(c.Extension[0].ValueString, 10, 64)
	if err != nil {
		return fmt.Errorf("audit: the mover's cursor is damaged: %w", err)
	}
	m.through, m.version = through, res.Version
	return nil
}

// cursorWrite is the next version of the cursor at through.
func (m *Mover) cursorWrite(through int64, now time.Time) (*store.Write, error) {
	c := cursorBody{ResourceType: cursorType, ID: cursorID}
	c.Code.Text = "how far the main store's AuditEvents have been copied into the audit database"
	c.Extension = append(c.Extension, struct {
		URL         string `json:"url"`
		ValueString string `json:"valueString"`
	}{cursorURL, strconv.FormatInt(through, 10)})
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return &store.Write{Resource: &fhir.Resource{Type: cursorType, ID: cursorID, Version: m.version + 1, LastUpdated: now, JSON: body}}, nil
}

// Move copies into the audit database, in transactions of moveChunk, the
// records of writes it lacks: the main store's queue (deleted from there
// once copied) and its AuditEvent resources. It returns how many it
// copied. The trail runs it at every flush, and the server at its start.
func (m *Mover) Move(ctx context.Context) (int, error) {
	return m.run(ctx, true, true)
}

// Sync copies what Move would before a read of the audit trail, so that
// the read finds the record of every write acknowledged before it. It
// leaves the queue's delete to the next Move (the trail's flush), so that
// a read writes nothing to the main store, and reads the queue on
// from what it copied before; it looks for AuditEvent resources of the
// main store only when one may have been stored since they were last
// copied (storedResource). With nothing new queued it costs one probe of
// the queue.
func (m *Mover) Sync(ctx context.Context) (int, error) {
	return m.run(ctx, m.queue == nil, false)
}

// run copies the queue, deleting what it copied when drop is set, and
// the resources when resources is set or a record may have been stored as
// one since they were last copied.
func (m *Mover) run(ctx context.Context, resources, drop bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := 0, error(nil)
	if gen := m.stored.Load(); resources || gen != m.copied {
		n, err = m.move(ctx)
		if err == nil {
			m.copied = gen
		}
	}
	q, qerr := m.moveQueue(ctx, drop)
	n, err = n+q, errors.Join(err, qerr)
	m.lagMu.Lock()
	if err == nil {
		m.caughtUp = time.Now()
	}
	m.failing = err != nil
	m.lagMu.Unlock()
	return n, err
}

// move copies the main store's AuditEvent resources that the audit
// database lacks, from the cursor on.
func (m *Mover) move(ctx context.Context) (int, error) {
	if err := m.load(ctx); err != nil {
		return 0, err
	}
	since := max(m.through-moveOverlap.Microseconds(), 0)
	q := &search.Query{Type: auditType, Count: moveChunk, Total: search.TotalNone,
		Filter: []search.Expr{search.DateMatch{Param: "_lastUpdated", Prefix: search.Ge, Low: since, High: since + 1}}}
	moved := 0
	for {
		page, err := m.main.Search(ctx, q)
		if err != nil {
			return moved, err
		}
		n, err := m.copyPage(ctx, page.Resources)
		moved += n
		if err != nil {
			return moved, err
		}
		if page.Next == "" {
			return moved, nil
		}
		q.Cursor = page.Next
	}
}

// copyPage copies the records of one page that the audit database lacks,
// and advances the cursor, in one audit transaction.
func (m *Mover) copyPage(ctx context.Context, page []*fhir.Resource) (int, error) {
	through := m.through
	for _, res := range page {
		through = max(through, res.LastUpdated.UnixMicro())
	}
	if len(page) == 0 || through == m.through && !m.anyMissing(ctx, page) {
		return 0, nil
	}
	n := 0
	err := m.audit.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		n = 0
		var ws []*store.Write
		for _, res := range page {
			if _, err := tx.Read(ctx, auditType, res.ID); fhir.KindOf(err) != fhir.NotFound {
				if err != nil && fhir.KindOf(err) != fhir.Gone {
					return err
				}
				continue // copied before
			}
			index, err := Index(m.ex, auditType, res.JSON)
			if err != nil {
				return fmt.Errorf("audit: indexing AuditEvent/%s: %w", res.ID, err)
			}
			cp := *res
			cp.Version = 1 // its first version in the audit database
			ws = append(ws, &store.Write{Resource: &cp, Index: index})
		}
		n = len(ws)
		if through > m.through {
			cw, err := m.cursorWrite(through, time.Now().UTC())
			if err != nil {
				return err
			}
			ws = append(ws, cw)
		}
		return store.PutAll(ctx, tx, ws)
	})
	if err != nil {
		return 0, err
	}
	if through > m.through {
		m.through, m.version = through, m.version+1
	}
	return n, nil
}

// anyMissing reports whether a record of page (all at or before the
// cursor: seen again in the overlap) is not in the audit database.
func (m *Mover) anyMissing(ctx context.Context, page []*fhir.Resource) bool {
	for _, res := range page {
		if _, err := m.audit.Read(ctx, auditType, res.ID); fhir.KindOf(err) == fhir.NotFound {
			return true
		}
	}
	return false
}

// Lag returns how long ago the mover last caught up with the main store
// (0 right after it did): how late a write's AuditEvent may be in
// searches.
func (m *Mover) Lag() time.Duration {
	m.lagMu.Lock()
	defer m.lagMu.Unlock()
	return time.Since(m.caughtUp)
}

// moveQueue copies the main store's queue into the audit database, chunk
// by chunk, each in one audit transaction, and, when drop is set, deletes
// each chunk from the queue once its copies are committed (otherwise it
// reads on from synced, and moves synced on).
func (m *Mover) moveQueue(ctx context.Context, drop bool) (int, error) {
	if m.queue == nil {
		return 0, nil
	}
	moved := 0
	for {
		// Dropping, from the head each time: what was copied is gone.
		after := m.synced
		if drop {
			after = 0
		}
		recs, err := m.queue.QueuedAudits(ctx, after, moveChunk)
		if err != nil || len(recs) == 0 {
			return moved, err
		}
		n, err := m.copyQueued(ctx, recs)
		if err != nil {
			return moved, err
		}
		moved += n
		seqs := make([]int64, len(recs))
		for i, q := range recs {
			seqs[i] = q.Seq
		}
		if drop {
			// A crash (or a failure) here leaves the chunk queued: the
			// next move finds its records in the audit database and only
			// deletes them.
			m.synced = 0
			if _, err := m.queue.DropAudits(ctx, seqs); err != nil {
				return moved, err
			}
		} else {
			m.synced = seqs[len(seqs)-1]
		}
		if len(recs) < moveChunk {
			return moved, nil
		}
	}
}

// copyQueued stores the records of recs that the audit database lacks
// (by id), indexed, in one audit transaction, and returns how many.
func (m *Mover) copyQueued(ctx context.Context, recs []store.QueuedAudit) (int, error) {
	n := 0
	err := m.audit.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		n = 0
		ws := make([]*store.Write, 0, len(recs))
		for _, q := range recs {
			res := q.Resource
			if _, err := tx.Read(ctx, res.Type, res.ID); fhir.KindOf(err) != fhir.NotFound {
				if err != nil && fhir.KindOf(err) != fhir.Gone {
					return err
				}
				continue // copied before the queue's delete
			}
			index, err := Index(m.ex, res.Type, res.JSON)
			if err != nil {
				return fmt.Errorf("audit: indexing %s/%s: %w", res.Type, res.ID, err)
			}
			cp := *res
			cp.Version = 1
			ws = append(ws, &store.Write{Resource: &cp, Index: index})
		}
		n = len(ws)
		return store.PutAll(ctx, tx, ws)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Uncopied counts the records of writes kept in the main store (its
// AuditEvents and its queue's records) and those of them the audit
// database lacks (copied by the mover at the next flush or start),
// reading page by page: for signpost check.
func Uncopied(ctx context.Context, main, audits store.Reader) (total, missing int, err error) {
	lacks := func(typ, id string) (bool, error) {
		_, err := audits.Read(ctx, typ, id)
		if fhir.KindOf(err) == fhir.NotFound {
			return true, nil
		}
		return false, err
	}
	if q, ok := main.(store.AuditQueue); ok {
		var after int64
		for {
			recs, err := q.QueuedAudits(ctx, after, moveChunk)
			if err != nil {
				return total, missing, err
			}
			for _, r := range recs {
				total++
				if l, err := lacks(r.Resource.Type, r.Resource.ID); err != nil {
					return total, missing, err
				} else if l {
					missing++
				}
			}
			if len(recs) < moveChunk {
				break
			}
			after = recs[len(recs)-1].Seq
		}
	}
	q := &search.Query{Type: auditType, Count: moveChunk, Total: search.TotalNone}
	for {
		page, err := main.Search(ctx, q)
		if err != nil {
			return total, missing, err
		}
		for _, res := range page.Resources {
			total++
			if l, err := lacks(auditType, res.ID); err != nil {
				return total, missing, err
			} else if l {
				missing++
			}
		}
		if page.Next == "" {
			return total, missing, nil
		}
		q.Cursor = page.Next
	}
}
