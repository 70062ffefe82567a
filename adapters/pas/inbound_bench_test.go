package pas_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// BenchmarkInboundS12 measures inbound SIU^S12 bookings applied per second
// over four MLLP connections, over one and over sixteen (in original
// acknowledgement mode a sender waits for each ACK, so a commit holds at
// most one message per connection: the connections bound the rate
// through the commit's latency): each message books its own
// free slot for a registered patient and is acknowledged (AA) after its
// transaction (booking, slot, inbox record, audit) commits; it reports
// the rate and the process's CPU time per message. The server
// runs with authorisation on, the instance acting as the trust, as in
// production.
//
//	go test ./adapters/pas -run '^$' -bench BenchmarkInboundS12 -benchtime 2000x
func BenchmarkInboundS12(b *testing.B) {
	for _, conns := range []int{4, 1, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			addr, first := inboundServer(b, b.N)
			msgs := make([][]byte, b.N)
			for i := range b.N {
				start := first.Add(time.Duration(i) * slotLength)
				msgs[i] = []byte(strings.ReplaceAll(siu("S12", fmt.Sprintf("B-%d", i), fmt.Sprintf("FB-%d", i),
					pidOf(nhsNumber, pasNumber), clinic, start, 15), "\n", "\r"))
			}
			var next atomic.Int64
			var failed atomic.Value
			var wg sync.WaitGroup
			var before, after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			t0 := time.Now()
			for range conns {
				wg.Go(func() {
					c := &mllp.Client{Addr: addr, AckTimeout: 30 * time.Second}
					defer c.Close()
					for {
						i := int(next.Add(1)) - 1
						if i >= len(msgs) {
							return
						}
						raw, err := c.Send(context.Background(), msgs[i])
						if err == nil {
							var ack *hl7v2.Message
							if ack, err = hl7v2.Parse(raw); err == nil && ack.Get("MSA-1") != "AA" {
								err = fmt.Errorf("message %d: %s", i, ack)
							}
						}
						if err != nil {
							failed.Store(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(t0)
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			// The process's CPU time (server and the four clients) per
			// message varies less than the rate on a shared machine.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
		})
	}
}

// inboundServer starts the fixture's server with pas-rh8 listening and n
// free 15-minute slots from tomorrow 09:00 UTC on, its patient managed by
// the trust; it returns the listener's address and the first slot's start.
func inboundServer(b *testing.B, n int) (string, time.Time) {
	b.Helper()
	f := newFixtureSlots(b, pas.ModeSignpostConfirmed, nil, n)
	pat := patientRes()
	pat["managingOrganization"] = ref("Organization/trust")
	apptest.Seed(b, f.App, pat)
	return f.PAS.Addr().String(), f.First
}
