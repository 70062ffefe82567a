package pas_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/store"
)

// TestStatusPASAway: an instance whose PAS is away is degraded, its
// detail saying since when, even when nothing waits in its outbox (a
// pas-confirmed booking refused for want of an answer); once the PAS is
// back and a message is delivered, it is up again.
func TestStatusPASAway(t *testing.T) {
	for _, c := range []struct {
		mode string
		book func(f *fixture) // a booking while the PAS is away
	}{
		{pas.ModeSignpostConfirmed, func(f *fixture) { f.book(0) }},
		{pas.ModePASConfirmed, func(f *fixture) {
			if st, out := f.Do(f.Token(devserver.ClientCallCentre, apptest.SystemScopes), "POST", "/Appointment", bookBody("Slot/slot-0", "booked")); st != http.StatusGatewayTimeout {
				f.T.Fatalf("booking while the PAS is away: %d %v, want 504", st, out)
			}
		}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			f := newFixture(t, c.mode, nil)
			if st := f.status(); st.State != adapters.StateUp {
				t.Fatalf("at the start: %+v, want up", st)
			}
			before := time.Now().UTC().Truncate(time.Second)
			f.Peer.Stop()
			c.book(f)
			st := f.waitStatus(func(st adapters.Status) bool {
				return st.State == adapters.StateDegraded && strings.Contains(st.Detail, "fail since")
			})
			since, err := time.Parse(time.RFC3339, strings.Fields(strings.SplitN(st.Detail, "fail since ", 2)[1])[0])
			if err != nil || since.Before(before) || since.After(time.Now()) {
				t.Errorf("detail %q: since %v (%v), want a time from %v on", st.Detail, since, err, before)
			}
			if !strings.Contains(st.Detail, "none has succeeded yet") {
				t.Errorf("detail %q does not say that nothing has succeeded", st.Detail)
			}
			if st.LastError == "" || st.LastErrorAt.IsZero() {
				t.Errorf("status %+v: no last error", st)
			}
			f.Peer.Restart()
			f.Peer.WaitApplied(1) // the S12, or the S04 cancelling the refused booking
			f.waitStatus(func(st adapters.Status) bool { return st.State == adapters.StateUp && st.Detail == "" })
		})
	}
}

// TestStatusListenerDown: an instance whose listener cannot serve is
// down, its detail saying since when, while the server goes on.
func TestStatusListenerDown(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	pas.FailListener(f.PAS, fmt.Errorf("accept: too many open files"))
	st := f.status()
	if st.State != adapters.StateDown || !strings.Contains(st.Detail, "listener failed at ") || !strings.Contains(st.LastError, "too many open files") {
		t.Errorf("status %+v, want down with the listener's failure", st)
	}
}

// TestReplayWakes: $adapter-replay delivers the dead letter at once: the
// instance's dispatcher is woken (adapters.Waker), not left to its next
// poll, which here is an hour away.
func TestReplayWakes(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, func(s *pas.Settings) { s.PollInterval = adapters.Duration(time.Hour) })
	f.Peer.Answer(func(*hl7v2.Message) hl7v2.Ack { return hl7v2.Ack{Outcome: hl7v2.OutcomeReject, Text: "clinic closed"} })
	f.book(0)
	dead := f.waitDead(f.App.Store.(store.Outbox), 1)
	f.Peer.Answer(nil)
	op := f.Mint(devserver.TokenOptions{Client: devserver.ClientOperator})
	if st, out := f.Do(op, "POST", "/$"+adapters.OpReplay, map[string]any{"resourceType": "Parameters",
		"parameter": []any{map[string]any{"name": "id", "valueString": fmt.Sprint(dead[0].ID)}}}); st != http.StatusOK {
		t.Fatalf("$%s: %d %v", adapters.OpReplay, st, out)
	}
	if got := f.Peer.WaitApplied(1); got[0].ControlID() != dead[0].ControlID {
		t.Errorf("applied %s, want the replayed %s", got[0].ControlID(), dead[0].ControlID)
	}
}

// status is the instance's status.
func (f *fixture) status() adapters.Status { return f.PAS.Status(context.Background()) }

// waitStatus waits up to 10 s for the instance's status to satisfy ok
// and returns it.
func (f *fixture) waitStatus(ok func(adapters.Status) bool) adapters.Status {
	f.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := f.status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			f.T.Fatalf("status %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
