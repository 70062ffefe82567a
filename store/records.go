package store

import (
	"context"
	"time"
)

// Records is an optional capability of a Store, found by type assertion:
// small server-internal records (not FHIR resources, never served or
// searched) kept in the same database as the resources. Their Tx
// implements RecordTx, so a record is written atomically with the
// resources of the same transaction. Idempotency keys are the first use.
type Records interface {
	// GetRecord returns the value stored under (kind, key). A record that
	// does not exist or has expired gives an error of kind fhir.NotFound.
	GetRecord(ctx context.Context, kind, key string) ([]byte, error)
}

// RecordTx is the Records capability of a Tx; its reads see its own writes.
type RecordTx interface {
	Records
	// PutRecord stores value under (kind, key) until expires. A live
	// record already under that key gives an error of kind fhir.Conflict
	// and changes nothing; an expired one is replaced.
	PutRecord(ctx context.Context, kind, key string, value []byte, expires time.Time) error
}
