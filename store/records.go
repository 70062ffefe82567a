package store

import (
	"context"
	"fmt"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
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

// SecretRecordKind is the kind of the records that keep secrets every
// process serving one store must share: the signing keys of $find
// proposals and of $ubrn-access tokens. Several Signpost processes on one
// MongoDB deployment each have their own --data directory, so a key kept
// only there would make one process refuse what another signed.
const SecretRecordKind = "secret"

// noExpiry is the expiry of a record that never expires.
var noExpiry = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// SharedSecret returns the secret named name kept in st's records. When
// there is none yet it stores initial's (a new secret, or the one an
// older release kept in the data directory, which is so adopted): the
// first process to store one wins, and every other gets the same. A store
// without records keeps no secrets; initial's is then the process's own.
func SharedSecret(ctx context.Context, st Store, name string, initial func() ([]byte, error)) ([]byte, error) {
	recs, ok := st.(Records)
	if !ok {
		return initial()
	}
	for attempt := 0; ; attempt++ {
		b, err := recs.GetRecord(ctx, SecretRecordKind, name)
		if err == nil {
			return b, nil
		}
		if fhir.KindOf(err) != fhir.NotFound {
			return nil, fmt.Errorf("store: reading the secret %s: %w", name, err)
		}
		b, err = initial()
		if err != nil {
			return nil, err
		}
		err = st.Update(ctx, func(ctx context.Context, tx Tx) error {
			return tx.(RecordTx).PutRecord(ctx, SecretRecordKind, name, b, noExpiry)
		})
		switch {
		case err == nil:
			return b, nil
		case fhir.KindOf(err) == fhir.Conflict && attempt == 0: // another process stored one first
			continue
		default:
			return nil, fmt.Errorf("store: keeping the secret %s: %w", name, err)
		}
	}
}

// LeaseRecordKind is the kind of the records TakeLease keeps.
const LeaseRecordKind = "lease"

// TakeLease reports whether the caller may do the periodic work named
// name now, when several processes serve st and it should be done by one
// at a time (the hold sweeper): it takes the lease until the instant
// given, unless another process holds a live one. A lease is never
// renewed, only taken again once it has expired, so one that lasts a
// little less than the work's interval lets one process of many do each
// round. A store without records has one process: it always may.
func TakeLease(ctx context.Context, st Store, name string, until time.Time) (bool, error) {
	if _, ok := st.(Records); !ok {
		return true, nil
	}
	err := st.Update(ctx, func(ctx context.Context, tx Tx) error {
		return tx.(RecordTx).PutRecord(ctx, LeaseRecordKind, name, []byte(until.UTC().Format(time.RFC3339Nano)), until)
	})
	switch {
	case err == nil:
		return true, nil
	case fhir.KindOf(err) == fhir.Conflict:
		return false, nil
	}
	return false, fmt.Errorf("store: taking the lease %s: %w", name, err)
}
