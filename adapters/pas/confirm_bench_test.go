package pas_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// BenchmarkBookingPASConfirmed is what waiting for the PAS costs a
// booking: clients (GOMAXPROCS, then 8×GOMAXPROCS at once) POST bookings of distinct free
// slots through the HTTP API (authorisation off) with an instance owning
// every service in mode signpost-confirmed (booked at once, SIU^S12
// through the outbox) and in mode pas-confirmed (SRM^S01 answered AA by a
// PAS stand-in in the same process over loopback, then a second
// transaction). It reports bookings/s and the mean latency per booking.
func BenchmarkBookingPASConfirmed(b *testing.B) {
	for _, par := range []int{1, 8} {
		for _, mode := range []string{pas.ModeSignpostConfirmed, pas.ModePASConfirmed} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode, par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
				bench := newModeBenchServer(b, mode, 40, b.N)
				var next atomic.Int64
				var busy atomic.Int64 // summed request time, ns
				b.SetParallelism(par)
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(next.Add(1)) - 1
						t0 := time.Now()
						if st := bench.post("/Appointment", bookBody(fmt.Sprintf("Slot/b-%d", i), "booked")); st != http.StatusCreated {
							b.Errorf("booking b-%d: %d", i, st)
						}
						busy.Add(int64(time.Since(t0)))
					}
				})
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/el.Seconds(), "bookings/s")
				b.ReportMetric(float64(busy.Load())/float64(b.N)/1e6, "ms/booking")
			})
		}
	}
}

// newModeBenchServer is newBenchServer's server with an instance in mode
// owning every service.
func newModeBenchServer(b *testing.B, mode string, services, slots int) *benchServer {
	b.Helper()
	peer := newBenchPeer(b)
	var owned []string
	for s := range services {
		owned = append(owned, fmt.Sprintf("hs-%d", s))
	}
	raw, _ := json.Marshal(pas.Settings{Send: peer.addr(), Services: owned, PASNumberSystem: pasSystem, Mode: mode,
		RetryBase: adapters.Duration(20 * time.Millisecond), RetryMax: adapters.Duration(200 * time.Millisecond)})
	a, ts := apptest.New(b, app.Config{Adapters: &adapters.File{Adapters: []adapters.Instance{{Name: instance, Kind: pas.Kind,
		Principal: adapters.PrincipalConfig{Role: "provider", Organization: "RH8"}, Settings: raw}}}})
	bs := &benchServer{app: a, url: ts.URL + "/fhir", peer: peer, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	seed := []map[string]any{{"resourceType": "Patient", "id": patientID, "birthDate": "1980-05-17", "name": []any{map[string]any{"family": "Jones"}},
		"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhsNumber},
			map[string]any{"system": pasSystem, "value": pasNumber}}}}
	for s := range services {
		seed = append(seed,
			map[string]any{"resourceType": "HealthcareService", "id": fmt.Sprintf("hs-%d", s), "name": fmt.Sprintf("Service %d", s)},
			map[string]any{"resourceType": "Schedule", "id": fmt.Sprintf("sc-%d", s), "actor": []any{ref(fmt.Sprintf("HealthcareService/hs-%d", s))}})
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 8*time.Hour)
	for i := range slots {
		start := day.Add(time.Duration(i/services) * 10 * time.Minute)
		seed = append(seed, map[string]any{"resourceType": "Slot", "id": fmt.Sprintf("b-%d", i), "status": "free",
			"schedule": ref(fmt.Sprintf("Schedule/sc-%d", i%services)),
			"start":    start.Format(time.RFC3339), "end": start.Add(10 * time.Minute).Format(time.RFC3339)})
	}
	apptest.Seed(b, a, seed...)
	b.Cleanup(bs.http.CloseIdleConnections)
	return bs
}
