package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The operations of the workload, as they are reported.
const (
	OpSlotSearch    = "slot-search"
	OpServiceSearch = "service-search"
	OpRead          = "read"
	OpBooked        = "book-booked"  // a booking that succeeded (201)
	OpRefused       = "book-refused" // a booking refused because the slot was taken (409)
	OpReferral      = "referral"
)

// opOrder is the order of the report's rows.
var opOrder = []string{OpSlotSearch, OpServiceSearch, OpRead, OpBooked, OpRefused, OpReferral}

// OpStats are one operation's figures.
type OpStats struct {
	Count     int     `json:"count"`
	PerSecond float64 `json:"per_second"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
	lat       []time.Duration
}

// Result is what a run measured.
type Result struct {
	Clients  int                 `json:"clients"`
	Elapsed  time.Duration       `json:"elapsed_ns"`
	Ops      map[string]*OpStats `json:"ops"`
	Total    int                 `json:"total"`
	Errors   int                 `json:"errors"`
	PerSec   float64             `json:"ops_per_second"`
	ErrorLog []string            `json:"error_samples,omitempty"`
	// ServerCPU is the server's CPU time over the run (0: not measured)
	// and CPUPerOp its share per operation, in milliseconds.
	ServerCPU time.Duration `json:"server_cpu_ns"`
	CPUPerOp  float64       `json:"server_cpu_ms_per_op"`
	// DoubleBookings are the slots found with more than one live
	// appointment afterwards.
	DoubleBookings []DoubleBooking `json:"double_bookings"`
	// Samples are the run's intervals (Config.Every).
	Samples []Sample `json:"samples,omitempty"`
}

// maxErrorSamples bounds the errors a result keeps to show.
const maxErrorSamples = 10

// Run runs the workload cfg describes against region r (from Seed) for
// cfg.Duration, then verifies the region (Verify). Answers other than the
// expected ones (a 409 is expected of a booking) count as errors.
func Run(ctx context.Context, cfg Config, r *Region) (*Result, error) {
	cfg = cfg.withDefaults()
	var cpu0 time.Duration
	if cfg.ServerPID > 0 {
		var err error
		if cpu0, err = processCPU(cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("server CPU: %w", err)
		}
	}
	rec := newRecorder()
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	pace := pacer{start: start, rate: cfg.Rate}
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{cfg: cfg, r: r, rng: rand.New(rand.NewPCG(cfg.RandomSeed, uint64(i)+1)), w: &wire{}}
			defer c.w.close()
			for runCtx.Err() == nil {
				t, ok := pace.next(runCtx)
				if !ok {
					break
				}
				op, err := c.one(runCtx)
				d := time.Since(t)
				if runCtx.Err() != nil && err != nil {
					break // cut off by the end of the run: not counted
				}
				rec.add(op, d, err)
			}
		}()
	}
	out := &Result{Clients: cfg.Clients, Ops: map[string]*OpStats{}}
	if cfg.Every > 0 {
		smp := &sampler{cfg: cfg, rec: rec, start: start, last: start, lastCPU: cpu0, client: cfg.HTTP}
		tick := time.NewTicker(cfg.Every)
	sampling:
		for {
			select {
			case now := <-tick.C:
				s := smp.take(ctx, now)
				out.Samples = append(out.Samples, s)
				cfg.logf("%s", s.Line())
			case <-runCtx.Done():
				break sampling
			}
		}
		tick.Stop()
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	if cfg.ServerPID > 0 {
		cpu1, err := processCPU(cfg.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("server CPU: %w", err)
		}
		out.ServerCPU = cpu1 - cpu0
	}
	out.Errors, out.ErrorLog = rec.errors, rec.errLog
	for op, l := range rec.lat {
		s := &OpStats{lat: l}
		out.Ops[op] = s
		slices.Sort(s.lat)
		s.Count = len(s.lat)
		s.PerSecond = float64(s.Count) / out.Elapsed.Seconds()
		s.P50, s.P90, s.P99 = ms(pct(s.lat, 50)), ms(pct(s.lat, 90)), ms(pct(s.lat, 99))
		s.Max = ms(s.lat[len(s.lat)-1])
		out.Total += s.Count
	}
	out.PerSec = float64(out.Total) / out.Elapsed.Seconds()
	if out.Total > 0 && out.ServerCPU > 0 {
		out.CPUPerOp = ms(out.ServerCPU) / float64(out.Total)
	}
	dbl, err := Verify(ctx, cfg, r)
	if err != nil {
		return out, err
	}
	out.DoubleBookings = dbl
	return out, nil
}

// pacer hands out the start times of operations: now, without a rate;
// with one, a fixed schedule of rate a second from start, shared by every
// client, so that a slow answer does not slow the load.
type pacer struct {
	start time.Time
	rate  float64
	n     atomic.Int64
}

// next waits for the next scheduled start and returns it; false when ctx
// ends first.
func (p *pacer) next(ctx context.Context) (time.Time, bool) {
	if p.rate <= 0 {
		return time.Now(), true
	}
	at := p.start.Add(time.Duration(float64(p.n.Add(1)-1) / p.rate * float64(time.Second)))
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return at, false
		}
	}
	return at, true
}

func pct(l []time.Duration, p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, len(l)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Write prints the result as a table.
func (res *Result) Write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\tper s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, op := range opOrder {
		s := res.Ops[op]
		if s == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", op, s.Count, s.PerSecond, s.P50, s.P90, s.P99, s.Max)
	}
	tw.Flush()
	fmt.Fprintf(w, "total: %d operations in %s by %d clients: %.0f ops/s; %d errors\n", res.Total, res.Elapsed.Round(time.Millisecond), res.Clients, res.PerSec, res.Errors)
	if res.ServerCPU > 0 {
		fmt.Fprintf(w, "server CPU: %s, %.3f ms per operation\n", res.ServerCPU.Round(time.Millisecond), res.CPUPerOp)
	}
	for _, e := range res.ErrorLog {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	if len(res.DoubleBookings) == 0 {
		fmt.Fprintln(w, "verified: no slot has two live appointments")
	}
	for _, d := range res.DoubleBookings {
		fmt.Fprintf(w, "DOUBLE BOOKING: Slot/%s has live appointments %v\n", d.Slot, d.Appointments)
	}
}

// client is one benchmark client: it picks operations by the mix.
type client struct {
	cfg Config
	r   *Region
	rng *rand.Rand
	w   *wire // its connection
}

// one performs one operation chosen by the mix and returns its name.
func (c *client) one(ctx context.Context) (string, error) {
	m := c.cfg.Mix
	x := c.rng.IntN(m.SlotSearch + m.ServiceSearch + m.Read + m.Book + m.Referral)
	switch {
	case x < m.SlotSearch:
		return OpSlotSearch, c.slotSearch(ctx)
	case x < m.SlotSearch+m.ServiceSearch:
		return OpServiceSearch, c.serviceSearch(ctx)
	case x < m.SlotSearch+m.ServiceSearch+m.Read:
		return OpRead, c.read(ctx)
	case x < m.SlotSearch+m.ServiceSearch+m.Read+m.Book:
		return c.book(ctx)
	}
	return OpReferral, c.referral(ctx)
}

// get sends a GET of path (under the base) and expects 200.
func (c *client) get(ctx context.Context, path string) ([]byte, error) {
	st, b, err := c.w.send(ctx, c.cfg.Token, "GET", c.cfg.BaseURL+path, nil)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %s", path, st, clip(b))
	}
	return b, nil
}

// slotSearch searches a schedule's free slots from a random day on, with
// their schedule.
func (c *client) slotSearch(ctx context.Context) error {
	sc := c.r.Schedules[c.rng.IntN(len(c.r.Schedules))]
	days := max(1, len(c.r.Slots)/len(c.r.Schedules)/32)
	from := c.r.First.AddDate(0, 0, c.rng.IntN(days)).Add(-time.Hour)
	q := url.Values{"schedule": {"Schedule/" + sc}, "status": {"free"}, "start": {"ge" + from.Format(time.RFC3339)}, "_include": {"Slot:schedule"}}
	_, err := c.get(ctx, "/Slot?"+q.Encode())
	return err
}

// serviceSearch searches the services of a specialty.
func (c *client) serviceSearch(ctx context.Context) error {
	sp := specialties[c.rng.IntN(len(specialties))]
	_, err := c.get(ctx, "/HealthcareService?"+url.Values{"specialty": {specialtySystem + "|" + sp}}.Encode())
	return err
}

// read reads a random seeded resource by id: a slot, patient, schedule or
// service.
func (c *client) read(ctx context.Context) error {
	var path string
	switch c.rng.IntN(4) {
	case 0:
		path = "/Slot/" + c.r.Slots[c.rng.IntN(len(c.r.Slots))].id
	case 1:
		path = "/Patient/" + c.r.Patients[c.rng.IntN(len(c.r.Patients))]
	case 2:
		path = "/Schedule/" + c.r.Schedules[c.rng.IntN(len(c.r.Schedules))]
	default:
		path = "/HealthcareService/" + c.r.Services[c.rng.IntN(len(c.r.Services))]
	}
	_, err := c.get(ctx, path)
	return err
}

// book books a random slot of the hot set for a random patient: 201 is a
// booking, 409 a refusal because the slot is taken.
func (c *client) book(ctx context.Context) (string, error) {
	s := c.r.Slots[c.r.Hot[c.rng.IntN(len(c.r.Hot))]]
	pt := c.r.Patients[c.rng.IntN(len(c.r.Patients))]
	body, _ := json.Marshal(map[string]any{"resourceType": "Appointment", "status": "booked",
		"start": s.start.Format(time.RFC3339), "end": s.end.Format(time.RFC3339),
		"slot":        []any{map[string]any{"reference": "Slot/" + s.id}},
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + pt}, "status": "accepted"}}})
	st, b, err := c.w.send(ctx, c.cfg.Token, "POST", c.cfg.BaseURL+"/Appointment", body)
	switch {
	case err != nil:
		return OpBooked, err
	case st == http.StatusCreated || st == http.StatusOK:
		return OpBooked, nil
	case st == http.StatusConflict:
		return OpRefused, nil
	}
	return OpBooked, fmt.Errorf("POST Appointment (Slot/%s): status %d: %s", s.id, st, clip(b))
}

// referral creates a referral of a random patient to a random service.
func (c *client) referral(ctx context.Context) error {
	k := c.rng.IntN(len(c.r.Services))
	pt := c.r.Patients[c.rng.IntN(len(c.r.Patients))]
	body, _ := json.Marshal(map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"subject":       map[string]any{"reference": "Patient/" + pt},
		"requester":     map[string]any{"reference": "Organization/" + c.r.Org},
		"performer":     []any{map[string]any{"reference": "HealthcareService/" + c.r.Services[k]}},
		"performerType": map[string]any{"coding": []any{map[string]any{"system": specialtySystem, "code": specialties[k%len(specialties)]}}},
		"authoredOn":    time.Now().UTC().Format("2006-01-02")})
	st, b, err := c.w.send(ctx, c.cfg.Token, "POST", c.cfg.BaseURL+"/ServiceRequest", body)
	if err != nil {
		return err
	}
	if st != http.StatusCreated && st != http.StatusOK {
		return fmt.Errorf("POST ServiceRequest: status %d: %s", st, clip(b))
	}
	return nil
}
