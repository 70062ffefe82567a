package write_test

import (
	"context"
	"testing"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// emptyTx is a transaction over an empty store that keeps what is put.
type emptyTx struct {
	store.Tx
	put []*store.Write
}

func (t *emptyTx) Read(context.Context, string, string) (*fhir.Resource, error) {
	return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "none")
}

func (t *emptyTx) Put(_ context.Context, w *store.Write) error { t.put = append(t.put, w); return nil }

// twiceStore runs an Update's function twice, each time on a fresh
// transaction, as a store does when it re-runs a batch (store.Store.Update).
type twiceStore struct {
	store.Store
	last *emptyTx
}

func (s *twiceStore) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	for range 2 {
		s.last = &emptyTx{}
		if err := fn(ctx, s.last); err != nil {
			return err
		}
	}
	return nil
}

type noIndex struct{}

func (noIndex) Extract(string, []byte) ([]search.Entry, error) { return nil, nil }

// TestRetryStartsFromTheRequest: when the store runs a transaction's
// function again, the rules see the resource as the caller gave it, not
// as the previous attempt's rules patched it: a rule whose patch changes
// its own next decision (booked becomes pending, once) decides the same
// way on every attempt.
func TestRetryStartsFromTheRequest(t *testing.T) {
	st := &twiceStore{}
	rp := write.New(st, noIndex{})
	rp.SetOrder(write.Order{Types: map[string][]string{"Appointment": {"once"}}})
	var seen []string
	rp.AddRule("Appointment", "once", func(_ context.Context, _ *write.Tx, c *write.Change) error {
		s, _ := c.New.String("status")
		seen = append(seen, s)
		if s == "booked" {
			c.New.Set("status", "pending")
		}
		return nil
	})
	obj, err := fhir.ParseObject([]byte(`{"resourceType":"Appointment","status":"booked"}`))
	if err != nil {
		t.Fatal(err)
	}
	err = rp.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
		_, _, err := tx.Put(ctx, "Appointment", "a1", obj, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != "booked" || seen[1] != "booked" {
		t.Errorf("the rule saw status %q on the two attempts, want booked both times", seen)
	}
	if s, _ := obj.String("status"); s != "booked" {
		t.Errorf("the caller's resource was patched to %q", s)
	}
	if len(st.last.put) != 1 {
		t.Fatalf("the last attempt put %d writes", len(st.last.put))
	}
}
