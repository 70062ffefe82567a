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
