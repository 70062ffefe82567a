package sqlite

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// benchDrivers are the database/sql drivers the store benchmarks run
// against, each sub-benchmark named for its driver so that one run compares
// them side by side: modernc.org/sqlite (the product's, pure Go). The cgo
// driver github.com/mattn/go-sqlite3 was compared this way once; its
// figures and how to run the comparison again are in docs/PERFORMANCE.md.
var benchDrivers = []benchDriver{{"modernc", "sqlite", moderncDSN}}

type benchDriver struct {
	label, name string
	dsn         func(path string, pragmas []string) string
}

// forEachDriver runs fn as a sub-benchmark per driver, with Open using it.
func forEachDriver(b *testing.B, fn func(b *testing.B)) {
	for _, d := range benchDrivers {
		b.Run(d.label, func(b *testing.B) {
			saved := driver
			driver.name, driver.dsn = d.name, d.dsn
			defer func() { driver = saved }()
			fn(b)
		})
	}
}

// benchPatient returns a realistic Patient (the API benchmarks' fixture)
// and its 31 index entries, extracted as the server extracts them.
func benchPatient(b *testing.B) ([]byte, []search.Entry) {
	b.Helper()
	body, err := os.ReadFile("../../api/testdata/bench/patient.json")
	if err != nil {
		b.Fatal(err)
	}
	types := conformance.Types()
	reg, err := search.NewRegistry(conformance.SearchParameters(), search.Options{
		StructureDefinitions: conformance.StructureDefinitions(), Terminology: conformance.Terminology(),
		ResourceTypes: types.Writable, Location: time.UTC, Base: "http://127.0.0.1/fhir"})
	if err != nil {
		b.Fatal(err)
	}
	entries, err := reg.Extract("Patient", body)
	if err != nil {
		b.Fatal(err)
	}
	return body, entries
}

func benchOpen(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchCreate(ctx context.Context, s *Store, id string, body []byte, entries []search.Entry) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.Put(ctx, &store.Write{Index: entries, Resource: &fhir.Resource{
			Type: "Patient", ID: id, Version: 1, LastUpdated: time.Now(), JSON: body}})
	})
}

// BenchmarkStoreCreate measures durable creates of a Patient with its
// index entries from 8×GOMAXPROCS goroutines, so commits are grouped as
// under load: the store's insert path without HTTP.
func BenchmarkStoreCreate(b *testing.B) {
	body, entries := benchPatient(b)
	forEachDriver(b, func(b *testing.B) {
		s := benchOpen(b)
		var n atomic.Int64
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := benchCreate(context.Background(), s, fmt.Sprint("p", n.Add(1)), body, entries); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
}

// BenchmarkStoreRead measures reads by id among 1,000 stored Patients
// from 8×GOMAXPROCS goroutines: the store's read path without HTTP.
func BenchmarkStoreRead(b *testing.B) {
	body, entries := benchPatient(b)
	const stored = 1000
	forEachDriver(b, func(b *testing.B) {
		s := benchOpen(b)
		for i := range stored {
			if err := benchCreate(context.Background(), s, fmt.Sprint("p", i), body, entries); err != nil {
				b.Fatal(err)
			}
		}
		var n atomic.Int64
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := s.Read(context.Background(), "Patient", fmt.Sprint("p", n.Add(1)%stored))
				if err != nil || len(res.JSON) != len(body) {
					b.Errorf("Read: %v", err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	})
}
