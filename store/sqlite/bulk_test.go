package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// slotWrites generates n slots (and what they refer to) with their index
// entries.
func slotWrites(tb testing.TB, n int) []*store.Write {
	tb.Helper()
	reg := storetest.Registry(tb)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var ws []*store.Write
	err := synth.Generate(synth.Config{Seed: 1, Slots: n}, func(r synth.Resource) error {
		idx, err := reg.Extract(r.Type, r.JSON)
		ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: r.Type, ID: r.ID, Version: 1, LastUpdated: now, JSON: r.JSON}, Index: idx})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ws
}

// BenchmarkPutAll measures the store's bulk path: b.N resources (mostly
// slots, entries already extracted) in transactions of 5000.
func BenchmarkPutAll(b *testing.B) {
	ws := slotWrites(b, b.N)
	s, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for len(ws) > 0 {
		n := min(len(ws), 5000)
		batch := ws[:n]
		ws = ws[n:]
		err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
			return tx.(store.BulkPutter).PutAll(ctx, batch)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
