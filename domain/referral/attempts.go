package referral

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// AttemptRecord is the kind of the store records that count failed
// $ubrn-access attempts. They live in the store, not in a process, so
// several Signpost processes serving one store allow a UBRN the same few
// guesses between them as one process would.
const AttemptRecord = "referral.ubrn-failure"

// attempts counts failed attempts per UBRN in a sliding window: failure i
// of the window is the record (AttemptRecord, UBRN hash + "#" + i), living
// window from its failure, and max live records block the UBRN until the
// first of them expires. A failure takes the first free index; two
// processes failing at once take two (a live record is never replaced).
// The UBRN is hashed so a key never carries what a caller typed.
type attempts struct {
	st     store.Store
	max    int
	window time.Duration
}

// blocked returns how long ubrn stays blocked, or 0.
func (a attempts) blocked(ctx context.Context, ubrn string) (time.Duration, error) {
	recs, ok := a.st.(store.Records)
	if !ok {
		return 0, errNoRecords()
	}
	var first time.Time
	for i := range a.max {
		b, err := recs.GetRecord(ctx, AttemptRecord, a.key(ubrn, i))
		if fhir.KindOf(err) == fhir.NotFound {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		exp, err := time.Parse(time.RFC3339Nano, string(b))
		if err != nil {
			return 0, err
		}
		if first.IsZero() || exp.Before(first) {
			first = exp
		}
	}
	return max(time.Until(first), time.Second), nil
}

// fail counts a failed attempt for ubrn.
func (a attempts) fail(ctx context.Context, ubrn string) error {
	if _, ok := a.st.(store.Records); !ok {
		return errNoRecords()
	}
	exp := time.Now().Add(a.window) // the store's records expire by its clock
	for i := range a.max {
		err := a.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.(store.RecordTx).PutRecord(ctx, AttemptRecord, a.key(ubrn, i), []byte(exp.UTC().Format(time.RFC3339Nano)), exp)
		})
		if fhir.KindOf(err) != fhir.Conflict {
			return err
		}
	}
	return nil // every index is taken: blocked already
}

func (a attempts) key(ubrn string, i int) string {
	h := sha256.Sum256([]byte(ubrn))
	return hex.EncodeToString(h[:16]) + "#" + strconv.Itoa(i)
}

func errNoRecords() error {
	return fhir.Errorf(fhir.Other, "not-supported", "", "the store keeps no records, so failed $ubrn-access attempts cannot be counted")
}
