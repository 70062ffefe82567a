package store

import (
	"context"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
)

// Purger is an optional capability of a Store, found by type assertion:
// physical removal of old resources of a type, for retention (signpost
// audit archive, docs/audit.md § Retention). Unlike a delete, which
// stores a tombstone version and keeps every earlier one, a purge leaves
// nothing of a resource: no current row, no version, no index entry, no
// derived value. Afterwards Read and ReadVersion answer fhir.NotFound and
// no History or Search finds it.
//
// It is made for removing what has been copied elsewhere first, safely
// while the store serves: the caller lists the resources recorded before
// a time (PurgeList), keeps them (an archive file, synced), and then
// purges exactly those it kept, naming each by id and version (Purge), in
// batches of one transaction each. A resource written again since it was
// listed is not purged, so a purge never removes a version the caller has
// not kept.
//
// The embedded SQLite store and the MongoDB store implement it.
type Purger interface {
	// PurgeList returns up to limit resources of typ whose current
	// version (a tombstone too) was last updated before before: their
	// current versions, with JSON (a tombstone: Deleted set, no JSON),
	// in an order of the store's, from the one after cursor ("" from the
	// first). next is the cursor of the following page, "" after the
	// last. A page may hold fewer than limit resources and still have a
	// next one.
	//
	// A store may hold a resource back while removing it would be unsafe
	// (SQLite: the one whose version is the newest row of the database,
	// since SQLite would give its row number to the next version
	// written); it is listed once something newer has been written.
	PurgeList(ctx context.Context, typ string, before time.Time, cursor string, limit int) (rs []*fhir.Resource, next string, err error)
	// Purge removes, in one transaction, each resource of typ that refs
	// names whose current version is still the one named: its current
	// row, every version of its history, its index entries and its
	// derived values. A resource that is no longer there, has been
	// written again since (another version), or is held back (see
	// PurgeList) is left as it is. It returns how many it removed.
	Purge(ctx context.Context, typ string, refs []PurgeRef) (int, error)
}

// PurgeRef names a resource to purge by its id and current version.
type PurgeRef struct {
	ID      string
	Version int64
}

// PurgeBatch is how many resources a caller of Purge names at once: one
// transaction each, short enough that a server's writes on the same
// store wait for one only tens of milliseconds (SQLite, 1 KB AuditEvents
// on a loaded 2-core machine: 20–40 ms for 250, 145–180 ms for 1,000;
// store/sqlite BenchmarkPurge), at the same cost per resource.
const PurgeBatch = 250
