package adapters

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/store"
)

// ErrStarted is what starting an instance that is already running gives.
var ErrStarted = errors.New("already started")

// Runner runs the background work of an adapter instance (its listeners,
// pollers and dispatchers) between the instance's Start and Stop, so that
// every kind starts, stops and reports its work alike. The zero Runner is
// stopped; it can be started again after a Stop.
type Runner struct {
	mu     sync.Mutex
	cancel context.CancelFunc // nil while stopped
	done   chan struct{}      // closed when the started work has ended
}

// Start runs each of work in a goroutine of its own, given a context that
// keeps ctx's values but not its deadline or cancellation: the work runs
// until Stop. It gives ErrStarted when the work is already running.
func (r *Runner) Start(ctx context.Context, work ...func(context.Context)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return ErrStarted
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	var wg sync.WaitGroup
	for _, w := range work {
		wg.Go(func() { w(run) })
	}
	go func() { wg.Wait(); close(done) }()
	return nil
}

// Stop ends the work and waits for it within ctx. It reports whether
// there was work to stop (false when the Runner was not started or is
// already stopped), and ctx's error when ctx ended before the work did:
// the Runner counts as stopped from the moment Stop is called, and the
// work still ends, on its own.
func (r *Runner) Stop(ctx context.Context) (stopped bool, err error) {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return false, nil
	}
	cancel()
	select {
	case <-done:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// Running reports whether the work is started and not stopped, for the
// instance's Status (StateStopped when it is not).
func (r *Runner) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancel != nil
}

// Exchanges is an instance's record of its exchanges with a peer system
// (a booking asked, a poll), for its Status: when the last succeeded,
// when the last failed, and when the failures since that success began.
// The instance guards it with its own lock.
type Exchanges struct {
	OK, Fail, FailingSince time.Time
}

// Record notes an exchange at now that succeeded (ok) or failed.
func (x *Exchanges) Record(now time.Time, ok bool) {
	if ok {
		x.OK, x.FailingSince = now, time.Time{}
		return
	}
	x.Fail = now
	if x.FailingSince.IsZero() {
		x.FailingSince = now
	}
}

// Failing reports whether the last exchange failed.
func (x Exchanges) Failing() bool { return x.Fail.After(x.OK) }

// BacklogOf is what waits in st's outbox for destination (an instance's
// name), for its Status; nil when the store keeps no outbox or cannot
// say.
func BacklogOf(ctx context.Context, st store.Store, now time.Time, destination string) []store.Backlog {
	ob, ok := st.(store.Outbox)
	if !ok {
		return nil
	}
	backlog, err := ob.Backlog(ctx, now)
	if err != nil {
		return nil
	}
	var out []store.Backlog
	for _, b := range backlog {
		if b.Destination == destination {
			out = append(out, b)
		}
	}
	return out
}
