package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// testRecords checks the optional store.Records capability: a record is
// written atomically with the transaction's resources, a live key cannot be
// written twice, an expired one reads as absent and can be reused.
func testRecords(t *testing.T, s store.Store) {
	rs, ok := s.(store.Records)
	if !ok {
		t.Skip("the store does not implement store.Records")
	}
	ctx := context.Background()
	errRollback := errors.New("roll back")
	put := func(key, value string, expires time.Time, fail error) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			rtx, ok := tx.(store.RecordTx)
			if !ok {
				t.Fatal("the store implements store.Records but its Tx does not implement store.RecordTx")
			}
			if err := rtx.PutRecord(ctx, "test", key, []byte(value), expires); err != nil {
				return err
			}
			if got, err := rtx.GetRecord(ctx, "test", key); err != nil || string(got) != value {
				t.Errorf("GetRecord(%q) in its own transaction = %q, %v; want %q", key, got, err, value)
			}
			if err := tx.Put(ctx, &store.Write{Resource: Version("Basic", key, 1)}); err != nil {
				return err
			}
			return fail
		})
	}
	later := time.Now().Add(time.Hour)

	if err := put("rolled-back", "x", later, errRollback); !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v, want the rollback error", err)
	}
	if _, err := rs.GetRecord(ctx, "test", "rolled-back"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("GetRecord of a rolled-back record = %v, want not found", err)
	}

	if err := put("a", "first", later, nil); err != nil {
		t.Fatalf("PutRecord a: %v", err)
	}
	if got, err := rs.GetRecord(ctx, "test", "a"); err != nil || string(got) != "first" {
		t.Errorf("GetRecord(a) = %q, %v; want first", got, err)
	}
	if _, err := rs.GetRecord(ctx, "other", "a"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("GetRecord of kind other = %v, want not found: kinds are separate", err)
	}
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.(store.RecordTx).PutRecord(ctx, "test", "a", []byte("second"), later)
	})
	if fhir.KindOf(err) != fhir.Conflict {
		t.Errorf("PutRecord over a live record = %v, want conflict", err)
	}
	if got, _ := rs.GetRecord(ctx, "test", "a"); string(got) != "first" {
		t.Errorf("after the conflict GetRecord(a) = %q, want first", got)
	}

	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.(store.RecordTx).PutRecord(ctx, "test", "old", []byte("gone"), time.Now().Add(-time.Second))
	})
	if err != nil {
		t.Fatalf("PutRecord expired: %v", err)
	}
	if _, err := rs.GetRecord(ctx, "test", "old"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("GetRecord of an expired record = %v, want not found", err)
	}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.(store.RecordTx).PutRecord(ctx, "test", "old", []byte("new"), later)
	})
	if err != nil {
		t.Errorf("PutRecord over an expired record: %v", err)
	}
	if got, _ := rs.GetRecord(ctx, "test", "old"); string(got) != "new" {
		t.Errorf("GetRecord(old) = %q, want new", got)
	}
}
