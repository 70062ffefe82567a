package store

import "context"

// BulkPutter is an optional capability of a Tx, found by type assertion:
// writing many resource versions at once faster than one Put each (a
// backend's multi-row inserts), for imports and batched server records such
// as audit events. Callers use PutAll, which falls back to Put.
type BulkPutter interface {
	// PutAll stores ws in order with the effect of one Put each: it fails
	// as the first failing Put would, with an error of kind fhir.Conflict
	// when a version is not the next one, and the caller's Update then
	// rolls everything back.
	PutAll(ctx context.Context, ws []*Write) error
}

// PutAll stores ws in tx in order, through tx's BulkPutter when it has one
// and otherwise with one Put each.
func PutAll(ctx context.Context, tx Tx, ws []*Write) error {
	if b, ok := tx.(BulkPutter); ok {
		return b.PutAll(ctx, ws)
	}
	for _, w := range ws {
		if err := tx.Put(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// BulkLoader is an optional capability of a Store, found by type
// assertion: a setting that tunes the store for loading many resources at
// once (signpost import) or back for serving. It changes speed only, never
// results, and only for the Store value it is called on.
type BulkLoader interface {
	SetBulkLoad(on bool)
}
