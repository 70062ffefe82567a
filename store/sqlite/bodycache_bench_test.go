package sqlite

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// BenchmarkFreeSlotPage measures the mixed workload's free-slot search at
// the store: a page of 50 free Slots of one of 80 schedules (10,000 slots,
// the `signpost bench` region) and its Schedule read as _include reads
// it, from 8×GOMAXPROCS goroutines, with no other writes ("idle") and
// while 150 small updates a second are committed, as bookings, referrals
// and audit are under that workload ("commits"; the writer groups those
// waiting into one commit, and commits/s reports how many it made). Each commit
// empties the read connections' page caches (WAL mode), which is what the
// body cache is for. "reads" is "commits" with reads by id of random Slots
// instead of pages, which is what the heads cache is for.
func BenchmarkFreeSlotPage(b *testing.B) {
	reg, err := search.NewRegistry(conformance.SearchParameters(), search.Options{
		StructureDefinitions: conformance.StructureDefinitions(), Terminology: conformance.Terminology(),
		ResourceTypes: conformance.Types().Writable, Location: time.UTC, Base: "http://127.0.0.1/fhir"})
	if err != nil {
		b.Fatal(err)
	}
	s := benchOpen(b)
	ctx := context.Background()
	const schedules, slots = 80, 10000
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var ws []*store.Write
	flush := func() {
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for _, w := range ws {
				if err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		ws = ws[:0]
	}
	add := func(typ, id, body string) {
		idx, err := reg.Extract(typ, []byte(body))
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, &store.Write{Index: idx, Resource: &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: time.Now(), JSON: []byte(body)}})
		if len(ws) == 500 {
			flush()
		}
	}
	for i := range schedules {
		add("Schedule", fmt.Sprint("sch", i), fmt.Sprintf(`{"resourceType":"Schedule","id":"sch%d","active":true,`+
			`"serviceType":[{"coding":[{"system":"http://snomed.info/sct","code":"394582007"}]}],"actor":[{"reference":"HealthcareService/hs%d"}],`+
			`"planningHorizon":{"start":"%s","end":"%s"}}`, i, i%20, day.Format(time.RFC3339), day.Add(30*24*time.Hour).Format(time.RFC3339)))
	}
	for i := range slots {
		start := day.Add(time.Duration(i/schedules/32)*24*time.Hour + 9*time.Hour + time.Duration(i/schedules%32)*15*time.Minute)
		add("Slot", fmt.Sprint("sl", i), fmt.Sprintf(`{"resourceType":"Slot","id":"sl%d","schedule":{"reference":"Schedule/sch%d"},"status":"free",`+
			`"serviceType":[{"coding":[{"system":"http://snomed.info/sct","code":"394582007"}]}],"start":"%s","end":"%s"}`,
			i, i%schedules, start.Format(time.RFC3339), start.Add(15*time.Minute).Format(time.RFC3339)))
	}
	flush()
	queries := make([]*search.Query, schedules)
	for i := range queries {
		q, err := reg.Parse("Slot", url.Values{"schedule": {fmt.Sprint("Schedule/sch", i)}, "status": {"free"},
			"start": {"ge" + day.Format("2006-01-02")}}, search.ParseOptions{Strict: true})
		if err != nil {
			b.Fatal(err)
		}
		queries[i] = q
	}
	var audit atomic.Int64 // ids of the committed resources, across runs
	for _, mode := range []string{"idle", "commits", "reads"} {
		b.Run(mode, func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var commits atomic.Int64
			if mode != "idle" {
				// Writes start on a ticker whatever the commit latency (up
				// to 64 waiting), as requests arrive; the writer groups the
				// waiting ones into each commit, as it does under load.
				s.ObserveCommits(func(CommitStats) { commits.Add(1) })
				defer s.ObserveCommits(nil)
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(time.Second / 150)
					defer tick.Stop()
					sem := make(chan struct{}, 64)
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						select {
						case sem <- struct{}{}:
						default:
							continue
						}
						n := audit.Add(1)
						wg.Add(1)
						go func() {
							defer func() { <-sem; wg.Done() }()
							body := fmt.Sprintf(`{"resourceType":"Basic","id":"audit%d","code":{"text":"commit %d"}}`, n, n)
							if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
								return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Basic", ID: fmt.Sprint("audit", n), Version: 1, LastUpdated: time.Now(), JSON: []byte(body)}})
							}); err != nil {
								b.Error(err)
							}
						}()
					}
				}()
			}
			var n atomic.Int64
			b.SetParallelism(8)
			cpu0 := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if mode == "reads" {
						id := fmt.Sprint("sl", int(n.Add(7919))%slots)
						if _, err := s.Read(ctx, "Slot", id); err != nil {
							b.Error(err)
							return
						}
						continue
					}
					i := int(n.Add(1)) % schedules
					page, err := s.Search(ctx, queries[i])
					if err != nil || len(page.Resources) != 50 {
						b.Errorf("search: %v, %d slots", err, len(page.Resources))
						return
					}
					if _, err := s.Read(ctx, "Schedule", fmt.Sprint("sch", i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cpu := processCPU() - cpu0
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s") // pages, or reads
			b.ReportMetric(float64(commits.Load())/b.Elapsed().Seconds(), "commits/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the CPU time this process has used (user and system):
// on a shared machine, CPU per page varies less than pages per second.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
