package pas_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/adaptertest"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// TestOutboundToNodePeer: an MLLP server nobody on the project wrote
// (simple-hl7, test/mllp-peer) receives the SIU^S12 and SIU^S15 of a
// booking and its cancellation made through the API, reads in them the
// appointment's id, filler status, NHS number and control id, and
// acknowledges them with its own ACK, which Signpost takes as delivery.
func TestOutboundToNodePeer(t *testing.T) {
	node := adaptertest.Node(t, peerDir, "simple-hl7")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	peer := adaptertest.StartPeer(t, ctx, node, filepath.Join(peerDir, "peer.mjs"), "serve")
	type seen struct {
		Port                                              float64
		Type, Event, Control, SCH1, SCH25, PID3, PID3Type string
	}
	next := func() seen {
		t.Helper()
		var v seen
		peer.Next(&v)
		return v
	}
	port := next().Port
	if port == 0 {
		t.Fatal("the peer did not say its port")
	}
	f := newFixture(t, pas.ModeSignpostConfirmed, func(s *pas.Settings) {
		s.Send = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	})
	id := f.book(0)
	f.setStatus(id, "cancelled", devserver.ClientCallCentre)
	for _, want := range []seen{
		{Type: "SIU", Event: "S12", SCH1: id, SCH25: "Booked", PID3: nhsNumber, PID3Type: "NH"},
		{Type: "SIU", Event: "S15", SCH1: id, SCH25: "Cancelled", PID3: nhsNumber, PID3Type: "NH"},
	} {
		got := next()
		if len(got.Control) != 20 {
			t.Errorf("%s: simple-hl7 read control id %q", want.Event, got.Control)
		}
		got.Control = ""
		if got != want {
			t.Errorf("simple-hl7 read %+v, want %+v", got, want)
		}
	}
	// Its acknowledgements were taken as delivery: nothing waits.
	ctxw, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for {
		st := f.PAS.Status(ctxw)
		if len(st.Backlog) == 0 || (st.Backlog[0].Pending == 0 && st.Backlog[0].InFlight == 0 && st.Backlog[0].Dead == 0) {
			break
		}
		select {
		case <-ctxw.Done():
			t.Fatalf("after simple-hl7's acknowledgements the outbox still holds %+v (%s)", st.Backlog, st.LastError)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
