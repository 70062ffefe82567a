package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// epoch is the fake clock's start.
var epoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// clock is a fake clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// set puts the clock at epoch+d.
func (c *clock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = epoch.Add(d)
}

// add moves the clock on by d.
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// reply is a scripted answer of the fake sender.
type reply struct {
	out Outcome
	err error
}

var aa = reply{out: Outcome{Result: Accepted}}

func ae(text string) reply { return reply{out: Outcome{Result: Failed, Reason: "AE: " + text}} }
func ar(text string) reply { return reply{out: Outcome{Result: Rejected, Reason: "AR: " + text}} }
func fail(err error) reply { return reply{err: err} }

// fakeSender answers each control id from its script, in order, and
// accepts once the script is used up. It records what it was sent.
type fakeSender struct {
	mu     sync.Mutex
	script map[string][]reply
	sent   []store.Queued
	// takes moves clk on by this much during each send.
	takes time.Duration
	clk   *clock
}

// Send implements Sender.
func (f *fakeSender) Send(ctx context.Context, m store.Queued) (Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	if f.takes > 0 {
		f.clk.add(f.takes)
	}
	r := aa
	if s := f.script[m.ControlID]; len(s) > 0 {
		r, f.script[m.ControlID] = s[0], s[1:]
	}
	return r.out, r.err
}

// take returns the control ids sent since the last take.
func (f *fakeSender) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for _, m := range f.sent {
		out = append(out, m.ControlID)
	}
	f.sent = nil
	return out
}

// retry is a Retry the store was asked for: the delay after the failed
// attempt and the reason.
type retry struct {
	delay  time.Duration
	reason string
}

// recorder passes the dispatcher's calls to the store and records the
// outcomes; crashed drops every outcome instead, as if the process died
// between sending and recording.
type recorder struct {
	store.OutboxDelivery
	clk *clock

	mu        sync.Mutex
	ctl       map[int64]string
	delivered []string
	retries   map[string][]retry
	crashed   bool
	batches   int // Settle calls (batchRecorder)
}

var errCrashed = errors.New("the process died")

func (r *recorder) Claim(ctx context.Context, dest string, now time.Time, lease time.Duration, limit int) ([]store.Queued, error) {
	qs, err := r.OutboxDelivery.Claim(ctx, dest, now, lease, limit)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range qs {
		r.ctl[q.ID] = q.ControlID
	}
	return qs, err
}

func (r *recorder) Delivered(ctx context.Context, id, claim int64, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.crashed {
		return errCrashed
	}
	r.delivered = append(r.delivered, r.ctl[id])
	return r.OutboxDelivery.Delivered(ctx, id, claim, now)
}

func (r *recorder) Retry(ctx context.Context, id, claim int64, reason string, next time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.crashed {
		return errCrashed
	}
	ctl := r.ctl[id]
	r.retries[ctl] = append(r.retries[ctl], retry{next.Sub(r.clk.Now()), reason})
	return r.OutboxDelivery.Retry(ctx, id, claim, reason, next)
}

func (r *recorder) DeadLetter(ctx context.Context, id, claim int64, reason string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.crashed {
		return errCrashed
	}
	return r.OutboxDelivery.DeadLetter(ctx, id, claim, reason, now)
}

// batchRecorder is a recorder that also records outcomes in batches
// (store.OutboxBatch), as the SQLite store does: the dispatcher then
// takes its batch path. crashed fails the whole batch, recording nothing.
type batchRecorder struct {
	*recorder
}

func (r batchRecorder) Settle(ctx context.Context, outs []store.Outcome, next store.ClaimRequest) ([]error, []store.Queued, error) {
	r.mu.Lock()
	if r.crashed {
		r.mu.Unlock()
		return nil, nil, errCrashed
	}
	for _, o := range outs {
		ctl := r.ctl[o.ID]
		switch o.State {
		case store.OutboxDone:
			r.delivered = append(r.delivered, ctl)
		case store.OutboxPending:
			r.retries[ctl] = append(r.retries[ctl], retry{o.At.Sub(r.clk.Now()), o.Reason})
		}
	}
	r.batches++
	r.mu.Unlock()
	errs, qs, err := r.OutboxDelivery.(store.OutboxBatch).Settle(ctx, outs, next)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range qs {
		r.ctl[q.ID] = q.ControlID
	}
	return errs, qs, err
}

// openStore opens a fresh SQLite store.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// hl7Payload is a minimal HL7 v2 message with control id ctl.
func hl7Payload(ctl string) []byte {
	return []byte("MSH|^~\\&|SIGNPOST|RH8|PAS|RH8|20260301090000||SIU^S12^SIU_S12|" + ctl + "|P|2.5.1\rSCH|" + ctl + "\r")
}

// enqueue queues, in one transaction, messages for destination "pas",
// each "key/ctl", and returns their ids by control id.
func enqueue(t *testing.T, s store.Store, at time.Time, keyCtls ...string) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, kc := range keyCtls {
			key, ctl, _ := strings.Cut(kc, "/")
			id, err := tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: "pas", Key: "Appointment/" + key, ControlID: ctl,
				ContentType: "application/hl7-v2", Payload: hl7Payload(ctl), Created: at})
			if err != nil {
				return err
			}
			ids[ctl] = id
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return ids
}

// testConfig is the configuration the tests start from.
func testConfig(clk *clock) Config {
	return Config{
		Destination: "pas",
		Lease:       time.Minute,
		Batch:       10,
		Backoff:     Backoff{Base: time.Second, Factor: 2, Max: 8 * time.Second},
		Now:         clk.Now,
		Rand:        func() float64 { return 0.5 },
		Logger:      slog.New(slog.DiscardHandler),
	}
}

// harness is a dispatcher over a recorded SQLite store and a fake sender.
type harness struct {
	s      *sqlite.Store
	rec    *recorder
	sender *fakeSender
	clk    *clock
	d      *Dispatcher
	ids    map[string]int64
}

// newHarness builds a harness with cfg changed by change and script; its
// dispatcher records outcomes one by one.
func newHarness(t *testing.T, change func(*Config), script map[string][]reply) *harness {
	return newHarnessMode(t, change, script, false)
}

// newHarnessMode is newHarness, recording outcomes in batches when
// batched is true.
func newHarnessMode(t *testing.T, change func(*Config), script map[string][]reply, batched bool) *harness {
	t.Helper()
	clk := &clock{t: epoch}
	s := openStore(t)
	script = maps.Clone(script) // the sender uses its copy up
	h := &harness{s: s, clk: clk, rec: &recorder{OutboxDelivery: s, clk: clk, ctl: map[int64]string{}, retries: map[string][]retry{}},
		sender: &fakeSender{script: script, clk: clk}, ids: map[string]int64{}}
	cfg := testConfig(clk)
	if change != nil {
		change(&cfg)
	}
	var ob store.OutboxDelivery = h.rec
	if batched {
		ob = batchRecorder{h.rec}
	}
	d, err := New(ob, h.sender, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

// step is one round of a scenario: at a time, maybe after an operator's
// action, the control ids sent.
type step struct {
	at    time.Duration
	admin func(t *testing.T, h *harness)
	sent  []string
}

// replay replays dead letter ctl.
func replay(ctl string) func(t *testing.T, h *harness) {
	return func(t *testing.T, h *harness) {
		if err := h.s.Replay(context.Background(), h.ids[ctl], h.clk.Now()); err != nil {
			t.Fatalf("Replay(%s): %v", ctl, err)
		}
	}
}

// discard discards dead letter ctl.
func discard(ctl string) func(t *testing.T, h *harness) {
	return func(t *testing.T, h *harness) {
		if err := h.s.Discard(context.Background(), h.ids[ctl], "operator gave up", h.clk.Now()); err != nil {
			t.Fatalf("Discard(%s): %v", ctl, err)
		}
	}
}

// TestDispatch runs scenarios of rounds against the SQLite outbox with a
// scripted sender and a fake clock, checking what each round sent, the
// back-off and reasons of each retry, the order of deliveries and the
// dead letters left.
func TestDispatch(t *testing.T) {
	timeout := fmt.Errorf("waiting for the acknowledgement: %w", mllp.ErrAckTimeout)
	refused := errors.New("mllp: connecting to pas.example:2576: connection refused")
	tests := []dispatchCase{{
		name:   "order per key is kept under retries",
		msgs:   []string{"a/a1", "a/a2", "b/b1"},
		script: map[string][]reply{"a1": {ae("slot locked"), fail(refused)}},
		steps: []step{
			{at: 0, sent: []string{"a1", "b1"}},
			{at: 0, sent: []string{}}, // a1 backs off; a2 waits behind it
			{at: 999 * time.Millisecond, sent: []string{}},
			{at: time.Second, sent: []string{"a1"}},
			{at: 3*time.Second - time.Microsecond, sent: []string{}},
			{at: 3 * time.Second, sent: []string{"a1"}},
			{at: 3 * time.Second, sent: []string{"a2"}},
			{at: 3 * time.Second, sent: []string{}},
		},
		wantDelivered: []string{"b1", "a1", "a2"},
		wantRetries:   map[string][]retry{"a1": {{time.Second, "AE: slot locked"}, {2 * time.Second, "connection refused"}}},
	}, {
		name:   "back-off grows and caps",
		msgs:   []string{"a/a1"},
		script: map[string][]reply{"a1": {ae("1"), ae("2"), ae("3"), ae("4"), ae("5"), ae("6")}},
		steps: []step{
			{at: 0, sent: []string{"a1"}},
			{at: 1 * time.Second, sent: []string{"a1"}},
			{at: 3 * time.Second, sent: []string{"a1"}},
			{at: 7 * time.Second, sent: []string{"a1"}},
			{at: 15 * time.Second, sent: []string{"a1"}},
			{at: 23 * time.Second, sent: []string{"a1"}},
			{at: 31 * time.Second, sent: []string{"a1"}},
		},
		wantDelivered: []string{"a1"},
		wantRetries: map[string][]retry{"a1": {{1 * time.Second, "AE: 1"}, {2 * time.Second, "AE: 2"}, {4 * time.Second, "AE: 3"},
			{8 * time.Second, "AE: 4"}, {8 * time.Second, "AE: 5"}, {8 * time.Second, "AE: 6"}}},
	}, {
		name:   "jitter shortens each delay by its share",
		cfg:    func(c *Config) { c.Backoff.Jitter = 0.5 }, // Rand gives 0.5: a quarter off
		msgs:   []string{"a/a1"},
		script: map[string][]reply{"a1": {ae("1"), ae("2"), ae("3")}},
		steps: []step{
			{at: 0, sent: []string{"a1"}},
			{at: 750 * time.Millisecond, sent: []string{"a1"}},
			{at: 2250 * time.Millisecond, sent: []string{"a1"}},
			{at: 5250 * time.Millisecond, sent: []string{"a1"}},
		},
		wantDelivered: []string{"a1"},
		wantRetries: map[string][]retry{"a1": {{750 * time.Millisecond, "AE: 1"}, {1500 * time.Millisecond, "AE: 2"},
			{3 * time.Second, "AE: 3"}}},
	}, {
		name:   "transport errors and ACK timeouts are retried",
		msgs:   []string{"a/a1"},
		script: map[string][]reply{"a1": {fail(timeout), fail(refused)}},
		steps: []step{
			{at: 0, sent: []string{"a1"}},
			{at: 1 * time.Second, sent: []string{"a1"}},
			{at: 3 * time.Second, sent: []string{"a1"}},
		},
		wantDelivered: []string{"a1"},
		wantRetries:   map[string][]retry{"a1": {{time.Second, "no acknowledgement in time"}, {2 * time.Second, "connection refused"}}},
	}, {
		name:   "the retry limit makes a dead letter that holds its key",
		cfg:    func(c *Config) { c.MaxAttempts = 3 },
		msgs:   []string{"a/a1", "a/a2", "b/b1"},
		script: map[string][]reply{"a1": {ae("busy"), ae("busy"), ae("still busy"), aa}},
		steps: []step{
			{at: 0, sent: []string{"a1", "b1"}},
			{at: 1 * time.Second, sent: []string{"a1"}},
			{at: 3 * time.Second, sent: []string{"a1"}},
			{at: time.Hour, sent: []string{}},
		},
		wantDelivered: []string{"b1"},
		wantRetries:   map[string][]retry{"a1": {{time.Second, "AE: busy"}, {2 * time.Second, "AE: busy"}}},
		wantDead:      map[string]string{"a1": "gave up after 3 attempts: AE: still busy"},
	}, {
		name:   "AR makes a dead letter: its key waits, other keys flow",
		msgs:   []string{"a/a1", "a/a2", "b/b1", "b/b2"},
		script: map[string][]reply{"a1": {ar("unknown patient")}},
		steps: []step{
			{at: 0, sent: []string{"a1", "b1"}},
			{at: 0, sent: []string{"b2"}},
			{at: time.Hour, sent: []string{}},
		},
		wantDelivered: []string{"b1", "b2"},
		wantDead:      map[string]string{"a1": "rejected: AR: unknown patient"},
	}, {
		name:   "a replayed dead letter is sent again and releases its key",
		msgs:   []string{"a/a1", "a/a2", "b/b1"},
		script: map[string][]reply{"a1": {ar("unknown patient"), aa}},
		steps: []step{
			{at: 0, sent: []string{"a1", "b1"}},
			{at: time.Minute, sent: []string{}},
			{at: time.Minute, admin: replay("a1"), sent: []string{"a1"}},
			{at: time.Minute, sent: []string{"a2"}},
		},
		wantDelivered: []string{"b1", "a1", "a2"},
		deadLettered:  1,
	}, {
		name:   "a discarded dead letter releases its key",
		msgs:   []string{"a/a1", "a/a2"},
		script: map[string][]reply{"a1": {ar("unknown patient")}},
		steps: []step{
			{at: 0, sent: []string{"a1"}},
			{at: time.Minute, admin: discard("a1"), sent: []string{"a2"}},
		},
		wantDelivered: []string{"a2"},
		deadLettered:  1,
	}, {
		name: "a batch takes at most Batch messages",
		cfg:  func(c *Config) { c.Batch = 2 },
		msgs: []string{"a/a1", "b/b1", "c/c1"},
		steps: []step{
			{at: 0, sent: []string{"a1", "b1"}},
			{at: 0, sent: []string{"c1"}},
		},
		wantDelivered: []string{"a1", "b1", "c1"},
	}, {
		name:  "a message whose lease ended during its batch is not sent but claimed again",
		takes: 40 * time.Second, // of the 1 min lease
		msgs:  []string{"a/a1", "b/b1", "c/c1"},
		steps: []step{
			{at: 0, sent: []string{"a1", "b1"}}, // c1's lease ended at 60 s, the clock is at 80 s
			{at: 80 * time.Second, sent: []string{"c1"}},
		},
		wantDelivered: []string{"a1", "b1", "c1"},
	}}
	for _, tt := range tests {
		for _, batched := range []bool{false, true} {
			name := tt.name + "/one by one"
			if batched {
				name = tt.name + "/batched"
			}
			t.Run(name, func(t *testing.T) { tt.run(t, batched) })
		}
	}
}

// dispatchCase is a scenario of TestDispatch.
type dispatchCase struct {
	name   string
	cfg    func(*Config)
	msgs   []string // key/ctl
	script map[string][]reply
	steps  []step
	takes  time.Duration // how long each send takes on the fake clock

	wantDelivered []string
	wantRetries   map[string][]retry // reason: a substring
	wantDead      map[string]string  // ctl → a substring of its reason
	deadLettered  int                // dead letters made, when more than wantDead (replayed or discarded since)
}

// run plays the scenario, the dispatcher recording outcomes in batches
// or one by one.
func (tt dispatchCase) run(t *testing.T, batched bool) {
	h := newHarnessMode(t, tt.cfg, tt.script, batched)
	h.sender.takes = tt.takes
	h.ids = enqueue(t, h.s, epoch, tt.msgs...)
	ctx := context.Background()
	for i, st := range tt.steps {
		h.clk.set(st.at)
		if st.admin != nil {
			st.admin(t, h)
		}
		if _, err := h.d.DispatchOnce(ctx); err != nil {
			t.Fatalf("step %d: DispatchOnce: %v", i, err)
		}
		if got := h.sender.take(); !slices.Equal(got, st.sent) {
			t.Fatalf("step %d (at %v): sent %v, want %v", i, st.at, got, st.sent)
		}
	}
	if !slices.Equal(h.rec.delivered, tt.wantDelivered) {
		t.Errorf("delivered %v, want %v", h.rec.delivered, tt.wantDelivered)
	}
	if len(h.rec.retries) != len(tt.wantRetries) {
		t.Errorf("retries %v, want %v", h.rec.retries, tt.wantRetries)
	}
	for ctl, want := range tt.wantRetries {
		got := h.rec.retries[ctl]
		if len(got) != len(want) {
			t.Errorf("retries of %s: %v, want %v", ctl, got, want)
			continue
		}
		for i := range want {
			if got[i].delay != want[i].delay || !strings.Contains(got[i].reason, want[i].reason) {
				t.Errorf("retry %d of %s: %v, want %v", i+1, ctl, got[i], want[i])
			}
		}
	}
	dead, err := h.s.DeadLetters(ctx, "pas", 100)
	if err != nil {
		t.Fatal(err)
	}
	gotDead := map[string]string{}
	for _, q := range dead {
		gotDead[q.ControlID] = q.LastError
	}
	if len(gotDead) != len(tt.wantDead) {
		t.Errorf("dead letters %v, want %v", gotDead, tt.wantDead)
	}
	for ctl, want := range tt.wantDead {
		if !strings.Contains(gotDead[ctl], want) {
			t.Errorf("dead letter %s: reason %q, want it to contain %q", ctl, gotDead[ctl], want)
		}
	}
	st := h.d.Status()
	wantDL := max(len(tt.wantDead), tt.deadLettered)
	if st.Delivered != int64(len(tt.wantDelivered)) || st.DeadLettered != int64(wantDL) {
		t.Errorf("Status = %+v; want %d delivered, %d dead-lettered", st, len(tt.wantDelivered), wantDL)
	}
	if (len(tt.wantDelivered) > 0) == st.LastDelivered.IsZero() {
		t.Errorf("Status.LastDelivered = %v after %d deliveries", st.LastDelivered, len(tt.wantDelivered))
	}
	if !st.LastErrorAt.Equal(st.LastDelivered) && st.LastErrorAt.After(st.LastDelivered) == st.FailingSince.IsZero() {
		t.Errorf("Status = %+v: FailingSince must be set exactly when an error followed the last delivery", st)
	}
}

// TestCrash: a dispatcher that sent a message and died before recording
// the outcome leaves it in flight; once the lease ends another dispatcher
// sends it again with the same control id and payload, and the key's next
// message follows.
func TestCrash(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.ids = enqueue(t, h.s, epoch, "a/a1", "a/a2")
	ctx := context.Background()
	h.rec.crashed = true
	if _, err := h.d.DispatchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.sender.take(); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("the dying dispatcher sent %v, want [a1]", got)
	}
	if st := h.d.Status(); !strings.Contains(st.LastError, "the process died") || st.Delivered != 0 {
		t.Errorf("the dying dispatcher's Status = %+v; want the failed recording as its last error", st)
	}

	// The restarted process: a new dispatcher over the same store.
	sender := &fakeSender{}
	d, err := New(h.s, sender, testConfig(h.clk))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at       time.Duration
		sent     []string
		attempts int
	}{
		{at: 59 * time.Second, sent: []string{}}, // the lease holds
		{at: time.Minute, sent: []string{"a1"}, attempts: 2},
		{at: time.Minute, sent: []string{"a2"}, attempts: 1},
	} {
		h.clk.set(tc.at)
		if _, err := d.DispatchOnce(ctx); err != nil {
			t.Fatal(err)
		}
		sent := sender.sent
		if got := sender.take(); !slices.Equal(got, tc.sent) {
			t.Fatalf("at %v the new dispatcher sent %v, want %v", tc.at, got, tc.sent)
		}
		if len(sent) == 1 && (sent[0].Attempts != tc.attempts || string(sent[0].Payload) != string(hl7Payload(tc.sent[0]))) {
			t.Errorf("at %v sent %s attempt %d, payload %q; want attempt %d, the original payload", tc.at, sent[0].ControlID,
				sent[0].Attempts, sent[0].Payload, tc.attempts)
		}
	}
	if b, err := h.s.Backlog(ctx, h.clk.Now()); err != nil || len(b) != 0 {
		t.Errorf("Backlog = %+v, %v; want none left", b, err)
	}
}

// notifySender signals each message it is sent on a channel and accepts
// it; with block set it waits instead for its context to end.
type notifySender struct {
	got   chan store.Queued
	block bool
}

// Send implements Sender.
func (n *notifySender) Send(ctx context.Context, m store.Queued) (Outcome, error) {
	n.got <- m
	if n.block {
		<-ctx.Done()
		return Outcome{}, ctx.Err()
	}
	return Outcome{Result: Accepted}, nil
}

// wait returns the next message sent, failing the test after a while.
func (n *notifySender) wait(t *testing.T) store.Queued {
	t.Helper()
	select {
	case m := <-n.got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing was sent")
		return store.Queued{}
	}
}

// startRun runs d in the background and returns its stop: cancel, then
// the error Run returned (failing the test if it does not return).
func startRun(t *testing.T, d *Dispatcher) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
			return nil
		}
	}
}

// TestRunWakes: with an hour's poll interval, only Wake makes the running
// dispatcher send a message enqueued after it went idle; cancelling stops
// it with nil.
func TestRunWakes(t *testing.T) {
	clk := &clock{t: epoch}
	s := openStore(t)
	sender := &notifySender{got: make(chan store.Queued, 10)}
	cfg := testConfig(clk)
	cfg.PollInterval = time.Hour
	d, err := New(s, sender, cfg)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, epoch, "a/a1")
	stop := startRun(t, d)
	if m := sender.wait(t); m.ControlID != "a1" {
		t.Fatalf("sent %s, want a1", m.ControlID)
	}
	enqueue(t, s, epoch, "b/b1")
	d.Wake()
	if m := sender.wait(t); m.ControlID != "b1" {
		t.Fatalf("sent %s, want b1", m.ControlID)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if st := d.Status(); st.Delivered != 2 {
		t.Errorf("Status = %+v, want 2 delivered", st)
	}
}

// TestRunPolls: without a wake-up the dispatcher finds a message at its
// next poll.
func TestRunPolls(t *testing.T) {
	clk := &clock{t: epoch}
	s := openStore(t)
	sender := &notifySender{got: make(chan store.Queued, 10)}
	cfg := testConfig(clk)
	cfg.PollInterval = 5 * time.Millisecond
	d, err := New(s, sender, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, d)
	defer stop()
	enqueue(t, s, epoch, "a/a1")
	if m := sender.wait(t); m.ControlID != "a1" {
		t.Fatalf("sent %s, want a1", m.ControlID)
	}
}

// TestRunStopsMidSend: cancelling Run while a send waits cuts the send off
// and releases the message, due at once, with the same control id.
func TestRunStopsMidSend(t *testing.T) {
	clk := &clock{t: epoch}
	s := openStore(t)
	sender := &notifySender{got: make(chan store.Queued, 10), block: true}
	d, err := New(s, sender, testConfig(clk))
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, epoch, "a/a1")
	stop := startRun(t, d)
	sender.wait(t)
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	got, err := s.Claim(context.Background(), "pas", clk.Now(), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ControlID != "a1" || got[0].Attempts != 2 ||
		!strings.Contains(got[0].LastError, "stopped while sending") {
		t.Fatalf("Claim after the stop = %+v, %v; want a1 released (attempt 2, reason: stopped)", got, err)
	}
}

// TestConfig checks defaults and each invalid field's error.
func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr []string // substrings; none: valid
	}{
		{name: "defaults", change: func(c *Config) {}},
		{name: "no destination", change: func(c *Config) { c.Destination = "" }, wantErr: []string{"Destination is empty"}},
		{name: "short lease", change: func(c *Config) { c.Lease = time.Millisecond }, wantErr: []string{"Lease is 1ms; it must be at least 1s"}},
		{name: "negative batch", change: func(c *Config) { c.Batch = -1 }, wantErr: []string{"Batch is -1"}},
		{name: "negative poll", change: func(c *Config) { c.PollInterval = -time.Second }, wantErr: []string{"PollInterval is -1s"}},
		{name: "shrinking factor", change: func(c *Config) { c.Backoff.Factor = 0.5 }, wantErr: []string{"Backoff.Factor is 0.5; it must be at least 1"}},
		{name: "cap below base", change: func(c *Config) { c.Backoff.Base, c.Backoff.Max = time.Minute, time.Second },
			wantErr: []string{"Backoff.Max is 1s; it must be at least Backoff.Base (1m0s)"}},
		{name: "base above the default cap", change: func(c *Config) { c.Backoff.Base = time.Hour }},
		{name: "jitter", change: func(c *Config) { c.Backoff.Jitter = 1.5 }, wantErr: []string{"Backoff.Jitter is 1.5; it must be between 0 and 1"}},
		{name: "negative attempts", change: func(c *Config) { c.MaxAttempts = -2 }, wantErr: []string{"MaxAttempts is -2"}},
		{name: "all at once", change: func(c *Config) { c.Destination, c.Batch, c.MaxAttempts = "", -1, -1 },
			wantErr: []string{"Destination", "Batch", "MaxAttempts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Destination: "pas"}
			tt.change(&cfg)
			err := cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want an error with %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
			if _, nerr := New(&recorder{}, &fakeSender{}, cfg); nerr == nil {
				t.Error("New accepted the invalid configuration")
			}
		})
	}
	got := Config{Destination: "pas"}.withDefaults()
	if got.Lease != DefaultLease || got.Batch != DefaultBatch || got.PollInterval != DefaultPollInterval ||
		got.Backoff != (Backoff{Base: DefaultBackoffBase, Factor: DefaultBackoffRatio, Max: DefaultBackoffMax}) {
		t.Errorf("defaults = %+v", got)
	}
}

// TestDelay checks the back-off's growth, cap and jitter.
func TestDelay(t *testing.T) {
	b := Backoff{Base: 2 * time.Second, Factor: 3, Max: time.Minute}
	tests := []struct {
		b       Backoff
		attempt int
		r       float64
		want    time.Duration
	}{
		{b, 1, 0, 2 * time.Second},
		{b, 2, 0, 6 * time.Second},
		{b, 3, 0, 18 * time.Second},
		{b, 4, 0, 54 * time.Second},
		{b, 5, 0, time.Minute},
		{b, 1000, 0, time.Minute}, // no overflow
		{Backoff{Base: time.Second, Factor: 1, Max: time.Minute}, 50, 0, time.Second},
		{Backoff{Base: 2 * time.Second, Factor: 3, Max: time.Minute, Jitter: 0.5}, 1, 0.5, 1500 * time.Millisecond},
		{Backoff{Base: 2 * time.Second, Factor: 3, Max: time.Minute, Jitter: 0.5}, 9, 0.999, time.Minute - time.Duration(0.5*0.999*float64(time.Minute))},
		{Backoff{Base: 2 * time.Second, Factor: 3, Max: time.Minute, Jitter: 1}, 2, 0, 6 * time.Second},
	}
	for _, tt := range tests {
		if got := tt.b.Delay(tt.attempt, tt.r); got != tt.want {
			t.Errorf("%+v.Delay(%d, %v) = %v, want %v", tt.b, tt.attempt, tt.r, got, tt.want)
		}
	}
}
