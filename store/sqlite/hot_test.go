package sqlite_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// hotQueries are the searches the service answers most.
var hotQueries = map[string]string{
	"FreeSlots":  "Slot?schedule.actor:HealthcareService=HealthcareService/hs-00003&status=free&start=ge2026-03-09&start=le2026-03-23",
	"NHSNumber":  "Patient?identifier=" + url.QueryEscape(synth.NHSNumberSystem+"|"+synth.NHSNumber(500)),
	"Specialty":  "HealthcareService?specialty=" + url.QueryEscape(synth.SNOMEDSystem+"|394579002"),
	"SlotSorted": "Slot?schedule=Schedule/sch-00007&_sort=-start,status",
}

// BenchmarkHotSearch measures store.Search alone (first page, SQL and
// scanning) for the hot queries over a region of 10,000 slots.
func BenchmarkHotSearch(b *testing.B) {
	ws := slotWrites(b, 10000)
	s, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for len(ws) > 0 {
		n := min(len(ws), 5000)
		batch := ws[:n]
		ws = ws[n:]
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.(bulkPutter).PutAll(ctx, batch) }); err != nil {
			b.Fatal(err)
		}
	}
	reg := storetest.Registry(b)
	for name, qs := range hotQueries {
		typ, raw, _ := strings.Cut(qs, "?")
		params, _ := url.ParseQuery(raw)
		q, err := reg.Parse(typ, params, search.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s.Search(ctx, q) // statistics
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if _, err := s.Search(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
