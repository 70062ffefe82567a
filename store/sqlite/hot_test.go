package sqlite_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
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
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.(store.BulkPutter).PutAll(ctx, batch) }); err != nil {
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

// BenchmarkHotSearchHTTP measures the free-slot search through the whole
// server (routing, parsing, store, _include, Bundle encoding) over a region
// of 10,000 slots, without the network.
func BenchmarkHotSearchHTTP(b *testing.B) {
	a, _ := apptest.New(b, app.Config{})
	ws := slotWrites(b, 10000)
	ctx := context.Background()
	for len(ws) > 0 {
		n := min(len(ws), 5000)
		batch := ws[:n]
		ws = ws[n:]
		if err := a.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.(store.BulkPutter).PutAll(ctx, batch) }); err != nil {
			b.Fatal(err)
		}
	}
	h := a.Handler()
	for _, name := range []string{"FreeSlots", "NHSNumber"} {
		target := "/fhir/" + hotQueries[name]
		if name == "FreeSlots" {
			target += "&_include=Slot:schedule"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
