package booking_test

import (
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// BenchmarkBookContended: 64 clients POST bookings at once through the
// HTTP API, each for a random one of 2,000 slots in 40 schedules (so
// successes and 409s mix). It reports bookings/s (201s) and the p50/p99
// latency of all attempts, and the process's CPU time per attempt (server
// and clients), which varies less than the rates on a shared machine.
func BenchmarkBookContended(b *testing.B) {
	s := newServer(b, app.Config{})
	s.basic()
	const slots = 2000
	seedSlots(s, slots, 40)
	var next atomic.Int64
	var created atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := int(next.Add(1)*7919) % slots
			t := time.Now()
			r := s.do("POST", "/Appointment", booked("p1", slotID(i)))
			mine = append(mine, time.Since(t))
			switch r.status {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusConflict:
			default:
				b.Errorf("book: %d %s", r.status, r.body)
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	el := time.Since(start)
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	if len(lat) > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-µs/attempt")
		b.ReportMetric(float64(len(lat))/el.Seconds(), "attempts/s")
		b.ReportMetric(float64(created.Load())/el.Seconds(), "bookings/s")
	}
	reportLatency(b, lat)
}

// timeLoop runs op b.N times, timing each, and reports the p50 and p99.
func timeLoop(b *testing.B, op func()) {
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		op()
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports the p50 and p99 of lat in milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkFind: one client's Appointment/$find for one service over a
// day, with 2,000 slots in 40 schedules loaded. It reports the p50 and p99
// latency besides the mean (ns/op).
func BenchmarkFind(b *testing.B) {
	s := newServer(b, app.Config{})
	s.basic()
	seedSlots(s, 2000, 40)
	day := tomorrow9().Format("2006-01-02")
	path := "/Appointment/$find?healthcare-service=HealthcareService/hs7&start=" + day + "&end=" + day
	must(b, "$find", s.do("GET", path, nil), 200)
	timeLoop(b, func() {
		if r := s.do("GET", path, nil); r.status != 200 {
			b.Fatalf("$find: %d %s", r.status, r.body)
		}
	})
}

// BenchmarkFindAtLocation is BenchmarkFind asking by location-reference
// for the Location the service is provided at (HealthcareService.location),
// which costs a HealthcareService and a PractitionerRole search more.
func BenchmarkFindAtLocation(b *testing.B) {
	s := newServer(b, app.Config{})
	s.basic()
	seedSlots(s, 2000, 40)
	s.put(`{"resourceType":"Location","id":"site","status":"active","name":"Site"}`,
		`{"resourceType":"HealthcareService","id":"hs7","name":"Clinic hs7","location":[{"reference":"Location/site"}]}`)
	day := tomorrow9().Format("2006-01-02")
	path := "/Appointment/$find?location-reference=Location/site&start=" + day + "&end=" + day
	if n := len(entries(b, must(b, "$find", s.do("GET", path, nil), 200))); n != 20 {
		b.Fatalf("$find at the location gave %d proposals, want 20", n)
	}
	timeLoop(b, func() {
		if r := s.do("GET", path, nil); r.status != 200 {
			b.Fatalf("$find: %d %s", r.status, r.body)
		}
	})
}

// BenchmarkFindDefaultWindow: one client's Appointment/$find for a service
// with no window given (the default 28 days), the service having 2,000
// free slots spread over those days (about 70 a day), of which $find
// proposes the first 20.
func BenchmarkFindDefaultWindow(b *testing.B) {
	s := newServer(b, app.Config{})
	s.basic()
	t0 := tomorrow9()
	for from := 0; from < 2000; from += 500 {
		var seed []string
		for i := from; i < from+500; i++ {
			start := t0.AddDate(0, 0, i/72).Add(time.Duration(i%72) * 10 * time.Minute)
			seed = append(seed, slotAt(slotID(i), "sc", start, 10*time.Minute))
		}
		s.put(seed...)
	}
	path := "/Appointment/$find?healthcare-service=HealthcareService/hs"
	must(b, "$find", s.do("GET", path, nil), 200)
	timeLoop(b, func() {
		if r := s.do("GET", path, nil); r.status != 200 {
			b.Fatalf("$find: %d %s", r.status, r.body)
		}
	})
}

// BenchmarkFindStoredProposals is BenchmarkFind for a patient whose id
// (64 characters) is too long for proposal ids to carry inline: each
// $find also writes one store record holding its proposals.
func BenchmarkFindStoredProposals(b *testing.B) {
	s := newServer(b, app.Config{})
	s.basic()
	pat := strings.Repeat("p", 64)
	s.put(patient(pat))
	seedSlots(s, 2000, 40)
	day := tomorrow9().Format("2006-01-02")
	path := "/Appointment/$find?healthcare-service=HealthcareService/hs7&patient-reference=Patient/" + pat + "&start=" + day + "&end=" + day
	must(b, "$find", s.do("GET", path, nil), 200)
	timeLoop(b, func() {
		if r := s.do("GET", path, nil); r.status != 200 {
			b.Fatalf("$find: %d %s", r.status, r.body)
		}
	})
}
