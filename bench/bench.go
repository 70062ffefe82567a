// Package bench is the mixed-workload benchmark of a FHIR server (issue
// 15): it seeds a synthetic region through the REST API, runs concurrent
// clients with a realistic mix of searches, reads, bookings that collide
// and referrals, reports throughput, latency percentiles and server CPU per
// operation, and verifies afterwards that no slot ended up with two live
// appointments.
//
// It speaks plain FHIR R4 over HTTP with a bearer token and nothing else,
// so it can be pointed at any FHIR server; `signpost bench` runs it.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is one benchmark run: where, as whom, the region's size and the
// load's shape. Zero fields take the values of Issue15.
type Config struct {
	// BaseURL is the server's FHIR base, e.g. http://127.0.0.1:8080/fhir.
	BaseURL string
	// Token is the bearer token of the clients ("" sends none: an open
	// server); SeedToken seeds the region (default Token).
	Token, SeedToken string
	// Org is the ODS code of the region's one provider organisation, which
	// publishes every service, schedule and slot (for a server whose
	// organisation rules let a token write only its own directory, the
	// token's organisation).
	Org string

	Services  int // HealthcareServices
	Schedules int // Schedules, spread over the services
	Slots     int // free Slots, spread over the schedules
	Patients  int // Patients
	HotSlots  int // the slots bookings aim at, so that clients collide

	Clients  int           // concurrent clients
	Duration time.Duration // how long they run

	// Mix is the share of each operation, in percent (they need not add
	// up to 100: the shares are relative).
	Mix Mix

	// ServerPID is the server's process id when it runs on this machine:
	// its CPU time is read from /proc/<pid>/stat before and after the
	// run. 0: not measured.
	ServerPID int

	// Rate paces the clients to that many operations a second in all
	// (0: each client sends its next request as soon as the last is
	// answered). Operations start on a fixed schedule, and each latency
	// counts from its scheduled start, so a server that falls behind shows
	// it in the figures instead of slowing the load down.
	Rate float64
	// Every, when set, samples the run at that interval (Result.Samples,
	// and a line to Log): the interval's throughput and latency and, with
	// ServerPID, the server's resident memory, threads and open files;
	// with MetricsURL, its goroutines. A soak runs long with this on.
	Every time.Duration
	// MetricsURL is the server's Prometheus endpoint, read for
	// go_goroutines at each sample ("": not read).
	MetricsURL string

	// Prefix starts every id the run seeds (default random), so that runs
	// against one server do not collide.
	Prefix string
	// RandomSeed makes the clients' choices reproducible.
	RandomSeed uint64

	// HTTP seeds the region, verifies it and reads the server's metrics;
	// nil means a client of its own. The clients of the run each hold a
	// connection of their own (wire.go).
	HTTP *http.Client
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Mix is the share of each operation of the workload.
type Mix struct {
	SlotSearch, ServiceSearch, Read, Book, Referral int
}

// Issue15 is the run issue 15 asks for: a region of 20 services, 80
// schedules, 10,000 slots and 1,000 patients; 16 clients for 30 s, 60%
// free-slot searches, 15% service searches, 10% reads, 10% bookings of a
// hot set of 200 slots, 5% referrals.
func Issue15() Config {
	return Config{Org: "RBENCH", Services: 20, Schedules: 80, Slots: 10000, Patients: 1000, HotSlots: 200,
		Clients: 16, Duration: 30 * time.Second, Mix: Mix{SlotSearch: 60, ServiceSearch: 15, Read: 10, Book: 10, Referral: 5},
		RandomSeed: 15}
}

// withDefaults fills the zero fields from Issue15.
func (c Config) withDefaults() Config {
	d := Issue15()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.Services, d.Services)
	set(&c.Schedules, d.Schedules)
	set(&c.Slots, d.Slots)
	set(&c.Patients, d.Patients)
	set(&c.HotSlots, d.HotSlots)
	set(&c.Clients, d.Clients)
	c.HotSlots = min(c.HotSlots, c.Slots)
	c.Schedules = max(c.Schedules, c.Services)
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if c.Mix == (Mix{}) {
		c.Mix = d.Mix
	}
	if c.Org == "" {
		c.Org = d.Org
	}
	if c.SeedToken == "" {
		c.SeedToken = c.Token
	}
	if c.RandomSeed == 0 {
		c.RandomSeed = d.RandomSeed
	}
	if c.Prefix == "" {
		c.Prefix = "b" + strconv.FormatUint(rand.Uint64()%(36*36*36*36*36), 36)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.HTTP == nil {
		c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.Clients + 2, MaxIdleConns: c.Clients + 2}, Timeout: requestTimeout}
	}
	return c
}

func (c Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// requestTimeout bounds one request of the benchmark.
const requestTimeout = time.Minute

// specialties are the SNOMED CT specialties the region's services offer.
var specialties = []string{"394582007", "394579002", "394585009", "394589003", "394591006"}

// specialtySystem is SNOMED CT's system URI.
const specialtySystem = "http://snomed.info/sct"

// odsSystem is the identifier system of ODS organisation codes.
const odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// slotMinutes is the length of a seeded slot.
const slotMinutes = 15

// Region is what Seed wrote: the ids the workload uses.
type Region struct {
	Prefix    string
	Org       string   // Organization id
	Services  []string // HealthcareService ids; service k offers specialties[k % len]
	Schedules []string // Schedule ids; schedule j belongs to service j % len(Services)
	Slots     []slot   // slot i is in schedule i % len(Schedules)
	Patients  []string
	Hot       []int // indexes in Slots of the slots bookings aim at
	First     time.Time
}

type slot struct {
	id, schedule string
	start, end   time.Time
}

// Region returns the region cfg describes, with ids under cfg's prefix,
// its first slots at 09:00 UTC the day after now.
func (c Config) Region(now time.Time) *Region {
	c = c.withDefaults()
	r := &Region{Prefix: c.Prefix, Org: c.Prefix + "-org", First: now.UTC().Truncate(24 * time.Hour).Add(33 * time.Hour)}
	for k := range c.Services {
		r.Services = append(r.Services, fmt.Sprintf("%s-hs%d", c.Prefix, k))
	}
	for j := range c.Schedules {
		r.Schedules = append(r.Schedules, fmt.Sprintf("%s-sc%d", c.Prefix, j))
	}
	for i := range c.Slots {
		j := i % c.Schedules
		n := i / c.Schedules // the schedule's n-th slot: 32 a day, 09:00–17:00
		day, inDay := n/32, n%32
		st := r.First.AddDate(0, 0, day).Add(time.Duration(inDay*slotMinutes) * time.Minute)
		r.Slots = append(r.Slots, slot{id: fmt.Sprintf("%s-sl%d", c.Prefix, i), schedule: r.Schedules[j], start: st, end: st.Add(slotMinutes * time.Minute)})
	}
	for p := range c.Patients {
		r.Patients = append(r.Patients, fmt.Sprintf("%s-pt%d", c.Prefix, p))
	}
	step := max(1, c.Slots/c.HotSlots)
	for h := range c.HotSlots {
		r.Hot = append(r.Hot, (h*step)%c.Slots)
	}
	return r
}

// resources returns the region as FHIR JSON, each resource before those
// that refer to it.
func (r *Region) resources(c Config) []map[string]any {
	ref := func(s string) map[string]any { return map[string]any{"reference": s} }
	out := []map[string]any{{"resourceType": "Organization", "id": r.Org, "active": true, "name": "Bench Hospital " + r.Prefix,
		"identifier": []any{map[string]any{"system": odsSystem, "value": c.Org}}}}
	for k, id := range r.Services {
		out = append(out, map[string]any{"resourceType": "HealthcareService", "id": id, "active": true,
			"name": fmt.Sprintf("Bench clinic %d", k), "providedBy": ref("Organization/" + r.Org),
			"specialty": []any{map[string]any{"coding": []any{map[string]any{"system": specialtySystem, "code": specialties[k%len(specialties)]}}}}})
	}
	for j, id := range r.Schedules {
		out = append(out, map[string]any{"resourceType": "Schedule", "id": id, "active": true,
			"actor": []any{ref("HealthcareService/" + r.Services[j%len(r.Services)])}})
	}
	for p, id := range r.Patients {
		out = append(out, map[string]any{"resourceType": "Patient", "id": id, "active": true,
			"name":      []any{map[string]any{"family": "Bench", "given": []any{fmt.Sprintf("Patient%d", p)}}},
			"gender":    []string{"female", "male"}[p%2],
			"birthDate": fmt.Sprintf("%d-%02d-%02d", 1940+p%70, 1+p%12, 1+p%28)})
	}
	for _, s := range r.Slots {
		out = append(out, map[string]any{"resourceType": "Slot", "id": s.id, "status": "free",
			"schedule": ref("Schedule/" + s.schedule),
			"start":    s.start.Format(time.RFC3339), "end": s.end.Format(time.RFC3339)})
	}
	return out
}

// seedBatch is the number of entries in one seeding transaction.
const seedBatch = 500

// Seed writes the region cfg describes to the server, with PUTs (its ids
// are the run's) in transaction Bundles of up to 500 entries, and returns
// it.
func Seed(ctx context.Context, cfg Config) (*Region, error) {
	cfg = cfg.withDefaults()
	r := cfg.Region(time.Now())
	all := r.resources(cfg)
	start := time.Now()
	for from := 0; from < len(all); from += seedBatch {
		var entries []any
		for _, res := range all[from:min(len(all), from+seedBatch)] {
			entries = append(entries, map[string]any{"resource": res,
				"request": map[string]any{"method": "PUT", "url": res["resourceType"].(string) + "/" + res["id"].(string)}})
		}
		body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		st, b, err := cfg.send(ctx, cfg.SeedToken, "POST", cfg.BaseURL, body)
		if err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
		if st != http.StatusOK {
			return nil, fmt.Errorf("seeding: transaction of entries %d–%d: status %d: %s", from, from+len(entries)-1, st, clip(b))
		}
	}
	cfg.logf("seeded %d resources (prefix %s) in %s", len(all), r.Prefix, time.Since(start).Round(time.Millisecond))
	return r, nil
}

// send sends one request with token and returns the status and body.
func (c Config) send(ctx context.Context, token, method, u string, body []byte) (int, []byte, error) {
	req, err := newRequest(ctx, token, method, u, body)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// newRequest is one request of the benchmark: FHIR JSON, with token
// (none: an open server) and body (nil: none).
func newRequest(ctx context.Context, token, method, u string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

func clip(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// liveStatuses are the Appointment statuses that hold their slots.
var liveStatuses = map[string]bool{"pending": true, "booked": true, "arrived": true, "checked-in": true, "fulfilled": true, "noshow": true}

// DoubleBooking is a slot with more than one live appointment.
type DoubleBooking struct {
	Slot         string
	Appointments []string
}

// verifyChunk is the number of slots one verification search names.
const verifyChunk = 100

// Verify searches the appointments of every slot of the region and returns
// the slots that have more than one live appointment (none on a correct
// server).
func Verify(ctx context.Context, cfg Config, r *Region) ([]DoubleBooking, error) {
	cfg = cfg.withDefaults()
	live := map[string][]string{}
	for from := 0; from < len(r.Slots); from += verifyChunk {
		var refs []string
		for _, s := range r.Slots[from:min(len(r.Slots), from+verifyChunk)] {
			refs = append(refs, "Slot/"+s.id)
		}
		next := cfg.BaseURL + "/Appointment?" + url.Values{"slot": {strings.Join(refs, ",")}, "_count": {"1000"}}.Encode()
		for pages := 0; next != ""; pages++ {
			if pages > 1000 {
				return nil, errors.New("verifying: more than 1,000 pages of appointments")
			}
			st, b, err := cfg.send(ctx, cfg.SeedToken, "GET", next, nil)
			if err != nil {
				return nil, fmt.Errorf("verifying: %w", err)
			}
			if st != http.StatusOK {
				return nil, fmt.Errorf("verifying: %s: status %d: %s", next, st, clip(b))
			}
			var page struct {
				Link []struct {
					Relation string `json:"relation"`
					URL      string `json:"url"`
				} `json:"link"`
				Entry []struct {
					Resource struct {
						ResourceType string `json:"resourceType"`
						ID           string `json:"id"`
						Status       string `json:"status"`
						Slot         []struct {
							Reference string `json:"reference"`
						} `json:"slot"`
					} `json:"resource"`
					Search struct {
						Mode string `json:"mode"`
					} `json:"search"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(b, &page); err != nil {
				return nil, fmt.Errorf("verifying: %w", err)
			}
			for _, e := range page.Entry {
				a := e.Resource
				if a.ResourceType != "Appointment" || !liveStatuses[a.Status] {
					continue
				}
				for _, s := range a.Slot {
					id := s.Reference[strings.LastIndex(s.Reference, "/")+1:]
					live[id] = append(live[id], a.ID)
				}
			}
			next = ""
			for _, l := range page.Link {
				if l.Relation == "next" {
					next = l.URL
				}
			}
		}
	}
	var out []DoubleBooking
	for _, s := range r.Slots {
		if ids := live[s.id]; len(ids) > 1 {
			out = append(out, DoubleBooking{Slot: s.id, Appointments: dedupe(ids)})
		}
	}
	return out, nil
}

// dedupe drops repeats (an appointment found on two pages).
func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// processCPU returns the CPU time (user and system) of process pid so far,
// from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from its
	// closing parenthesis; utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's
// times: 100 on every Linux architecture Go supports.
const clockTicks = 100
