package audit

// The audit database beside the main store: Routed is the store the server
// reads and writes through when the audit trail has a database of its own
// (docs/audit.md). Writes go to the main store, AuditEvent reads,
// histories and searches to the audit database; chained and reverse
// chained searches that cross from one database to the other are resolved
// in two steps.

import (
	"context"
	"slices"

	"github.com/signpost-fhir/signpost/api/admission"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Main is what a main store must offer for the audit trail to move to a
// database of its own: the store and every optional capability the server
// finds on it by type assertion (Routed passes them through). The SQLite
// store has them all; a store without one keeps its AuditEvents itself.
type Main interface {
	store.Store
	store.Records
	store.Deriver
	store.BulkLoader
	store.Reindexer
	store.DateOrderer
	store.Outbox
	store.Inbox
	store.OutboxDelivery
	store.OutboxAdmin
	store.Backuper
}

// Routed is a main store whose AuditEvents are read from the audit
// database: Read, ReadVersion, History and Search of AuditEvent go there,
// everything else (every write included, and the server's capabilities)
// to the main store.
//
// A search or history of AuditEvents first has the mover copy the records
// of writes the audit database lacks (Mover.Sync): it finds every write
// acknowledged before it, as when the records of writes were searched in
// the main store. So does a read by id that the audit database does not
// answer, before it falls back to the main store's AuditEvent resources.
type Routed struct {
	Main
	audit store.Store
	ex    store.Extractor
	mover *Mover
}

// Indexer is what Split needs of the search registry: the index entries of
// a resource (for the mover's copies) and its reference entries (to
// resolve a reverse chain, _has, from one database into the other).
type Indexer interface {
	Extractor
	store.Extractor
}

// Split returns main with its AuditEvents read from audits, and the mover
// that copies main's AuditEvents there (Mover).
func Split(main Main, audits store.Store, ix Indexer) *Routed {
	return &Routed{Main: main, audit: audits, ex: ix, mover: NewMover(main, audits, ix)}
}

// Mover returns the mover from the main store into the audit database.
func (r *Routed) Mover() *Mover { return r.mover }

// sync has the mover copy what the audit database lacks before a read
// of it: with nothing queued, one probe of the main store's queue. A
// failure (the data directory full or read-only) leaves the read to what
// is there: the trail's flushes try again and log it. The read waits for
// the writers meanwhile, so it gives its admission slot back (package
// admission).
func (r *Routed) sync(ctx context.Context) {
	admission.Outside(ctx, func() { _, _ = r.mover.Sync(ctx) })
}

// Audits returns the audit database.
func (r *Routed) Audits() store.Store { return r.audit }

// readerOf is where resources of typ are read.
func (r *Routed) readerOf(typ string) store.Reader {
	if typ == auditType {
		return r.audit
	}
	return r.Main
}

// Read implements store.Reader. An AuditEvent the audit database lacks
// is looked for again once the mover has copied what it lacks (the record
// of a write still queued), then among the main store's resources.
func (r *Routed) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	res, err := r.readerOf(typ).Read(ctx, typ, id)
	if typ == auditType && fhir.KindOf(err) == fhir.NotFound {
		r.sync(ctx)
		if res, err = r.audit.Read(ctx, typ, id); fhir.KindOf(err) == fhir.NotFound {
			return r.Main.Read(ctx, typ, id)
		}
	}
	return res, err
}

// ReadVersion implements store.Reader, as Read.
func (r *Routed) ReadVersion(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	res, err := r.readerOf(typ).ReadVersion(ctx, typ, id, version)
	if typ == auditType && fhir.KindOf(err) == fhir.NotFound {
		r.sync(ctx)
		if res, err = r.audit.ReadVersion(ctx, typ, id, version); fhir.KindOf(err) == fhir.NotFound {
			return r.Main.ReadVersion(ctx, typ, id, version)
		}
	}
	return res, err
}

// History implements store.Reader: an AuditEvent's or the type's from the
// audit database. The history of the whole server is the main store's:
// without AuditEvents, but for those an older release, or a write whose
// transaction had no audit queue, stored there as resources.
func (r *Routed) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	if q.Type == auditType {
		r.sync(ctx)
	}
	return r.readerOf(q.Type).History(ctx, q)
}

// Search implements store.Reader. A search across types may name
// AuditEvent only on its own (_type=AuditEvent): the two databases' pages
// cannot be merged under one cursor.
func (r *Routed) Search(ctx context.Context, q *search.Query) (*store.Page, error) {
	q2, rd, err := r.route(ctx, q)
	if err != nil {
		return nil, err
	}
	return rd.Search(ctx, q2)
}

// SearchByDate implements store.DateOrderer.
func (r *Routed) SearchByDate(ctx context.Context, q *search.Query, param string) (*store.Page, bool, error) {
	q2, rd, err := r.route(ctx, q)
	if err != nil {
		return nil, false, err
	}
	if o, ok := rd.(store.DateOrderer); ok {
		return o.SearchByDate(ctx, q2, param)
	}
	return nil, false, nil
}

// route returns q with its chains into the other database resolved, and
// the database to run it on.
func (r *Routed) route(ctx context.Context, q *search.Query) (*search.Query, store.Reader, error) {
	typ := q.Type
	if typ == "" {
		switch {
		case len(q.Types) == 1 && q.Types[0] == auditType:
			typ = auditType
		case slices.Contains(q.Types, auditType):
			return nil, nil, fhir.Errorf(fhir.Invalid, "not-supported", "_type",
				"AuditEvents are kept apart from the other resources: search AuditEvent on its own")
		}
	}
	if typ == auditType {
		r.sync(ctx)
	}
	q2 := *q
	q2.Filter = make([]search.Expr, len(q.Filter))
	for i, x := range q.Filter {
		y, err := r.resolve(ctx, typ, x)
		if err != nil {
			return nil, nil, err
		}
		q2.Filter[i] = y
	}
	return &q2, r.readerOf(typ), nil
}

// apart reports whether resources of a and b are kept in different
// databases ("" is a type of the main store).
func apart(a, b string) bool { return (a == auditType) != (b == auditType) }

// maxCrossMatches bounds how many resources a chain from one database into
// the other may match.
const maxCrossMatches = 1000

// noMatch is an id no resource has (an id has no '#'): a filter on it
// matches nothing.
const noMatch = "#none"

// resolve returns x, an expression over resources of typ, with every chain
// and _has into the other database replaced by the references or ids it
// matched there.
func (r *Routed) resolve(ctx context.Context, typ string, x search.Expr) (search.Expr, error) {
	switch e := x.(type) {
	case search.Or:
		out := make(search.Or, len(e))
		for i, y := range e {
			z, err := r.resolve(ctx, typ, y)
			if err != nil {
				return nil, err
			}
			out[i] = z
		}
		return out, nil
	case search.Not:
		y, err := r.resolve(ctx, typ, e.Expr)
		if err != nil {
			return nil, err
		}
		return search.Not{Expr: y}, nil
	case search.Chain:
		inner, err := r.resolve(ctx, e.Target, e.Filter)
		if err != nil {
			return nil, err
		}
		if !apart(typ, e.Target) {
			return search.Chain{Param: e.Param, Target: e.Target, Filter: inner}, nil
		}
		found, err := r.matches(ctx, e.Target, inner)
		if err != nil {
			return nil, err
		}
		refs := []search.Ref{{Type: e.Target, ID: noMatch}}
		for _, res := range found {
			refs = append(refs, search.Ref{Type: res.Type, ID: res.ID})
		}
		return search.RefIn{Param: e.Param, Refs: refs}, nil
	case search.Has:
		inner, err := r.resolve(ctx, e.Type, e.Filter)
		if err != nil {
			return nil, err
		}
		if !apart(typ, e.Type) {
			return search.Has{Type: e.Type, Param: e.Param, Filter: inner}, nil
		}
		found, err := r.matches(ctx, e.Type, inner)
		if err != nil {
			return nil, err
		}
		bodies := make([][]byte, len(found))
		for i, res := range found {
			bodies[i] = res.JSON
		}
		targets, err := r.ex.Targets(e.Type, bodies, e.Param, typ)
		if err != nil {
			return nil, err
		}
		ids := []string{noMatch}
		for _, t := range targets {
			if !slices.Contains(ids, t.ID) {
				ids = append(ids, t.ID)
			}
		}
		return search.IDIn{IDs: ids}, nil
	}
	return x, nil
}

// matches returns the resources of typ that match filter, from typ's
// database: at most maxCrossMatches, or an error asking for a narrower
// search.
func (r *Routed) matches(ctx context.Context, typ string, filter search.Expr) ([]*fhir.Resource, error) {
	if typ == auditType {
		r.sync(ctx)
	}
	page, err := r.readerOf(typ).Search(ctx, &search.Query{Type: typ, Filter: []search.Expr{filter},
		Count: maxCrossMatches, Total: search.TotalNone})
	if err != nil {
		return nil, err
	}
	if page.Next != "" {
		return nil, fhir.Errorf(fhir.Invalid, "too-costly", "",
			"the chained search into %s matches more than %d of them; narrow it", typ, maxCrossMatches)
	}
	return page.Resources, nil
}
