package pas_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// BenchmarkInboundS12 measures inbound SIU^S12 bookings applied per second
// over four MLLP connections and over one: each message books its own
// free slot for a registered patient and is acknowledged (AA) after its
// transaction (booking, slot, inbox record, audit) commits; it reports
// the rate and the process's CPU time per message. The server
// runs with authorisation on, the instance acting as the trust, as in
// production.
//
//	go test ./adapters/pas -run '^$' -bench BenchmarkInboundS12 -benchtime 2000x
func BenchmarkInboundS12(b *testing.B) {
	for _, conns := range []int{4, 1} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			addr, first := inboundServer(b, b.N)
			msgs := make([][]byte, b.N)
			for i := range b.N {
				start := first.Add(time.Duration(i) * slotLength)
				msgs[i] = []byte(strings.ReplaceAll(siu("S12", fmt.Sprintf("B-%d", i), fmt.Sprintf("FB-%d", i),
					pidOf(benchNHS, benchPAS), clinic, start, 15), "\n", "\r"))
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

// The benchmark's patient.
var (
	benchNHS = nhsNo(4242)
	benchPAS = "RH8P4242"
)

// inboundServer starts the server with pas-rh8 listening, seeded with the
// trust, its service and schedule, n free 15-minute slots from tomorrow
// 09:00 UTC on, and a patient the trust manages; it returns the listener's
// address and the first slot's start.
func inboundServer(b *testing.B, n int) (string, time.Time) {
	b.Helper()
	set := pas.Settings{Listen: "127.0.0.1:0", Allow: []string{"127.0.0.1"},
		Services: []string{service}, Clinics: map[string]string{clinic: schedule},
		PASNumberSystem: pasSystem, Mode: pas.ModeSignpostConfirmed}
	raw, err := json.Marshal(set)
	if err != nil {
		b.Fatal(err)
	}
	file := &adapters.File{Adapters: []adapters.Instance{{Name: instance, Kind: pas.Kind,
		Principal: adapters.PrincipalConfig{Role: "provider", Organization: devserver.DemoProvider}, Settings: raw}}}
	a, _ := apptest.New(b, app.Config{Auth: true, Adapters: file})
	ad, _ := a.Adapters.Get(instance)
	now := time.Now().UTC()
	first := time.Date(now.Year(), now.Month(), now.Day(), 9, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	seed := []map[string]any{
		{"resourceType": "Organization", "id": "trust", "name": "Harbour Hospitals",
			"identifier": []any{map[string]any{"system": referral.ODSSystem, "value": devserver.DemoProvider}}},
		{"resourceType": "HealthcareService", "id": service, "name": "Cardiology", "providedBy": ref("Organization/trust")},
		{"resourceType": "Schedule", "id": schedule, "actor": []any{ref("HealthcareService/" + service)}},
		{"resourceType": "Patient", "id": "bench-patient", "managingOrganization": ref("Organization/trust"),
			"identifier": []any{
				map[string]any{"system": referral.NHSNumberSystem, "value": benchNHS},
				map[string]any{"system": pasSystem, "value": benchPAS},
			}},
	}
	for i := range n {
		start := first.Add(time.Duration(i) * slotLength)
		seed = append(seed, map[string]any{"resourceType": "Slot", "id": fmt.Sprintf("bslot-%d", i), "status": "free",
			"schedule": ref("Schedule/" + schedule),
			"start":    start.Format(time.RFC3339), "end": start.Add(slotLength).Format(time.RFC3339)})
	}
	for len(seed) > 0 { // in transactions of a thousand
		k := min(len(seed), 1000)
		apptest.Seed(b, a, seed[:k]...)
		seed = seed[k:]
	}
	return ad.(*pas.Adapter).Addr().String(), first
}
