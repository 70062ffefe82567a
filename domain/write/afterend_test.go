package write_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/store"
)

// failingCommitStore runs an Update's function once, then fails as a
// commit that did not reach the disk would.
type failingCommitStore struct {
	store.Store
	err error
}

func (s failingCommitStore) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	if err := fn(ctx, nil); err != nil {
		return err
	}
	return s.err
}

// TestAfterEnd: an observer runs once however many attempts the store
// made, is told whether the transaction committed (a rule's refusal and a
// failed commit are both not), and runs before the AfterCommit work, so
// that the work's error does not hide the outcome.
func TestAfterEnd(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name    string
		st      store.Store
		fail    error // the transaction's own error
		hookErr error // the AfterCommit work's
		want    []string
	}{
		{"committed", retryingStore{attempts: 1}, nil, nil, []string{"end true", "after"}},
		{"once for three attempts", retryingStore{attempts: 3}, nil, nil, []string{"end true", "after"}},
		{"refused, three attempts", retryingStore{attempts: 3}, boom, nil, []string{"end false"}},
		{"commit failed", failingCommitStore{err: boom}, nil, nil, []string{"end false"}},
		{"before failing work", retryingStore{attempts: 1}, nil, boom, []string{"end true", "after"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rp := write.New(c.st, nil)
			var ran []string
			rp.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
				tx.AfterEnd(func(committed bool) {
					if committed {
						ran = append(ran, "end true")
					} else {
						ran = append(ran, "end false")
					}
				})
				tx.AfterCommit(func(context.Context) error { ran = append(ran, "after"); return c.hookErr })
				if len(ran) != 0 {
					t.Error("an observer ran inside the transaction")
				}
				return c.fail
			})
			if !slices.Equal(ran, c.want) {
				t.Errorf("ran %q, want %q", ran, c.want)
			}
		})
	}
}
