package mongo_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// The benchmarks use the synthetic region of the SQLite figures
// (fhir/search/synth) and run against SIGNPOST_TEST_MONGODB_URI when it is
// set, on lungo otherwise (lungo's figures say little: it scans).

// load writes a region of n slots, n/10 patients (and what they refer to) in
// transactions of 1000, through PutAll.
func load(b *testing.B, s store.Store, n int) synth.Counts {
	b.Helper()
	reg := storetest.Registry(b)
	cfg := synth.Config{Seed: 1, Slots: n, Patients: n / 10}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var ws []*store.Write
	flush := func() {
		err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
			return store.PutAll(ctx, tx, ws)
		})
		if err != nil {
			b.Fatal(err)
		}
		ws = ws[:0]
	}
	err := synth.Generate(cfg, func(r synth.Resource) error {
		idx, err := reg.Extract(r.Type, r.JSON)
		ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: r.Type, ID: r.ID, Version: 1, LastUpdated: now, JSON: r.JSON}, Index: idx})
		if len(ws) == 1000 {
			flush()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	flush()
	return synth.Plan(cfg)
}

// BenchmarkPutAll measures loading: b.N resources (mostly slots).
func BenchmarkPutAll(b *testing.B) {
	s := open(b)
	defer s.Close()
	b.ResetTimer()
	load(b, s, b.N)
}

// BenchmarkHotSearches measures the hot searches on a region of 5000
// slots: the free slots of a schedule in a fortnight (the page $find
// reads), a patient by NHS number, and services by specialty.
func BenchmarkHotSearches(b *testing.B) {
	s := open(b)
	defer s.Close()
	n := load(b, s, 5000)
	reg := storetest.Registry(b)
	queries := map[string]string{
		"free-slots": "Slot?schedule=Schedule/sch-00007&status=free&start=ge2026-03-09&start=lt2026-03-23&_sort=start&_count=20",
		"nhs-number": "Patient?identifier=" + url.QueryEscape(synth.NHSNumberSystem+"|"+synth.NHSNumber(n.Patients/2)),
		"specialty":  "HealthcareService?specialty=" + url.QueryEscape(synth.SNOMEDSystem+"|"+synth.Specialties[0].Code) + "&_count=50",
	}
	for name, qs := range queries {
		b.Run(name, func(b *testing.B) {
			q := parseQuery(b, reg, qs)
			for b.Loop() {
				page, err := s.Search(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Resources) == 0 {
					b.Fatalf("%s: no matches", qs)
				}
			}
		})
	}
}

func parseQuery(tb testing.TB, reg *search.Registry, qs string) *search.Query {
	tb.Helper()
	typ, raw, _ := strings.Cut(qs, "?")
	params, err := url.ParseQuery(raw)
	if err != nil {
		tb.Fatal(err)
	}
	q, err := reg.Parse(typ, params, search.ParseOptions{Strict: true, MaxCount: 1000})
	if err != nil {
		tb.Fatal(fmt.Errorf("%s: %w", qs, err))
	}
	return q
}
