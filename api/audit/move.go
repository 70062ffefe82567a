package audit

// The mover: a write's AuditEvent is stored in the write's own transaction,
// in the main store; the mover copies it into the audit database, where
// every AuditEvent is read and searched, soon after (the trail runs it at
// every flush). It copies each exactly once and survives a crash at any
// point: a record is copied only if the audit database does not hold its
// id yet, in the same audit transaction as the cursor that says how far
// the main store has been copied.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
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

// Mover copies the AuditEvents of a main store into the audit database.
type Mover struct {
	main  store.Reader
	audit store.Store
	ex    Extractor

	mu      sync.Mutex // one Move at a time
	through int64      // the cursor (µs since the epoch); -1 until read
	version int64      // the cursor resource's version (0: none yet)

	lagMu    sync.Mutex
	caughtUp time.Time // when a Move last copied everything there was
	failing  bool
}

// NewMover returns a mover from main into audits; ex indexes the copies
// (Index).
func NewMover(main store.Reader, audits store.Store, ex Extractor) *Mover {
	return &Mover{main: main, audit: audits, ex: ex, through: -1, caughtUp: time.Now()}
}

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

// Move copies the main store's AuditEvents not yet in the audit database,
// in transactions of moveChunk, and returns how many it copied.
func (m *Mover) Move(ctx context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.move(ctx)
	m.lagMu.Lock()
	if err == nil {
		m.caughtUp = time.Now()
	}
	m.failing = err != nil
	m.lagMu.Unlock()
	return n, err
}

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

// Uncopied counts the AuditEvents of the main store and those of them the
// audit database lacks (copied by the mover at the next flush or start),
// reading both page by page: for signpost check.
func Uncopied(ctx context.Context, main, audits store.Reader) (total, missing int, err error) {
	q := &search.Query{Type: auditType, Count: moveChunk, Total: search.TotalNone}
	for {
		page, err := main.Search(ctx, q)
		if err != nil {
			return total, missing, err
		}
		for _, res := range page.Resources {
			total++
			if _, err := audits.Read(ctx, auditType, res.ID); fhir.KindOf(err) == fhir.NotFound {
				missing++
			} else if err != nil {
				return total, missing, err
			}
		}
		if page.Next == "" {
			return total, missing, nil
		}
		q.Cursor = page.Next
	}
}
