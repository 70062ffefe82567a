package pas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
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
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/store"
)

// BenchmarkBookingOutbox is the cost the outbox adds to a booking: 64
// clients POST bookings of distinct free slots (b.N of them, over 40
// schedules of 40 services) through the HTTP API (authorisation off),
// without an adapter instance and with a signpost-confirmed one owning
// every service, so that each booking also queues an SIU^S12 in its
// transaction, and a dispatcher delivers it to a PAS stand-in in the
// same process meanwhile; and with the instance's dispatcher stopped
// (with-queue-only: the cost inside the booking's transaction alone, the
// messages staying queued). Run with -count ≥ 5 the three interleave; compare
// their medians. It reports bookings/s and the process's CPU time per
// booking (server, clients, dispatcher and stand-in).
func BenchmarkBookingOutbox(b *testing.B) {
	for _, v := range []struct {
		name        string
		with        bool
		undelivered bool // the dispatcher stopped: the transaction's cost alone
	}{{"without", false, false}, {"with", true, false}, {"with-queue-only", true, true}} {
		b.Run(v.name, func(b *testing.B) {
			mode := ""
			if v.with {
				mode = pas.ModeSignpostConfirmed
			}
			bench := newBenchServer(b, mode, 40, b.N)
			if v.undelivered {
				if err := bench.pas.Stop(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			var before, after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1)) - 1
					if st := bench.post("/Appointment", bookBody(fmt.Sprintf("Slot/b-%d", i), "booked")); st != http.StatusCreated {
						b.Errorf("booking b-%d: %d", i, st)
					}
				}
			})
			el := time.Since(start)
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(b.N)/el.Seconds(), "bookings/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/booking")
			if bench.peer != nil {
				// How much of the delivery ran alongside the bookings.
				b.ReportMetric(float64(bench.peer.count())/float64(b.N), "delivered/booking")
			}
		})
	}
}

// BenchmarkOutboundDelivery is the outbound delivery rate: b.N SIU^S12
// messages (each for an appointment of its own, as bookings make them)
// queued in one transaction, then delivered by the instance's dispatcher
// over one MLLP connection to a PAS stand-in in the same process that
// acknowledges each with AA. It reports messages/s from the commit to the
// last acknowledgement recorded.
func BenchmarkOutboundDelivery(b *testing.B) {
	bench := newBenchServer(b, pas.ModeSignpostConfirmed, 1, 1)
	if st := bench.post("/Appointment", bookBody("Slot/b-0", "booked")); st != http.StatusCreated {
		b.Fatalf("booking: %d", st)
	}
	bench.peer.wait(b, 1)
	template, err := hl7v2.Parse(bench.peer.last())
	if err != nil {
		b.Fatal(err)
	}
	ob := bench.app.Store.(store.Outbox)
	b.ResetTimer()
	err = bench.app.Writes.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
		otx := tx.Tx.(store.OutboxTx)
		for i := range b.N {
			if err := template.Set("MSH-10", pas.NewControlID()); err != nil {
				return err
			}
			if _, err := otx.Enqueue(ctx, store.Message{Destination: instance, Key: fmt.Sprintf("Appointment/bench-%d", i),
				ControlID: template.ControlID(), ContentType: pas.ContentType, Payload: template.Encode()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	bench.pas.Wake()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		backlog, err := ob.Backlog(context.Background(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if len(backlog) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not delivered in 5 minutes: %+v", backlog)
		}
		bench.peer.wait(b, bench.peer.count()+1)
	}
	el := time.Since(start)
	b.StopTimer()
	if got := bench.peer.count(); got != b.N+1 {
		b.Fatalf("the stand-in acknowledged %d messages, want %d", got, b.N+1)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "messages/s")
}

// BenchmarkOutboundDeliveryBooked is the outbound delivery rate of the
// messages bookings queue: b.N bookings of distinct slots (over 40
// schedules) made through the HTTP API while the instance's dispatcher
// is stopped, then the dispatcher started and timed until the PAS
// stand-in has acknowledged every SIU^S12, over one MLLP connection. It
// differs from BenchmarkOutboundDelivery in what the outbox holds: what
// the bookings queued (event records built into their message when sent,
// adapters/pas/deferred.go), not ready ER7. It reports messages/s from the
// start to the last acknowledgement recorded.
func BenchmarkOutboundDeliveryBooked(b *testing.B) {
	bench := newBenchServer(b, pas.ModeSignpostConfirmed, 40, b.N)
	ctx := context.Background()
	if err := bench.pas.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
				if st := bench.post("/Appointment", bookBody(fmt.Sprintf("Slot/b-%d", i), "booked")); st != http.StatusCreated {
					b.Errorf("booking b-%d: %d", i, st)
				}
			}
		})
	}
	wg.Wait()
	ob := bench.app.Store.(store.Outbox)
	b.ResetTimer()
	start := time.Now()
	if err := bench.pas.Start(ctx); err != nil {
		b.Fatal(err)
	}
	// Every message acknowledged (the backlog is not asked meanwhile: it
	// counts every open row), then every outcome recorded.
	for bench.peer.count() < b.N {
		bench.peer.wait(b, b.N)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		backlog, err := ob.Backlog(ctx, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if len(backlog) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("outcomes not recorded in a minute: %+v", backlog)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	if got := bench.peer.count(); got != b.N {
		b.Fatalf("the stand-in acknowledged %d messages, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "messages/s")
}

// benchServer is a server for the benchmarks, with or without a
// signpost-confirmed instance owning its services.
type benchServer struct {
	app  *app.App
	url  string
	pas  *pas.Adapter
	peer *benchPeer
	http *http.Client
}

// newBenchServer starts a server (authorisation off) with services
// schedules (one service each) and slots free slots b-0 … spread over
// them, tomorrow onwards, and the fixture's patient; with a mode, an
// instance in that mode owns every service and a PAS stand-in
// acknowledges its messages; with mode "", there is no instance.
func newBenchServer(b *testing.B, mode string, services, slots int) *benchServer {
	b.Helper()
	bs := &benchServer{http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	b.Cleanup(bs.http.CloseIdleConnections)
	if mode != "" {
		bs.peer = newBenchPeer(b)
		var owned []string
		for s := range services {
			owned = append(owned, fmt.Sprintf("hs-%d", s))
		}
		c, ad := startInstance(b, app.Config{}, pas.Settings{Send: bs.peer.addr(), Services: owned, PASNumberSystem: pasSystem,
			Mode: mode, RetryBase: adapters.Duration(20 * time.Millisecond), RetryMax: adapters.Duration(200 * time.Millisecond)}, "RH8")
		bs.app, bs.url, bs.pas = c.App, c.URL, ad
	} else {
		a, ts := apptest.New(b, app.Config{})
		bs.app, bs.url = a, ts.URL+"/fhir"
	}
	seed := []map[string]any{patientRes()}
	for s := range services {
		seed = append(seed,
			map[string]any{"resourceType": "HealthcareService", "id": fmt.Sprintf("hs-%d", s), "name": fmt.Sprintf("Service %d", s)},
			map[string]any{"resourceType": "Schedule", "id": fmt.Sprintf("sc-%d", s), "actor": []any{ref(fmt.Sprintf("HealthcareService/hs-%d", s))}})
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 8*time.Hour)
	for i := range slots {
		start := day.Add(time.Duration(i/services) * 10 * time.Minute)
		seed = append(seed, slotRes(fmt.Sprintf("b-%d", i), fmt.Sprintf("sc-%d", i%services), start, 10*time.Minute))
	}
	seedAll(b, bs.app, seed)
	return bs
}

// post POSTs body and returns the status.
func (s *benchServer) post(path string, body any) int {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", s.url+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := s.http.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sink bytes.Buffer
	sink.ReadFrom(resp.Body)
	return resp.StatusCode
}

// benchPeer is a PAS stand-in that acknowledges every message with AA
// and counts them.
type benchPeer struct {
	ln      net.Listener
	mu      sync.Mutex
	n       int
	lastRaw []byte
	arrived chan struct{}
}

func newBenchPeer(b *testing.B) *benchPeer {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &benchPeer{ln: ln, arrived: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	srv := &mllp.Server{AllowAnyPeer: true, Handler: func(_ context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
		msg, err := hl7v2.Parse(raw)
		if err != nil {
			return nil, err
		}
		ack, err := hl7v2.BuildAck(msg, hl7v2.Ack{Outcome: hl7v2.OutcomeAccept})
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.n++
		p.lastRaw = append(p.lastRaw[:0], raw...)
		p.mu.Unlock()
		select {
		case p.arrived <- struct{}{}:
		default:
		}
		return ack.Encode(), nil
	}}
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return p
}

func (p *benchPeer) addr() string { return p.ln.Addr().String() }

func (p *benchPeer) count() int { p.mu.Lock(); defer p.mu.Unlock(); return p.n }

func (p *benchPeer) last() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.lastRaw)
}

// wait waits up to a minute for n messages (or a poll's worth of time).
func (p *benchPeer) wait(b *testing.B, n int) {
	deadline := time.After(time.Minute)
	for p.count() < n {
		select {
		case <-p.arrived:
		case <-time.After(50 * time.Millisecond):
			return // the caller looks again
		case <-deadline:
			b.Fatalf("the stand-in received %d messages, want %d", p.count(), n)
		}
	}
}
