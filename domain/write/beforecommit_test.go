package write_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/signpost-fhir/signpost/domain/write"
)

// TestBeforeCommit: work deferred to the end of the transaction runs
// inside it, after its function, in order (work added by a step too), not
// when the function fails, and its error is the transaction's; Local
// keeps one value per transaction attempt.
func TestBeforeCommit(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name     string
		attempts int
		fail     error
		stepErr  error
		want     []string
		wantErr  error
	}{
		{"in order, after the function", 1, nil, nil, []string{"fn", "a", "b", "c"}, nil},
		{"each attempt", 2, nil, nil, []string{"fn", "a", "b", "c", "fn", "a", "b", "c"}, nil},
		{"not when the function fails", 1, boom, nil, []string{"fn"}, boom},
		{"a step's error is the transaction's", 1, nil, boom, []string{"fn", "a"}, boom},
	} {
		t.Run(c.name, func(t *testing.T) {
			rp := write.New(retryingStore{attempts: c.attempts}, nil)
			var ran []string
			err := rp.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
				made := 0
				for range 2 {
					tx.Local("k", func() any { made++; return &made })
				}
				if made != 1 {
					t.Errorf("Local made its value %d times in one attempt", made)
				}
				tx.BeforeCommit(func(context.Context) error {
					ran = append(ran, "a")
					tx.BeforeCommit(func(context.Context) error { ran = append(ran, "c"); return nil })
					return c.stepErr
				})
				tx.BeforeCommit(func(context.Context) error { ran = append(ran, "b"); return nil })
				ran = append(ran, "fn")
				return c.fail
			})
			if !errors.Is(err, c.wantErr) || !slices.Equal(ran, c.want) {
				t.Errorf("ran %q, err %v; want %q, %v", ran, err, c.want, c.wantErr)
			}
		})
	}
}
