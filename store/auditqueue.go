package store

import (
	"context"

	"github.com/signpost-fhir/signpost/fhir"
)

// AuditQueue is an optional capability of a Store, found by type
// assertion: a queue of audit records (AuditEvents) written in the
// transactions of the writes they record, cheaply. Its Tx implements
// AuditQueueTx, so a record is queued atomically with its write (none
// after a rollback, durable with the commit). A queued record is no
// resource of the store: it has no history and no index entries, and no
// Read, History or Search finds it. A mover (api/audit.Mover) reads the
// queue in order, stores the records elsewhere (the audit database,
// indexed there) and then drops them from the queue.
//
// The embedded SQLite store implements it (an append-only table beside
// the resources), so that a write pays for its audit record once, in the
// audit database, instead of as a resource of the main store too. A store
// without it keeps its writes' AuditEvents as resources (store/mongo,
// which has no audit database of its own).
type AuditQueue interface {
	// QueuedAudits returns up to limit queued records with Seq greater
	// than after, in Seq order. It sees every record whose transaction
	// committed before the call; reading on from the last Seq returned
	// (while none of those read is dropped) misses none of them.
	QueuedAudits(ctx context.Context, after int64, limit int) ([]QueuedAudit, error)
	// DropAudits deletes the queued records of seqs, in one transaction,
	// and returns how many there were; a Seq no longer queued is skipped.
	DropAudits(ctx context.Context, seqs []int64) (int, error)
}

// AuditQueueTx is the AuditQueue capability of a Tx.
type AuditQueueTx interface {
	// QueueAudit appends res (its Type, ID, LastUpdated and JSON; it is
	// version 1) to the queue, when the transaction commits.
	QueueAudit(ctx context.Context, res *fhir.Resource) error
}

// QueuedAudit is a record in an AuditQueue.
type QueuedAudit struct {
	// Seq orders the queue: a record gets a greater Seq than every
	// record queued when its transaction commits, and the records of a
	// transaction follow one another in call order. A Seq dropped may be
	// given again once the records after it are dropped too.
	Seq int64
	// Resource is the record as queued, version 1.
	Resource *fhir.Resource
}
