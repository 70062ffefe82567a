package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
)

// TestCrashMatrix kills `signpost serve` with SIGKILL in the middle of a
// stream of writes of one kind, restarts it on the same data directory and
// checks, for every write path in turn: every write the server
// acknowledged is there as acknowledged, a write in flight at the kill is
// wholly there or wholly absent, nothing is half-applied (a transaction's
// entries all or none; an appointment booked with its slot busy and a
// cancelled one with its slot free; a referral with its Task, the Task
// moved with its referral's booking), expired holds are released after the
// restart, and `signpost check` finds nothing. Each path runs its cycles on
// one data directory, so a later cycle also checks what earlier kills
// left. The paths of the adapters (outbox delivery, inbound PAS messages)
// (outbox delivery, inbound PAS messages) are paths of the matrix too;
// TestPASOutboxSurvivesSIGKILL kills with the PAS down.
//
// Cycles are cheap: one binary built for the run, a few writes per worker
// before the kill, and the paths run two at a time.
func TestCrashMatrix(t *testing.T) {
	bin := buildSignpost(t)
	paths := []struct {
		name   string
		cycles int
		flags  []string
		new    func() crashPath
	}{
		{"create", 6, nil, func() crashPath { return &createPath{} }},
		{"update", 6, nil, func() crashPath { return &updatePath{} }},
		{"transaction", 6, nil, func() crashPath { return &transactionPath{} }},
		{"booking", 8, nil, func() crashPath { return &bookingPath{} }},
		{"reschedule", 6, nil, func() crashPath { return &reschedulePath{} }},
		{"referral", 6, nil, func() crashPath { return &referralPath{} }},
		{"hold-expiry", 4, []string{"--hold-for", "1s"}, func() crashPath { return &holdPath{} }},
		{"outbox-delivery", 5, nil, func() crashPath { return &outboxPath{} }},
		{"pas-inbound", 5, nil, func() crashPath { return &inboundPath{} }},
		{"audit", 6, nil, func() crashPath { return &auditPath{} }},
	}
	total := 0
	for _, p := range paths {
		total += p.cycles
	}
	t.Logf("%d kill-and-restart cycles over %d write paths", total, len(paths))
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			runCrashPath(t, bin, path.new(), path.cycles, path.flags)
		})
	}
}

// crashPath is one write path of the matrix. Its methods are called with
// the server up; write runs on several workers at once and must record
// what it sends before sending it and what was acknowledged after.
type crashPath interface {
	seed(t *testing.T, c *crashClient)
	write(c *crashClient, w, seq int, rng *rand.Rand) error
	verify(t *testing.T, c *crashClient, cycle int, data string)
}

// crashSetup is a path that needs more before the server first starts
// (a peer, a configuration): setup returns serve's extra flags.
type crashSetup interface {
	setup(t *testing.T) []string
}

// crashFinal is a path with a check to make once the cycles are done,
// before the server stops.
type crashFinal interface {
	final(t *testing.T, c *crashClient, data string)
}

// crashWorkers is how many clients write at once on each path.
const crashWorkers = 4

// crashAuthed is a path that runs with authorisation and audit on:
// tokens mints its tokens (the data directory's keys exist by then) and
// sets the client's, after every start.
type crashAuthed interface {
	tokens(t *testing.T, bin, data string, c *crashClient)
}

func runCrashPath(t *testing.T, bin string, path crashPath, cycles int, flags []string) {
	data := t.TempDir()
	authed, isAuthed := path.(crashAuthed)
	if !isAuthed {
		flags = append([]string{"--open"}, flags...)
	}
	if s, ok := path.(crashSetup); ok {
		flags = append(flags, s.setup(t)...)
	}
	p := startSignpost(t, bin, data, flags...)
	c := &crashClient{base: p.base + "/fhir", http: &http.Client{Timeout: 20 * time.Second}}
	if isAuthed {
		authed.tokens(t, bin, data, c)
	}
	path.seed(t, c)
	for cycle := 1; cycle <= cycles; cycle++ {
		var acked atomic.Int64
		var killed atomic.Bool
		var wg sync.WaitGroup
		for w := range crashWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
				for seq := 0; ; seq++ {
					if err := path.write(c, w, seq, rng); err != nil {
						if !killed.Load() {
							t.Errorf("cycle %d, worker %d, before the kill: %v", cycle, w, err)
						}
						return
					}
					acked.Add(1)
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		target := int64(4 + rand.IntN(16))
		if err := waitFor(ctx, func() bool { return acked.Load() >= target }); err != nil {
			t.Errorf("cycle %d: %d writes acknowledged, want %d before the kill", cycle, acked.Load(), target)
		}
		cancel()
		time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
		killed.Store(true)
		p.signal(t, syscall.SIGKILL)
		wg.Wait()
		if code := p.wait(t, 10*time.Second); code != -1 {
			t.Fatalf("cycle %d: signpost exited with %d after SIGKILL, want to be killed", cycle, code)
		}
		p = startSignpost(t, bin, data, flags...)
		c.base = p.base + "/fhir"
		c.log = p.log
		if isAuthed { // the tokens name the issuer, at the new address
			authed.tokens(t, bin, data, c)
		}
		path.verify(t, c, cycle, data)
		if out, err := exec.Command(bin, "check", "--data", data).CombinedOutput(); err != nil {
			t.Fatalf("cycle %d: signpost check after the restart: %v\n%s", cycle, err, out)
		}
		if t.Failed() {
			return
		}
	}
	if f, ok := path.(crashFinal); ok {
		f.final(t, c, data)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("signpost exited with %d after SIGTERM", code)
	}
	checkIntegrity(t, data)
}

// crashClient calls the server under test; its methods return errors,
// never fail the test, since the server may vanish mid-request.
type crashClient struct {
	base  string
	http  *http.Client
	token string        // sent as a bearer token unless a request names its own Authorization
	log   *lockedBuffer // the output of the server started last (after a restart)
}

// do makes a request and returns the status and body; err is a transport
// failure (the server killed).
func (c *crashClient) do(method, path, body string, headers ...string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// expect makes a request and fails unless the answer has status want.
func (c *crashClient) expect(want int, method, path, body string, headers ...string) ([]byte, error) {
	st, out, err := c.do(method, path, body, headers...)
	if err != nil {
		return nil, err
	}
	if st != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, st, want, out)
	}
	return out, nil
}

// get reads JSON into v and fails the test on any failure.
func (c *crashClient) get(t *testing.T, path string, v any) {
	t.Helper()
	out, err := c.expect(200, "GET", path, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// matrixResource is the part of a resource the matrix reads.
type matrixResource struct {
	ResourceType string
	ID           string
	Meta         struct{ VersionID string }
	Status       string
	Slot         []struct{ Reference string }
	BasedOn      []struct{ Reference string }
	Identifier   []struct{ System, Value string }
	Name         []struct{ Family string }
	Focus        struct{ Reference string }
	Business     struct {
		Coding []struct{ Code string }
	} `json:"businessStatus"`
	Extension []struct{ URL string }
}

// all returns every resource a search finds, following next links.
func (c *crashClient) all(t *testing.T, query string) []matrixResource {
	t.Helper()
	var out []matrixResource
	path := "/" + query
	for path != "" {
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource matrixResource
				Search   struct{ Mode string }
			}
		}
		c.get(t, path, &b)
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				u, err := url.Parse(l.URL)
				if err != nil {
					t.Fatal(err)
				}
				path = strings.TrimPrefix(u.RequestURI(), "/fhir")
			}
		}
		for _, e := range b.Entry {
			if e.Search.Mode != "include" {
				out = append(out, e.Resource)
			}
		}
	}
	return out
}

// byIdentifier maps identifier values of system to the resources that
// carry them.
func byIdentifier(rs []matrixResource, system string) map[string][]matrixResource {
	out := map[string][]matrixResource{}
	for _, r := range rs {
		for _, id := range r.Identifier {
			if id.System == system {
				out[id.Value] = append(out[id.Value], r)
			}
		}
	}
	return out
}

// ledger is what a path's client knows: acknowledged writes and those in
// flight at the kill, by key.
type ledger struct {
	mu      sync.Mutex
	acked   map[string]string // key → what the server answered (an id)
	pending map[string]bool
}

func newLedger() ledger {
	return ledger{acked: map[string]string{}, pending: map[string]bool{}}
}

func (l *ledger) begin(key string) {
	l.mu.Lock()
	l.pending[key] = true
	l.mu.Unlock()
}

func (l *ledger) ack(key, id string) {
	l.mu.Lock()
	delete(l.pending, key)
	l.acked[key] = id
	l.mu.Unlock()
}

// settle decides the writes in flight at the kill: found ones become
// acknowledged (with the id found), others are forgotten.
func (l *ledger) settle(found map[string]string) int {
	n := 0
	for k := range l.pending {
		if id, ok := found[k]; ok {
			l.acked[k] = id
			n++
		}
	}
	clear(l.pending)
	return n
}

// --- create -------------------------------------------------------------

const crashSystem = "urn:signpost:crash-matrix"

// createPath: POST Patient, each with an identifier naming the attempt.
type createPath struct{ l ledger }

func (p *createPath) seed(*testing.T, *crashClient) { p.l = newLedger() }

func (p *createPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	key := fmt.Sprintf("w%d-%d-%d", w, seq, rng.Uint32())
	p.l.begin(key)
	out, err := c.expect(201, "POST", "/Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":%q}],"name":[{"family":"Create","given":[%q]}]}`,
		crashSystem, key, strings.Repeat("x", 1+rng.IntN(2000))))
	if err != nil {
		return err
	}
	var r matrixResource
	json.Unmarshal(out, &r)
	p.l.ack(key, r.ID)
	return nil
}

func (p *createPath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	stored := byIdentifier(c.all(t, "Patient?_count=500"), crashSystem)
	found := map[string]string{}
	for k, rs := range stored {
		if len(rs) != 1 {
			t.Fatalf("cycle %d: create %s stored %d times", cycle, k, len(rs))
		}
		found[k] = rs[0].ID
		if _, known := p.l.acked[k]; !known && !p.l.pending[k] {
			t.Fatalf("cycle %d: Patient %s was never sent", cycle, k)
		}
	}
	p.l.settle(found)
	for k, id := range p.l.acked {
		if found[k] != id {
			t.Fatalf("cycle %d: acknowledged create %s (Patient/%s) is not stored (found %q)", cycle, k, id, found[k])
		}
	}
	if len(found) != len(p.l.acked) {
		t.Fatalf("cycle %d: %d Patients stored, %d acknowledged", cycle, len(found), len(p.l.acked))
	}
}

// --- update -------------------------------------------------------------

// updatePath: PUT with If-Match on one Patient per worker; each version's
// family names the attempt.
type updatePath struct {
	mu      sync.Mutex
	version [crashWorkers]int
	family  [crashWorkers]map[int]string // version → family acknowledged
	pending [crashWorkers]string
}

func (p *updatePath) seed(t *testing.T, c *crashClient) {
	for w := range crashWorkers {
		if _, err := c.expect(201, "PUT", fmt.Sprintf("/Patient/upd-%d", w), fmt.Sprintf(`{"resourceType":"Patient","id":"upd-%d","name":[{"family":"v1"}]}`, w)); err != nil {
			t.Fatal(err)
		}
		p.version[w] = 1
		p.family[w] = map[int]string{1: "v1"}
	}
}

func (p *updatePath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	p.mu.Lock()
	v := p.version[w]
	fam := fmt.Sprintf("v%d-%d", v+1, rng.Uint32())
	p.pending[w] = fam
	p.mu.Unlock()
	_, err := c.expect(200, "PUT", fmt.Sprintf("/Patient/upd-%d", w),
		fmt.Sprintf(`{"resourceType":"Patient","id":"upd-%d","name":[{"family":%q,"given":[%q]}]}`, w, fam, strings.Repeat("y", 1+rng.IntN(2000))),
		"If-Match", fmt.Sprintf(`W/"%d"`, v))
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.version[w] = v + 1
	p.family[w][v+1] = fam
	p.pending[w] = ""
	p.mu.Unlock()
	return nil
}

func (p *updatePath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	for w := range crashWorkers {
		var cur matrixResource
		c.get(t, fmt.Sprintf("/Patient/upd-%d", w), &cur)
		n := 0
		fmt.Sscan(cur.Meta.VersionID, &n)
		switch {
		case n == p.version[w]:
		case n == p.version[w]+1 && p.pending[w] != "" && cur.Name[0].Family == p.pending[w]:
			p.version[w] = n
			p.family[w][n] = p.pending[w]
		default:
			t.Fatalf("cycle %d: Patient/upd-%d is at version %d (%v), %d acknowledged", cycle, w, n, cur.Name, p.version[w])
		}
		p.pending[w] = ""
		for v, fam := range p.family[w] {
			var old matrixResource
			c.get(t, fmt.Sprintf("/Patient/upd-%d/_history/%d", w, v), &old)
			if old.Name[0].Family != fam {
				t.Fatalf("cycle %d: Patient/upd-%d version %d is %q, acknowledged %q", cycle, w, v, old.Name[0].Family, fam)
			}
		}
	}
}

// --- transaction --------------------------------------------------------

// transactionPath: transaction Bundles of three creates of three types
// sharing an identifier: all or none of each is stored.
type transactionPath struct{ l ledger }

var transactionTypes = []string{"Patient", "Practitioner", "Organization"}

func (p *transactionPath) seed(*testing.T, *crashClient) { p.l = newLedger() }

func (p *transactionPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	key := fmt.Sprintf("w%d-%d-%d", w, seq, rng.Uint32())
	var entries []string
	for _, typ := range transactionTypes {
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":%q,"identifier":[{"system":%q,"value":%q}]},"request":{"method":"POST","url":%q}}`,
			typ, crashSystem, key, typ))
	}
	p.l.begin(key)
	if _, err := c.expect(200, "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`); err != nil {
		return err
	}
	p.l.ack(key, key)
	return nil
}

func (p *transactionPath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	count := map[string]int{}
	for _, typ := range transactionTypes {
		for k, rs := range byIdentifier(c.all(t, typ+"?_count=500"), crashSystem) {
			if len(rs) != 1 {
				t.Fatalf("cycle %d: transaction %s stored %d %ss", cycle, k, len(rs), typ)
			}
			count[k]++
		}
	}
	found := map[string]string{}
	for k, n := range count {
		if n != len(transactionTypes) {
			t.Fatalf("cycle %d: transaction %s half-applied: %d of its %d entries stored", cycle, k, n, len(transactionTypes))
		}
		found[k] = k
	}
	p.l.settle(found)
	for k := range p.l.acked {
		if count[k] == 0 {
			t.Fatalf("cycle %d: acknowledged transaction %s is not stored", cycle, k)
		}
	}
	if len(found) != len(p.l.acked) {
		t.Fatalf("cycle %d: %d transactions stored, %d acknowledged or in flight", cycle, len(found), len(p.l.acked))
	}
}

// --- booking ------------------------------------------------------------

// seedSlots creates a service, a schedule and n free slots (in one
// transaction) and a patient; slots are named slot-0 … slot-(n-1).
func seedSlots(t *testing.T, c *crashClient, n int) {
	t.Helper()
	first := time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	entries := []string{
		`{"resource":{"resourceType":"HealthcareService","id":"hs-1","name":"Cardiology","specialty":[{"coding":[{"system":"http://snomed.info/sct","code":"394579002"}]}]},"request":{"method":"PUT","url":"HealthcareService/hs-1"}}`,
		`{"resource":{"resourceType":"Schedule","id":"sched-1","actor":[{"reference":"HealthcareService/hs-1"}]},"request":{"method":"PUT","url":"Schedule/sched-1"}}`,
		`{"resource":{"resourceType":"Patient","id":"pat-1","name":[{"family":"Booker"}]},"request":{"method":"PUT","url":"Patient/pat-1"}}`,
	}
	for i := range n {
		s := first.Add(time.Duration(i) * 10 * time.Minute)
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Slot","id":"slot-%d","status":"free","schedule":{"reference":"Schedule/sched-1"},"start":%q,"end":%q},"request":{"method":"PUT","url":"Slot/slot-%d"}}`,
			i, s.Format(time.RFC3339), s.Add(10*time.Minute).Format(time.RFC3339), i))
	}
	if _, err := c.expect(200, "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`); err != nil {
		t.Fatal(err)
	}
}

// slotStatus reads every slot's status.
func slotStatus(t *testing.T, c *crashClient) map[string]string {
	out := map[string]string{}
	for _, s := range c.all(t, "Slot?_count=1000") {
		out["Slot/"+s.ID] = s.Status
	}
	return out
}

// appointmentsBySlot reads every appointment, by the slot it names.
func appointmentsBySlot(t *testing.T, c *crashClient) map[string][]matrixResource {
	out := map[string][]matrixResource{}
	for _, a := range c.all(t, "Appointment?_count=1000") {
		for _, s := range a.Slot {
			out[s.Reference] = append(out[s.Reference], a)
		}
	}
	return out
}

// nextSlot hands each worker its own slots: worker w books slots w,
// w+crashWorkers, …, so that bookings never collide.
type slotDealer struct {
	mu   sync.Mutex
	next [crashWorkers]int
	n    int
}

func (d *slotDealer) take(w int) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := w + d.next[w]*crashWorkers
	if i >= d.n {
		return "", errors.New("out of slots")
	}
	d.next[w]++
	return fmt.Sprintf("Slot/slot-%d", i), nil
}

const crashSlots = 1200

// bookingPath: POST Appointment on a free slot.
type bookingPath struct {
	l     ledger // slot → appointment id
	slots slotDealer
}

func (p *bookingPath) seed(t *testing.T, c *crashClient) {
	p.l = newLedger()
	p.slots.n = crashSlots
	seedSlots(t, c, crashSlots)
}

func (p *bookingPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	slot, err := p.slots.take(w)
	if err != nil {
		return err
	}
	p.l.begin(slot)
	out, err := c.expect(201, "POST", "/Appointment", fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":%q}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}`, slot))
	if err != nil {
		return err
	}
	var r matrixResource
	json.Unmarshal(out, &r)
	p.l.ack(slot, r.ID)
	return nil
}

func (p *bookingPath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	status := slotStatus(t, c)
	appts := appointmentsBySlot(t, c)
	found := map[string]string{}
	for slot, as := range appts {
		if len(as) != 1 || as[0].Status != "booked" {
			t.Fatalf("cycle %d: %s has %d appointments (%v)", cycle, slot, len(as), as)
		}
		found[slot] = as[0].ID
	}
	p.l.settle(found)
	for slot, id := range p.l.acked {
		if found[slot] != id {
			t.Fatalf("cycle %d: acknowledged booking Appointment/%s of %s is not stored", cycle, id, slot)
		}
	}
	for slot, st := range status {
		if booked := found[slot] != ""; booked != (st == "busy") {
			t.Fatalf("cycle %d: %s is %s with %d appointments: half-applied", cycle, slot, st, len(appts[slot]))
		}
	}
	if len(found) != len(p.l.acked) {
		t.Fatalf("cycle %d: %d bookings stored, %d acknowledged or in flight", cycle, len(found), len(p.l.acked))
	}
}

// --- reschedule ---------------------------------------------------------

// reschedulePath: each worker keeps one appointment and moves it with
// $reschedule to a new slot of its own, again and again.
type reschedulePath struct {
	mu      sync.Mutex
	slots   slotDealer
	current [crashWorkers]string // the worker's live appointment
	slot    [crashWorkers]string // its slot
	pending [crashWorkers]string // the slot a reschedule in flight moves to
	moved   [crashWorkers][]string
}

func (p *reschedulePath) seed(t *testing.T, c *crashClient) {
	p.slots.n = crashSlots
	seedSlots(t, c, crashSlots)
	for w := range crashWorkers {
		slot, _ := p.slots.take(w)
		out, err := c.expect(201, "POST", "/Appointment", fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":%q}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}`, slot))
		if err != nil {
			t.Fatal(err)
		}
		var r matrixResource
		json.Unmarshal(out, &r)
		p.current[w], p.slot[w] = r.ID, slot
	}
}

func (p *reschedulePath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	slot, err := p.slots.take(w)
	if err != nil {
		return err
	}
	p.mu.Lock()
	cur := p.current[w]
	p.pending[w] = slot
	p.mu.Unlock()
	out, err := c.expect(200, "POST", "/Appointment/"+cur+"/$reschedule",
		fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"slot","valueReference":{"reference":%q}}]}`, slot))
	if err != nil {
		return err
	}
	var b struct {
		Entry []struct{ Resource matrixResource }
	}
	json.Unmarshal(out, &b)
	id := ""
	for _, e := range b.Entry {
		if e.Resource.ResourceType == "Appointment" && len(e.Resource.Slot) > 0 && e.Resource.Slot[0].Reference == slot {
			id = e.Resource.ID
		}
	}
	if id == "" {
		return fmt.Errorf("$reschedule of %s to %s: no new appointment in %s", cur, slot, out)
	}
	p.mu.Lock()
	p.moved[w] = append(p.moved[w], p.slot[w])
	p.current[w], p.slot[w], p.pending[w] = id, slot, ""
	p.mu.Unlock()
	return nil
}

func (p *reschedulePath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	status := slotStatus(t, c)
	appts := appointmentsBySlot(t, c)
	for w := range crashWorkers {
		if s := p.pending[w]; s != "" {
			if as := appts[s]; len(as) == 1 && as[0].Status == "booked" {
				p.moved[w] = append(p.moved[w], p.slot[w])
				p.current[w], p.slot[w] = as[0].ID, s
			} else if len(as) != 0 {
				t.Fatalf("cycle %d: %s, the target of a reschedule in flight, has %v", cycle, s, as)
			}
			p.pending[w] = ""
		}
		if as := appts[p.slot[w]]; len(as) != 1 || as[0].ID != p.current[w] || as[0].Status != "booked" || status[p.slot[w]] != "busy" {
			t.Fatalf("cycle %d: worker %d's appointment %s on %s (%s): %v", cycle, w, p.current[w], p.slot[w], status[p.slot[w]], as)
		}
		for _, old := range p.moved[w] {
			as := appts[old]
			if status[old] != "free" || len(as) != 1 || as[0].Status != "cancelled" {
				t.Fatalf("cycle %d: %s, rescheduled away from, is %s with %v", cycle, old, status[old], as)
			}
		}
	}
}

// --- referral -----------------------------------------------------------

// referralPath: each worker runs referrals through their operations: a
// ServiceRequest created (the server adds a UBRN and a Task in the same
// transaction), booked with an Appointment basedOn it (the Task moves to
// booked), then $accept (the Task moves to accepted). Every referral has
// exactly one Task, whose state matches what happened to it.
type referralPath struct {
	mu    sync.Mutex
	slots slotDealer
	step  [crashWorkers]int      // 0: create next, 1: book, 2: accept
	sr    [crashWorkers]string   // the worker's current referral
	state map[string]string      // referral → acknowledged Task state
	slot  map[string]string      // referral → its slot
	infl  [crashWorkers][]string // what is in flight: step, key
	known map[string]bool        // referrals acknowledged
}

func (p *referralPath) seed(t *testing.T, c *crashClient) {
	p.slots.n = crashSlots
	p.state, p.slot, p.known = map[string]string{}, map[string]string{}, map[string]bool{}
	seedSlots(t, c, crashSlots)
	if _, err := c.expect(201, "PUT", "/Organization/gp-1", `{"resourceType":"Organization","id":"gp-1","name":"Surgery","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"B81001"}]}`); err != nil {
		t.Fatal(err)
	}
}

func (p *referralPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	p.mu.Lock()
	step, sr := p.step[w], p.sr[w]
	p.mu.Unlock()
	switch step {
	case 0:
		key := fmt.Sprintf("w%d-%d-%d", w, seq, rng.Uint32())
		p.mu.Lock()
		p.infl[w] = []string{"create", key}
		p.mu.Unlock()
		out, err := c.expect(201, "POST", "/ServiceRequest", fmt.Sprintf(`{"resourceType":"ServiceRequest","status":"active","intent":"order","priority":"routine",`+
			`"identifier":[{"system":%q,"value":%q}],"category":[{"coding":[{"system":"https://signpost.example/fhir/CodeSystem/referral-source","code":"gp"}]}],`+
			`"performerType":{"coding":[{"system":"http://snomed.info/sct","code":"394579002"}]},"subject":{"reference":"Patient/pat-1"},"requester":{"reference":"Organization/gp-1"}}`, crashSystem, key))
		if err != nil {
			return err
		}
		var r matrixResource
		json.Unmarshal(out, &r)
		p.mu.Lock()
		p.sr[w], p.step[w], p.infl[w] = r.ID, 1, nil
		p.state[r.ID], p.known[r.ID] = "awaiting-booking", true
		p.mu.Unlock()
	case 1:
		slot, err := p.slots.take(w)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.infl[w] = []string{"book", sr, slot}
		p.mu.Unlock()
		if _, err := c.expect(201, "POST", "/Appointment", fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","basedOn":[{"reference":"ServiceRequest/%s"}],`+
			`"slot":[{"reference":%q}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}`, sr, slot)); err != nil {
			return err
		}
		p.mu.Lock()
		p.step[w], p.infl[w], p.state[sr], p.slot[sr] = 2, nil, "booked", slot
		p.mu.Unlock()
	case 2:
		p.mu.Lock()
		p.infl[w] = []string{"accept", sr}
		p.mu.Unlock()
		if _, err := c.expect(200, "POST", "/ServiceRequest/"+sr+"/$accept", `{"resourceType":"Parameters"}`); err != nil {
			return err
		}
		p.mu.Lock()
		p.step[w], p.infl[w], p.state[sr] = 0, nil, "accepted"
		p.mu.Unlock()
	}
	return nil
}

func (p *referralPath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	srs := c.all(t, "ServiceRequest?_count=1000")
	tasks := map[string][]matrixResource{}
	for _, task := range c.all(t, "Task?_count=1000") {
		tasks[strings.TrimPrefix(task.Focus.Reference, "ServiceRequest/")] = append(tasks[strings.TrimPrefix(task.Focus.Reference, "ServiceRequest/")], task)
	}
	booked := map[string]string{} // referral → slot of its booked appointment
	for _, a := range c.all(t, "Appointment?_count=1000") {
		if len(a.BasedOn) > 0 && a.Status == "booked" {
			booked[strings.TrimPrefix(a.BasedOn[0].Reference, "ServiceRequest/")] = a.Slot[0].Reference
		}
	}
	// Settle what was in flight.
	for w := range crashWorkers {
		in := p.infl[w]
		p.infl[w] = nil
		if in == nil {
			continue
		}
		switch in[0] {
		case "create":
			for _, sr := range byIdentifier(srs, crashSystem)[in[1]] {
				p.sr[w], p.step[w], p.state[sr.ID], p.known[sr.ID] = sr.ID, 1, "awaiting-booking", true
			}
		case "book":
			if booked[in[1]] == in[2] {
				p.step[w], p.state[in[1]], p.slot[in[1]] = 2, "booked", in[2]
			}
		case "accept":
			if ts := tasks[in[1]]; len(ts) == 1 && len(ts[0].Business.Coding) > 0 && ts[0].Business.Coding[0].Code == "accepted" {
				p.step[w], p.state[in[1]] = 0, "accepted"
			}
		}
	}
	if len(srs) != len(p.known) {
		t.Fatalf("cycle %d: %d referrals stored, %d acknowledged or in flight", cycle, len(srs), len(p.known))
	}
	for _, sr := range srs {
		want, ok := p.state[sr.ID]
		if !ok {
			t.Fatalf("cycle %d: ServiceRequest/%s was never acknowledged", cycle, sr.ID)
		}
		ts := tasks[sr.ID]
		if len(ts) != 1 {
			t.Fatalf("cycle %d: ServiceRequest/%s has %d Tasks: half-applied", cycle, sr.ID, len(ts))
		}
		got := ""
		if len(ts[0].Business.Coding) > 0 {
			got = ts[0].Business.Coding[0].Code
		}
		if got != want {
			t.Fatalf("cycle %d: ServiceRequest/%s's Task is %q, acknowledged %q", cycle, sr.ID, got, want)
		}
		if (want == "booked" || want == "accepted") && booked[sr.ID] != p.slot[sr.ID] {
			t.Fatalf("cycle %d: ServiceRequest/%s is %s but its appointment on %s is not booked", cycle, sr.ID, want, p.slot[sr.ID])
		}
		if want == "awaiting-booking" && booked[sr.ID] != "" {
			t.Fatalf("cycle %d: ServiceRequest/%s has a booked appointment but its Task awaits booking: half-applied", cycle, sr.ID)
		}
	}
}

// --- hold expiry --------------------------------------------------------

// holdPath: pending Appointments (holds, --hold-for 1s) on free slots;
// the server releases each once expired (the sweeper, every 5 s, and at
// start for those that expired while it was down), cancelling the
// appointment and freeing its slot in one transaction. The kill falls on
// the sweeper at work as often as on the holds being made.
type holdPath struct {
	l     ledger
	slots slotDealer
}

func (p *holdPath) seed(t *testing.T, c *crashClient) {
	p.l = newLedger()
	p.slots.n = crashSlots
	seedSlots(t, c, crashSlots)
}

func (p *holdPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	slot, err := p.slots.take(w)
	if err != nil {
		return err
	}
	p.l.begin(slot)
	out, err := c.expect(201, "POST", "/Appointment", fmt.Sprintf(`{"resourceType":"Appointment","status":"pending","slot":[{"reference":%q}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}`, slot))
	if err != nil {
		return err
	}
	var r matrixResource
	json.Unmarshal(out, &r)
	p.l.ack(slot, r.ID)
	time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // spread the holds over the sweeps
	return nil
}

func (p *holdPath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	// Every hold has expired (1 s): the restarted server releases them
	// all. Slots and appointments are read by two requests while the
	// sweeper may release holds in between, so a pair read mid-release
	// may disagree: the state is judged once no hold waits, when nothing
	// changes any more, and must then be whole.
	deadline := time.Now().Add(20 * time.Second)
	for {
		appts := appointmentsBySlot(t, c)
		status := slotStatus(t, c)
		found := map[string]string{}
		waiting := 0
		var problem string
		for slot, as := range appts {
			if len(as) != 1 {
				t.Fatalf("cycle %d: %s has %d appointments", cycle, slot, len(as))
			}
			found[slot] = as[0].ID
			switch {
			case as[0].Status == "cancelled" && status[slot] == "free":
			case as[0].Status == "pending":
				waiting++
			default:
				problem = fmt.Sprintf("hold %s on %s is %s with the slot %s: half-applied", as[0].ID, slot, as[0].Status, status[slot])
			}
		}
		for slot, st := range status {
			if found[slot] == "" && st != "free" {
				problem = fmt.Sprintf("%s is %s without an appointment", slot, st)
			}
		}
		if waiting == 0 && problem == "" {
			p.l.settle(found)
			for slot, id := range p.l.acked {
				if found[slot] != id {
					t.Fatalf("cycle %d: acknowledged hold Appointment/%s on %s is not stored", cycle, id, slot)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cycle %d: 20 s after the restart, %d expired holds not released; %s", cycle, waiting, problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --- outbox delivery ----------------------------------------------------

// outboxPath: bookings of slots an hl7v2-pas adapter instance owns, each
// queueing an SIU^S12 in the outbox in the booking's transaction, while
// the adapter delivers them to a PAS (an MLLP peer in the test that
// acknowledges every message and applies each control id once). The kill
// falls on bookings and deliveries alike. After each restart every stored
// booking has its message in the outbox (pending, in flight or
// delivered), none without; at the end every message reaches the PAS,
// each appointment's S12 applied once (a message in flight at a kill is
// sent again, with its control id, once its claim's lease ends).
type outboxPath struct {
	l     ledger
	slots slotDealer
	pas   *fakePAS
}

func (p *outboxPath) setup(t *testing.T) []string {
	addr := freeAddr(t)
	p.pas = startFakePAS(t, addr)
	cfg := filepath.Join(t.TempDir(), "adapters.json")
	conf := map[string]any{"adapters": []any{map[string]any{
		"name": "pas-rh8", "kind": "hl7v2-pas",
		"principal": map[string]any{"role": "provider", "organization": "RH8"},
		"settings": map[string]any{
			"send": addr, "services": []string{"hs-pas"}, "clinics": map[string]string{"CARD1": "sched-pas"},
			"pas_number_system": "https://harbour.example/Id/pas-number", "mode": "signpost-confirmed",
			"ack_timeout": "1s", "retry_base": "50ms", "retry_max": "200ms",
		}}}}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--adapters", cfg}
}

func (p *outboxPath) seed(t *testing.T, c *crashClient) {
	p.l = newLedger()
	p.slots.n = crashSlots
	p.seedAt(t, c, time.Now().UTC().Truncate(time.Hour).Add(48*time.Hour))
}

// seedAt creates the trust, its PAS-owned service and schedule, a patient
// known by NHS number, and crashSlots free 10-minute slots from first.
func (p *outboxPath) seedAt(t *testing.T, c *crashClient, first time.Time) {
	entries := []string{
		`{"resource":{"resourceType":"Organization","id":"trust","name":"Harbour Hospitals","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RH8"}]},"request":{"method":"PUT","url":"Organization/trust"}}`,
		`{"resource":{"resourceType":"HealthcareService","id":"hs-pas","name":"Cardiology","providedBy":{"reference":"Organization/trust"}},"request":{"method":"PUT","url":"HealthcareService/hs-pas"}}`,
		`{"resource":{"resourceType":"Schedule","id":"sched-pas","actor":[{"reference":"HealthcareService/hs-pas"}]},"request":{"method":"PUT","url":"Schedule/sched-pas"}}`,
		`{"resource":{"resourceType":"Patient","id":"pat-1","birthDate":"1980-05-17","name":[{"family":"Jones"}],"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}]},"request":{"method":"PUT","url":"Patient/pat-1"}}`,
	}
	for i := range crashSlots {
		s := first.Add(time.Duration(i) * 10 * time.Minute)
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Slot","id":"slot-%d","status":"free","schedule":{"reference":"Schedule/sched-pas"},"start":%q,"end":%q},"request":{"method":"PUT","url":"Slot/slot-%d"}}`,
			i, s.Format(time.RFC3339), s.Add(10*time.Minute).Format(time.RFC3339), i))
	}
	if _, err := c.expect(200, "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`); err != nil {
		t.Fatal(err)
	}
}

func (p *outboxPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	slot, err := p.slots.take(w)
	if err != nil {
		return err
	}
	p.l.begin(slot)
	out, err := c.expect(201, "POST", "/Appointment", fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":%q}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}`, slot))
	if err != nil {
		return err
	}
	var r matrixResource
	json.Unmarshal(out, &r)
	p.l.ack(slot, r.ID)
	return nil
}

func (p *outboxPath) verify(t *testing.T, c *crashClient, cycle int, data string) {
	found := map[string]string{}
	for slot, as := range appointmentsBySlot(t, c) {
		if len(as) != 1 || as[0].Status != "booked" {
			t.Fatalf("cycle %d: %s has %v", cycle, slot, as)
		}
		found[slot] = as[0].ID
	}
	p.l.settle(found)
	for slot, id := range p.l.acked {
		if found[slot] != id {
			t.Fatalf("cycle %d: acknowledged booking Appointment/%s of %s is not stored", cycle, id, slot)
		}
	}
	if len(found) != len(p.l.acked) {
		t.Fatalf("cycle %d: %d bookings stored, %d acknowledged or in flight", cycle, len(found), len(p.l.acked))
	}
	if queued := len(queuedControlIDs(t, data, "pas-rh8")); queued != len(found) {
		t.Fatalf("cycle %d: %d bookings stored, %d messages in the outbox: a booking without its message, or a message without its booking", cycle, len(found), queued)
	}
}

func (p *outboxPath) final(t *testing.T, c *crashClient, data string) {
	got := p.pas.waitApplied(t, len(p.l.acked))
	s12 := map[string]int{}
	for _, m := range got {
		if _, ev := m.Type(); ev == "S12" {
			s12[m.Get("SCH-1.1")]++
		}
	}
	for slot, id := range p.l.acked {
		if s12[id] != 1 {
			t.Errorf("Appointment/%s (%s): the PAS applied %d S12s, want 1", id, slot, s12[id])
		}
	}
}

// --- inbound PAS messages -----------------------------------------------

// inboundPath: a PAS books over MLLP (SIU^S12, each with its own control
// id and filler id, in a slot of its own) into an hl7v2-pas instance's
// listener. A message acknowledged AA is applied; one unanswered at the
// kill is sent again after the restart with its control id, as a PAS
// does, and must be acknowledged AA and applied once (the inbox keeps the
// control ids in the write's transaction).
type inboundPath struct {
	mu      sync.Mutex
	addr    string
	first   time.Time
	l       ledger // slot → filler id
	slots   slotDealer
	sent    map[string]string // slot → the message sent for it
	clients [crashWorkers]*mllp.Client
}

const inboundNHS = "9990000018"

func (p *inboundPath) setup(t *testing.T) []string {
	p.addr = freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "adapters.json")
	conf := map[string]any{"adapters": []any{map[string]any{
		"name": "pas-rh8", "kind": "hl7v2-pas",
		"principal": map[string]any{"role": "provider", "organization": "RH8"},
		"settings": map[string]any{
			"listen": p.addr, "allow": []string{"127.0.0.1"}, "send": freeAddr(t),
			"services": []string{"hs-pas"}, "clinics": map[string]string{"CARD1": "sched-pas"},
			"pas_number_system": "https://harbour.example/Id/pas-number", "mode": "signpost-confirmed",
		}}}}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--adapters", cfg}
}

func (p *inboundPath) seed(t *testing.T, c *crashClient) {
	p.l = newLedger()
	p.sent = map[string]string{}
	p.slots.n = crashSlots
	p.first = time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	(&outboxPath{}).seedAt(t, c, p.first)
}

// message is the S12 booking slot i for worker w.
func (p *inboundPath) message(w, seq, i int) (ctrl, filler, msg string) {
	ctrl, filler = fmt.Sprintf("IN-%d-%d-%d", w, seq, i), fmt.Sprintf("F%d", i)
	start := p.first.Add(time.Duration(i) * 10 * time.Minute)
	at := hl7v2.FormatTime(start)
	segs := []string{
		"MSH|^~\\&|PAS|RH8|SIGNPOST|RH8|20261206120000||SIU^S12^SIU_S12|" + ctrl + "|P|2.5.1",
		fmt.Sprintf("SCH||%s^PAS|||||ROUTINE^Routine^HL70276|NEW^New patient^HL70277|10|MIN|^^10^%s||||||||||||||BOOKED^Booked^HL70278", filler, at),
		"PID|1||" + inboundNHS + "^^^NHS^NH~PAS1^^^RH8^PI||JONES^ROSE^^^MS^^L||19800517|F",
		"RGS|1|A",
		fmt.Sprintf("AIL|1|A|CARD1^CLINIC 3^^RH8|CLINIC^Outpatient clinic|^Cardiology|%s|0|MIN|10|MIN", at),
	}
	return ctrl, filler, strings.Join(segs, "\r")
}

// send sends msg on worker w's connection and returns the MSA-1 code.
func (p *inboundPath) send(w int, msg string) (string, error) {
	p.mu.Lock()
	cl := p.clients[w]
	if cl == nil {
		cl = &mllp.Client{Addr: p.addr, AckTimeout: 10 * time.Second, DialTimeout: 2 * time.Second}
		p.clients[w] = cl
	}
	p.mu.Unlock()
	raw, err := cl.Send(context.Background(), []byte(msg))
	if err != nil {
		return "", err
	}
	ack, err := hl7v2.Parse(raw)
	if err != nil {
		return "", err
	}
	return ack.Get("MSA-1"), nil
}

func (p *inboundPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	slot, err := p.slots.take(w)
	if err != nil {
		return err
	}
	var i int
	fmt.Sscanf(slot, "Slot/slot-%d", &i)
	_, filler, msg := p.message(w, seq, i)
	p.mu.Lock()
	p.sent[slot] = msg
	p.mu.Unlock()
	p.l.begin(slot)
	code, err := p.send(w, msg)
	if err != nil {
		return err
	}
	if code != "AA" {
		return fmt.Errorf("S12 for %s: acknowledged %s", slot, code)
	}
	p.l.ack(slot, filler)
	return nil
}

func (p *inboundPath) verify(t *testing.T, c *crashClient, cycle int, _ string) {
	for w, cl := range p.clients {
		if cl != nil {
			cl.Close()
			p.clients[w] = nil
		}
	}
	// The PAS sends again what was not acknowledged, with its control id.
	for slot := range p.l.pending {
		var i int
		fmt.Sscanf(slot, "Slot/slot-%d", &i)
		code, err := p.send(0, p.sent[slot])
		if err != nil || code != "AA" {
			t.Fatalf("cycle %d: the S12 for %s sent again after the restart: %s %v", cycle, slot, code, err)
		}
		p.l.ack(slot, fmt.Sprintf("F%d", i))
	}
	status := slotStatus(t, c)
	filler := map[string]string{}
	for slot, as := range appointmentsBySlot(t, c) {
		if len(as) != 1 || as[0].Status != "booked" {
			t.Fatalf("cycle %d: %s has %d appointments (%v): a message applied twice or half", cycle, slot, len(as), as)
		}
		for _, id := range as[0].Identifier {
			if id.System == "urn:signpost:adapter:pas-rh8:filler" {
				filler[slot] = id.Value
			}
		}
	}
	for slot, f := range p.l.acked {
		if filler[slot] != f {
			t.Fatalf("cycle %d: the acknowledged S12 %s for %s is not applied (found %q)", cycle, f, slot, filler[slot])
		}
	}
	if len(filler) != len(p.l.acked) {
		t.Fatalf("cycle %d: %d appointments from the PAS, %d messages acknowledged", cycle, len(filler), len(p.l.acked))
	}
	for slot, st := range status {
		if (filler[slot] != "") != (st == "busy") {
			t.Fatalf("cycle %d: %s is %s with filler %q: half-applied", cycle, slot, st, filler[slot])
		}
	}
}
