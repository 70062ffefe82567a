package pas_test

import (
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/pas"
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
				bench := newBenchServer(b, mode, 40, b.N)
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
