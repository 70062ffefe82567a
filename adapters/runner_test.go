package adapters_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

type ctxKey struct{}

// worker is background work for a Runner: it records that it ran with
// the start's values, then waits for its context, or for release when
// it is stubborn.
type worker struct {
	started, ended atomic.Int32
	sawValue       atomic.Bool
	release        chan struct{} // nil: ends when its context does
}

func (w *worker) run(ctx context.Context) {
	w.started.Add(1)
	w.sawValue.Store(ctx.Value(ctxKey{}) == "v")
	<-ctx.Done()
	if w.release != nil {
		<-w.release
	}
	w.ended.Add(1)
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunner: the work runs from Start to Stop with the start's values
// but not its cancellation; a second Start is refused; Stop waits for
// the work, says whether there was any, and the Runner starts again.
func TestRunner(t *testing.T) {
	var r adapters.Runner
	if r.Running() {
		t.Fatal("a zero Runner is running")
	}
	if stopped, err := r.Stop(context.Background()); stopped || err != nil {
		t.Fatalf("Stop before Start = %v, %v; want false, nil", stopped, err)
	}
	for round := range 2 { // started, stopped, then started again
		a, b := &worker{}, &worker{}
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
		if err := r.Start(ctx, a.run, b.run); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		cancel() // the start's context ending stops nothing
		waitFor(t, "both workers to start", func() bool { return a.started.Load() == 1 && b.started.Load() == 1 })
		if !a.sawValue.Load() || !b.sawValue.Load() {
			t.Errorf("round %d: the work did not get the start's values", round)
		}
		if !r.Running() {
			t.Errorf("round %d: not running after Start", round)
		}
		if err := r.Start(context.Background(), a.run); !errors.Is(err, adapters.ErrStarted) {
			t.Errorf("round %d: second Start = %v, want ErrStarted", round, err)
		}
		if a.ended.Load() != 0 || b.ended.Load() != 0 {
			t.Fatalf("round %d: the work ended before Stop", round)
		}
		if stopped, err := r.Stop(context.Background()); !stopped || err != nil {
			t.Fatalf("round %d: Stop = %v, %v; want true, nil", round, stopped, err)
		}
		if a.ended.Load() != 1 || b.ended.Load() != 1 {
			t.Errorf("round %d: Stop returned before the work ended", round)
		}
		if r.Running() {
			t.Errorf("round %d: running after Stop", round)
		}
		if stopped, err := r.Stop(context.Background()); stopped || err != nil {
			t.Errorf("round %d: second Stop = %v, %v; want false, nil", round, stopped, err)
		}
	}
}

// TestRunnerStopGivesUp: a Stop whose context ends before the work does
// gives the context's error; the Runner counts as stopped, the work
// ends on its own, and the Runner starts again.
func TestRunnerStopGivesUp(t *testing.T) {
	var r adapters.Runner
	w := &worker{release: make(chan struct{})}
	if err := r.Start(context.Background(), w.run); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if stopped, err := r.Stop(ctx); !stopped || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, %v; want true, deadline exceeded", stopped, err)
	}
	if r.Running() {
		t.Error("running after a Stop that gave up")
	}
	close(w.release)
	waitFor(t, "the work to end", func() bool { return w.ended.Load() == 1 })
	again := &worker{}
	if err := r.Start(context.Background(), again.run); err != nil {
		t.Fatalf("Start after the Stop: %v", err)
	}
	if stopped, err := r.Stop(context.Background()); !stopped || err != nil {
		t.Fatalf("Stop = %v, %v", stopped, err)
	}
}

// TestExchanges: the record says whether the last exchange failed, and
// since when the failures after the last success began.
func TestExchanges(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, tt := range []struct {
		name      string
		oks       []bool // one exchange a minute from t0
		failing   bool
		since, ok time.Time
	}{
		{"none", nil, false, time.Time{}, time.Time{}},
		{"one success", []bool{true}, false, time.Time{}, at(0)},
		{"failures only", []bool{false, false}, true, at(0), time.Time{}},
		{"failures after a success", []bool{true, false, false}, true, at(1), at(0)},
		{"a success after failures", []bool{false, false, true}, false, time.Time{}, at(2)},
		{"failing again", []bool{false, true, false}, true, at(2), at(1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var x adapters.Exchanges
			for i, ok := range tt.oks {
				x.Record(at(i), ok)
			}
			if x.Failing() != tt.failing || !x.FailingSince.Equal(tt.since) || !x.OK.Equal(tt.ok) {
				t.Errorf("failing %v since %v, ok %v; want %v since %v, ok %v", x.Failing(), x.FailingSince, x.OK, tt.failing, tt.since, tt.ok)
			}
		})
	}
}

// TestBacklogOf: an instance's backlog is its destination's only.
func TestBacklogOf(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now().UTC()
	err = s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, m := range []store.Message{{Destination: "mine", Key: "k1", ControlID: "m1"}, {Destination: "mine", Key: "k2", ControlID: "m2"},
			{Destination: "other", Key: "k3", ControlID: "o1"}} {
			m.ContentType, m.Payload, m.Created = "text/plain", []byte("x"), now.Add(-time.Minute)
			if _, err := tx.(store.OutboxTx).Enqueue(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := adapters.BacklogOf(context.Background(), s, now, "mine")
	if len(got) != 1 || got[0].Destination != "mine" || got[0].Pending != 2 {
		t.Errorf("BacklogOf(mine) = %+v, want mine's 2 pending", got)
	}
	if got := adapters.BacklogOf(context.Background(), s, now, "nobody"); len(got) != 0 {
		t.Errorf("BacklogOf(nobody) = %+v, want none", got)
	}
}
