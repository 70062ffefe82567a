package mongo_test

import (
	"context"
	"testing"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// TestPutAll: a batch has the effect of one Put each: new and existing
// resources, one resource twice, and a version that is not the next one
// (the whole transaction rolls back with a conflict).
func TestPutAll(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	putAll := func(ws ...*store.Write) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.(store.BulkPutter).PutAll(ctx, ws)
		})
	}
	w := func(id string, v int64) *store.Write { return &store.Write{Resource: version("Patient", id, v)} }
	if err := putAll(w("a", 1), w("b", 1)); err != nil {
		t.Fatal(err)
	}
	if err := putAll(w("a", 2), w("c", 1), w("c", 2)); err != nil {
		t.Fatal(err)
	}
	if err := putAll(w("d", 1), w("b", 3)); fhir.KindOf(err) != fhir.Conflict {
		t.Errorf("a batch with a version that is not the next: %v, want a conflict", err)
	}
	if _, err := s.Read(ctx, "Patient", "d"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("d after the batch rolled back: %v, want not found", err)
	}
	for id, want := range map[string]int64{"a": 2, "b": 1, "c": 2} {
		got, err := s.Read(ctx, "Patient", id)
		if err != nil || got.Version != want {
			t.Errorf("Read %s = %v, %v; want version %d", id, got, err, want)
		}
	}
	h, err := s.History(ctx, store.HistoryQuery{Count: 100})
	if err != nil || len(h.Versions) != 5 {
		t.Errorf("history: %d versions, %v; want 5", len(h.Versions), err)
	}
}

// TestStoreReadInsideUpdate: a search through the Store with the
// transaction's context, inside Update, reads in the transaction (it sees
// its writes) instead of waiting for it to end.
func TestStoreReadInsideUpdate(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Put(ctx, &store.Write{Resource: version("Patient", "a", 1)}); err != nil {
			return err
		}
		page, err := s.Search(ctx, &search.Query{Type: "Patient"})
		if err != nil || len(page.Resources) != 1 {
			t.Errorf("Store.Search inside Update = %v, %v; want the Patient written", page, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
