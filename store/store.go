// Package store defines what Signpost needs from a database: a small,
// backend-neutral contract (no SQL or Mongo in it) that every backend
// implements and that the shared suite in store/storetest checks.
//
// A store keeps every version of every resource, answers searches expressed
// as backend-neutral expressions (fhir/search), and runs multi-resource writes
// atomically. Optimistic concurrency lives here: a write names the version it
// replaces and fails with fhir.ErrConflict if that is no longer current.
package store

import (
	"context"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Store is a database of FHIR resources.
type Store interface {
	Reader
	// Update runs fn in one atomic transaction: everything fn writes through
	// tx becomes durable and visible together when fn returns nil, and
	// nothing does when it returns an error (which Update returns). Updates
	// are serialisable. fn may be called more than once if the backend must
	// retry, so it must have no side effects outside tx.
	//
	// Serialisable includes checks: when fn reads (Read, Search) to decide
	// what to write, and a concurrent Update writes what would change that
	// read, one of the two fails or is retried after the other. A backend
	// whose transactions are only snapshot isolated must make such
	// check-then-write pairs conflict (store/mongo writes a guard document
	// per search run in a transaction; see docs/mongodb.md).
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	Close() error
}

// Reader answers reads from a consistent snapshot.
type Reader interface {
	// Read returns the current version of a resource. A deleted resource
	// gives an error of kind fhir.Gone together with its tombstone.
	Read(ctx context.Context, typ, id string) (*fhir.Resource, error)
	// ReadVersion returns one version; a tombstone version gives fhir.Gone.
	ReadVersion(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error)
	// History lists versions, newest first.
	History(ctx context.Context, q HistoryQuery) (*HistoryPage, error)
	// Search returns the resources matching q.Filter in q's order, one page.
	Search(ctx context.Context, q *search.Query) (*Page, error)
}

// Tx is a transaction in progress. Its reads see its own writes.
type Tx interface {
	Reader
	// Put stores a new version of w.Resource. Its Version must be one more
	// than the current version (1 for a new resource); otherwise Put fails
	// with an error of kind fhir.Conflict and nothing is written. A
	// tombstone (Deleted) records a delete.
	Put(ctx context.Context, w *Write) error
}

// Write is one new resource version and the index entries that describe it.
type Write struct {
	Resource *fhir.Resource
	Index    []search.Entry
}

// HistoryQuery selects versions for a history interaction: of one resource
// (Type and ID), of a type (Type), or of the whole server (neither).
type HistoryQuery struct {
	Type, ID string
	Since    time.Time // only versions updated at or after Since
	Before   time.Time // the _at-style upper bound (exclusive); zero = none
	Cursor   string    // opaque, from a previous page's Next
	Count    int
}

// HistoryPage is one page of history, newest first.
type HistoryPage struct {
	Versions []*fhir.Resource
	Next     string // cursor for the following page; "" on the last
}

// Page is one page of search results.
type Page struct {
	Resources []*fhir.Resource
	Total     int    // number of matches in all pages; -1 when not computed
	Next      string // cursor for the following page; "" on the last
	Prev      string // cursor for the previous page; "" on the first
}
