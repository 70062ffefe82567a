package write_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// retryingStore runs an Update's function as many times as attempts says
// (the earlier attempts failing as a transient conflict would), then
// commits unless the function fails.
type retryingStore struct {
	store.Store
	attempts int
}

func (s retryingStore) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	var err error
	for range s.attempts {
		err = fn(ctx, nil)
	}
	return err
}

// TestAfterCommit: deferred work runs after the commit, in order, only for
// the attempt that committed, not at all on a rollback, and its first
// error is the caller's answer.
func TestAfterCommit(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name     string
		attempts int
		fail     error // the transaction's own error
		hookErr  error // the first hook's
		want     []string
		wantErr  error
	}{
		{"runs in order", 1, nil, nil, []string{"a", "b"}, nil},
		{"only the committed attempt", 3, nil, nil, []string{"a", "b"}, nil},
		{"not on rollback", 1, boom, nil, nil, boom},
		{"first error stops the rest", 1, nil, boom, []string{"a"}, boom},
	} {
		t.Run(c.name, func(t *testing.T) {
			rp := write.New(retryingStore{attempts: c.attempts}, nil)
			var ran []string
			err := rp.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
				tx.AfterCommit(func(context.Context) error { ran = append(ran, "a"); return c.hookErr })
				tx.AfterCommit(func(context.Context) error { ran = append(ran, "b"); return nil })
				if len(ran) != 0 {
					t.Error("deferred work ran inside the transaction")
				}
				return c.fail
			})
			if !errors.Is(err, c.wantErr) || !slices.Equal(ran, c.want) {
				t.Errorf("ran %q, err %v; want %q, %v", ran, err, c.want, c.wantErr)
			}
		})
	}
}

// TestSupersede: after-commit work that wrote a newer version of what the
// transaction wrote makes it the one answered (Latest); an older or
// unrelated version does not.
func TestSupersede(t *testing.T) {
	rp := write.New(retryingStore{attempts: 2}, nil)
	wrote := &fhir.Resource{Type: "Appointment", ID: "a", Version: 1}
	var wtx *write.Tx
	err := rp.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
		wtx = tx
		tx.AfterCommit(func(context.Context) error {
			tx.Supersede(&fhir.Resource{Type: "Appointment", ID: "a", Version: 2})
			tx.Supersede(&fhir.Resource{Type: "Slot", ID: "s", Version: 1})
			return nil
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := wtx.Latest(wrote); got.Version != 2 {
		t.Errorf("Latest(Appointment/a v1) is v%d, want v2", got.Version)
	}
	if got := wtx.Latest(&fhir.Resource{Type: "Slot", ID: "s", Version: 3}); got.Version != 3 {
		t.Errorf("Latest(Slot/s v3) is v%d, want v3 (an older version supersedes nothing)", got.Version)
	}
	if got := wtx.Latest(&fhir.Resource{Type: "Appointment", ID: "b", Version: 1}); got.Version != 1 || got.ID != "b" {
		t.Errorf("Latest(Appointment/b) is %s v%d, want itself", got.ID, got.Version)
	}
	var none *write.Tx
	if got := none.Latest(wrote); got != wrote {
		t.Error("a nil Tx's Latest is not its argument")
	}
}
