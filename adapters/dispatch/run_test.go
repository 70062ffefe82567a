package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/store"
)

// failFirst fails each message's first attempt (AE) and accepts the next,
// telling got of every attempt.
type failFirst struct {
	mu    sync.Mutex
	tries map[string]int
	got   chan store.Queued
}

func (f *failFirst) Send(_ context.Context, m store.Queued) (Outcome, error) {
	f.mu.Lock()
	f.tries[m.ControlID]++
	n := f.tries[m.ControlID]
	f.mu.Unlock()
	f.got <- m
	if n == 1 {
		return Outcome{Result: Failed, Reason: "AE: busy"}, nil
	}
	return Outcome{Result: Accepted}, nil
}

// TestRunFollowsBackoffAndKeys: with an hour's poll interval and no
// wake-up after the first, a running dispatcher sends a failed message
// again when its back-off ends, and a key's next message as soon as the
// one before it is delivered.
func TestRunFollowsBackoffAndKeys(t *testing.T) {
	s := openStore(t)
	sender := &failFirst{tries: map[string]int{}, got: make(chan store.Queued, 10)}
	d, err := New(s, sender, Config{Destination: "pas", Lease: time.Minute, Batch: 10, PollInterval: time.Hour,
		Backoff: Backoff{Base: 20 * time.Millisecond, Factor: 2, Max: time.Second}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	enqueue(t, s, now, "a/a1")
	enqueue(t, s, now, "a/a2")
	stop := startRun(t, d)
	defer stop()
	var sent []string
	deadline := time.After(10 * time.Second)
	for len(sent) < 4 {
		select {
		case m := <-sender.got:
			sent = append(sent, m.ControlID)
		case <-deadline:
			t.Fatalf("sent %q in 10 s; want a1 twice then a2 twice, well before the hour's poll", sent)
		}
	}
	if want := []string{"a1", "a1", "a2", "a2"}; !equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBatchCrash: with outcomes recorded in batches, a dispatcher that
// sent a whole batch and died before recording it (the batch's one
// transaction failed) leaves every message of it in flight; once the
// leases end a new dispatcher sends each again, with its control id, and
// the keys' next messages follow. One Settle records a batch's outcomes.
func TestBatchCrash(t *testing.T) {
	h := newHarnessMode(t, nil, nil, true)
	h.ids = enqueue(t, h.s, epoch, "a/a1", "b/b1", "c/c1", "a/a2")
	ctx := context.Background()
	h.rec.crashed = true
	if n, err := h.d.DispatchOnce(ctx); err != nil || n != 3 {
		t.Fatalf("DispatchOnce = %d, %v; want 3", n, err)
	}
	if got := h.sender.take(); !equal(got, []string{"a1", "b1", "c1"}) {
		t.Fatalf("the dying dispatcher sent %v, want [a1 b1 c1]", got)
	}
	if st := h.d.Status(); st.Delivered != 0 || st.LastError == "" {
		t.Errorf("the dying dispatcher's Status = %+v; want nothing delivered and the failed recording as its last error", st)
	}

	// The restarted process: a new dispatcher over the same store.
	h.rec.crashed = false
	sender := &fakeSender{}
	d, err := New(batchRecorder{h.rec}, sender, testConfig(h.clk))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		sent []string
	}{
		{at: 59 * time.Second, sent: []string{}}, // the leases hold
		{at: time.Minute, sent: []string{"a1", "b1", "c1"}},
		{at: time.Minute, sent: []string{"a2"}},
		{at: time.Minute, sent: []string{}},
	} {
		h.clk.set(tc.at)
		if _, err := d.DispatchOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if got := sender.take(); !equal(got, tc.sent) {
			t.Fatalf("at %v the new dispatcher sent %v, want %v", tc.at, got, tc.sent)
		}
	}
	if !equal(h.rec.delivered, []string{"a1", "b1", "c1", "a2"}) || h.rec.batches != 2 {
		t.Errorf("recorded %v in %d Settle calls; want a1 b1 c1 a2 in 2, one per batch", h.rec.delivered, h.rec.batches)
	}
	if b, err := h.s.Backlog(ctx, h.clk.Now()); err != nil || len(b) != 0 {
		t.Errorf("Backlog = %+v, %v; want none left", b, err)
	}
}

// claimCounter counts the claims made on their own (not with outcomes).
type claimCounter struct {
	batchRecorder
	mu     sync.Mutex
	claims int
}

func (c *claimCounter) Claim(ctx context.Context, dest string, now time.Time, lease time.Duration, limit int) ([]store.Queued, error) {
	c.mu.Lock()
	c.claims++
	c.mu.Unlock()
	return c.batchRecorder.Claim(ctx, dest, now, lease, limit)
}

// TestRunSettlesWithNextClaim: a running dispatcher records each batch's
// outcomes in the transaction that claims the next batch: a key of three
// messages takes one claim of its own and three Settle calls (the third
// claiming nothing), and every message is recorded delivered, in order.
func TestRunSettlesWithNextClaim(t *testing.T) {
	h := newHarnessMode(t, nil, nil, true)
	cc := &claimCounter{batchRecorder: batchRecorder{h.rec}}
	sender := &notifySender{got: make(chan store.Queued, 10)}
	cfg := testConfig(h.clk)
	cfg.PollInterval = time.Hour
	d, err := New(cc, sender, cfg)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, h.s, epoch, "a/a1", "a/a2", "a/a3")
	stop := startRun(t, d)
	for _, want := range []string{"a1", "a2", "a3"} {
		if m := sender.wait(t); m.ControlID != want {
			t.Fatalf("sent %s, want %s", m.ControlID, want)
		}
	}
	// a3's outcome is recorded by the Settle that finds nothing more.
	deadline := time.Now().Add(10 * time.Second)
	for d.Status().Delivered < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !equal(h.rec.delivered, []string{"a1", "a2", "a3"}) || h.rec.batches != 3 || cc.claims != 1 {
		t.Errorf("delivered %v with %d Settle calls and %d claims; want a1 a2 a3, 3 and 1", h.rec.delivered, h.rec.batches, cc.claims)
	}
}
