package main

import (
	"bytes"
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/domain/booking/bookingtest"
)

// TestBookingSurvivesSIGKILL runs issue 4's stress workload (the one
// domain/booking's TestStress runs in process: 64 clients booking 2,000 slots
// over 40 services, cancelling and rescheduling some of what they book)
// against `signpost serve`, kills the server with SIGKILL in the middle of
// the run, once bookings, cancels and reschedules have all been
// acknowledged and while slots are still being taken, and restarts it on
// the same data. Then every acknowledged outcome is there (each 201's
// appointment; each cancel; each reschedule's old appointment cancelled
// and new one booked), `signpost check` finds nothing, and the live
// appointments are as many as the busy slots, within what the
// acknowledgements allow.
func TestBookingSurvivesSIGKILL(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data, "--open")
	w := bookingtest.Issue4() // 20,000 attempts; the kill comes well before their end
	w.ServerMayVanish = true
	if err := w.Seed(t.Context(), p.base+"/fhir"); err != nil {
		t.Fatal(err)
	}

	run := w.Start(t.Context(), p.base+"/fhir")
	// Half the slots booked: the run is in full flow, bookings still
	// succeeding more often than not.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	err := waitFor(ctx, func() bool {
		c := run.Progress()
		return c.Booked >= w.Slots/2 && c.Cancelled > 0 && c.Rescheduled > 0
	})
	cancel()
	if err != nil {
		t.Errorf("before the kill: %v: %v", err, run.Progress())
	}
	p.signal(t, syscall.SIGKILL)
	res := run.Wait()
	p.wait(t, 10*time.Second)
	t.Logf("acknowledged before SIGKILL, in %v: %v", res.Elapsed.Round(time.Millisecond), res.Counts)
	for _, err := range res.Errors {
		t.Error(err)
	}
	if res.Booked == 0 || res.Cancelled == 0 || res.Rescheduled == 0 {
		t.Fatalf("bookings, cancels and reschedules were not all acknowledged before the kill: %v", res.Counts)
	}
	if res.Attempts >= w.Attempts || res.Unanswered == 0 {
		t.Fatalf("the run was not under way at the kill: %v", res.Counts)
	}

	p = startSignpost(t, bin, data, "--open")
	for _, err := range w.Verify(t.Context(), p.base+"/fhir", res) {
		t.Error(err)
	}
	out, err := exec.Command(bin, "check", "--data", data).CombinedOutput()
	if err != nil {
		t.Errorf("signpost check after the crash: %v\n%s", err, out)
	}
	live, busy, err := w.Census(t.Context(), p.base+"/fhir")
	if err != nil {
		t.Fatal(err)
	}
	if live != busy {
		t.Errorf("after the restart: %d live appointments but %d busy slots", live, busy)
	}
	if lo, hi := res.LiveBounds(); live < lo || live > hi {
		t.Errorf("after the restart: %d live appointments, want between %d (acknowledged) and %d (with every unanswered request applied)", live, lo, hi)
	}
	t.Logf("after the restart: %d live appointments, %d busy slots; check: %s", live, busy, bytes.TrimSpace(out))
}
