package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/store"
)

// fakeExchanger answers with ack or err and records what it was sent.
type fakeExchanger struct {
	ack  []byte
	err  error
	sent [][]byte
}

// Send implements Exchanger.
func (f *fakeExchanger) Send(ctx context.Context, msg []byte) ([]byte, error) {
	f.sent = append(f.sent, msg)
	return f.ack, f.err
}

// ackOf is an acknowledgement with MSA fields msa (MSA-1|MSA-2|…) and any
// further segments.
func ackOf(msa string, more ...string) []byte {
	s := "MSH|^~\\&|PAS|RH8|SIGNPOST|RH8|20260301090001||ACK^S12^ACK|ack-1|P|2.5.1\rMSA|" + msa + "\r"
	for _, m := range more {
		s += m + "\r"
	}
	return []byte(s)
}

// TestHL7Sender maps acknowledgements (and failures to get one) to
// outcomes.
func TestHL7Sender(t *testing.T) {
	orig, err := hl7v2.Parse(hl7Payload("ctl-1"))
	if err != nil {
		t.Fatal(err)
	}
	built, err := hl7v2.BuildAck(orig, hl7v2.Ack{Outcome: hl7v2.OutcomeReject, Text: "cannot apply",
		Issues: []*hl7v2.Issue{{Location: hl7v2.Path{Segment: "PID", SegRep: 1, Field: 3}, Code: "204", Text: "unknown patient"}}})
	if err != nil {
		t.Fatal(err)
	}
	transport := fmt.Errorf("mllp: connecting to pas.example:2576: %w", errors.New("connection refused"))
	tests := []struct {
		name       string
		payload    []byte
		ack        []byte
		err        error
		want       Result
		wantReason string // a substring
		wantErr    error
		notSent    bool
	}{
		{name: "AA", ack: ackOf("AA|ctl-1"), want: Accepted},
		{name: "CA", ack: ackOf("CA|ctl-1"), want: Accepted},
		{name: "AE with text", ack: ackOf("AE|ctl-1|slot locked"), want: Failed, wantReason: "AE: slot locked"},
		{name: "CE", ack: ackOf("CE|ctl-1"), want: Failed, wantReason: "CE"},
		{name: "AR with an ERR segment", ack: ackOf("AR|ctl-1", "ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||no such patient"),
			want: Rejected, wantReason: "AR: no such patient (PID-3)"},
		{name: "AR built by our codec", ack: built.Encode(), want: Rejected, wantReason: "AR: cannot apply; unknown patient (PID-3)"},
		{name: "CR", ack: ackOf("CR|ctl-1"), want: Rejected, wantReason: "CR"},
		{name: "MSA-2 answers another message", ack: ackOf("AA|ctl-0"), want: Failed,
			wantReason: `the acknowledgement (AA) answers control id "ctl-0" (MSA-2), not "ctl-1"`},
		{name: "AR for another message", ack: ackOf("AR|ctl-0"), want: Failed, wantReason: `answers control id "ctl-0"`},
		{name: "no MSA", ack: ackOf("AA|ctl-1")[:strings.Index(string(ackOf("AA|ctl-1")), "MSA")], want: Failed, wantReason: "no MSA segment"},
		{name: "not HL7", ack: []byte("HTTP/1.1 400 Bad Request\r\n"), want: Failed, wantReason: "the acknowledgement cannot be read"},
		{name: "unknown code", ack: ackOf("XX|ctl-1"), want: Failed, wantReason: `MSA-1) "XX" is not one of`},
		{name: "transport error", err: transport, wantErr: transport},
		{name: "ACK timeout", err: fmt.Errorf("%w from pas.example:2576 (30s)", mllp.ErrAckTimeout), wantErr: mllp.ErrAckTimeout},
		{name: "payload's MSH-10 is not the control id", payload: hl7Payload("ctl-2"), want: Rejected,
			wantReason: `the payload's MSH-10 is "ctl-2", not the message's control id "ctl-1"`, notSent: true},
		{name: "payload is not HL7", payload: []byte(`{"resourceType":"Appointment"}`), want: Rejected,
			wantReason: "the payload is not an HL7 v2 message", notSent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := &fakeExchanger{ack: tt.ack, err: tt.err}
			payload := tt.payload
			if payload == nil {
				payload = hl7Payload("ctl-1")
			}
			m := store.Queued{ID: 1, Message: store.Message{Destination: "pas", Key: "k", ControlID: "ctl-1", Payload: payload}}
			out, err := HL7{Client: ex}.Send(context.Background(), m)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Send = %+v, %v; want the error %v", out, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if out.Result != tt.want || !strings.Contains(out.Reason, tt.wantReason) {
				t.Errorf("Send = %v %q, want %v with %q", out.Result, out.Reason, tt.want, tt.wantReason)
			}
			if tt.want == Accepted && out.Reason != "" {
				t.Errorf("an accepted message has the reason %q", out.Reason)
			}
			if sent := len(ex.sent) > 0; sent == tt.notSent {
				t.Errorf("sent: %v, want %v", sent, !tt.notSent)
			}
		})
	}
}

// peer is a scripted PAS stand-in on an mllp.Server: for each control id
// it answers the codes of its script in turn ("none" answers nothing, so
// the client times out), then AA. It applies a message on its first AA and
// de-duplicates by control id, as a PAS should.
type peer struct {
	mu       sync.Mutex
	script   map[string][]string
	received map[string][]string // by key (SCH-1's prefix) the control ids received
	applied  map[string]int
}

// handle is the peer's mllp.Handler.
func (p *peer) handle(ctx context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
	msg, err := hl7v2.Parse(raw)
	if err != nil {
		return nil, err
	}
	ctl := msg.ControlID()
	p.mu.Lock()
	defer p.mu.Unlock()
	key := ctl[:1]
	p.received[key] = append(p.received[key], ctl)
	code := "AA"
	if s := p.script[ctl]; len(s) > 0 {
		code, p.script[ctl] = s[0], s[1:]
	}
	outcome := map[string]hl7v2.Outcome{"AA": hl7v2.OutcomeAccept, "AE": hl7v2.OutcomeError, "AR": hl7v2.OutcomeReject}
	if code == "none" {
		return nil, nil
	}
	if code == "AA" && p.applied[ctl] == 0 {
		p.applied[ctl]++
	}
	ack, err := hl7v2.BuildAck(msg, hl7v2.Ack{Outcome: outcome[code], Text: "scripted " + code})
	if err != nil {
		return nil, err
	}
	return ack.Encode(), nil
}

// TestEndToEnd delivers through the SQLite outbox, the MLLP client and an
// mllp.Server answering from a script: AE and an ACK timeout are retried,
// AR dead-letters and holds its key while others flow, a replay releases
// it; the peer receives each key's messages in order and applies each
// once.
func TestEndToEnd(t *testing.T) {
	p := &peer{
		script:   map[string][]string{"a1": {"AE"}, "b1": {"AR"}, "c1": {"none"}},
		received: map[string][]string{},
		applied:  map[string]int{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	srv := &mllp.Server{Handler: p.handle, AllowAnyPeer: true, Logger: testConfig(&clock{}).Logger}
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	clk := &clock{t: epoch}
	s := openStore(t)
	client := &mllp.Client{Addr: ln.Addr().String(), DialTimeout: 5 * time.Second, AckTimeout: 2 * time.Second}
	defer client.Close()
	d, err := New(s, HL7{Client: client}, testConfig(clk))
	if err != nil {
		t.Fatal(err)
	}
	ids := enqueue(t, s, epoch, "a/a1", "a/a2", "b/b1", "b/b2", "c/c1")
	round := func(at time.Duration, want int) {
		t.Helper()
		clk.set(at)
		n, err := d.DispatchOnce(context.Background())
		if err != nil || n != want {
			t.Fatalf("DispatchOnce at %v = %d, %v; want %d claimed", at, n, err, want)
		}
	}
	round(0, 3) // a1 AE, b1 AR, c1 no answer
	dead, err := s.DeadLetters(context.Background(), "pas", 10)
	if err != nil || len(dead) != 1 || dead[0].ControlID != "b1" || !strings.Contains(dead[0].LastError, "AR: scripted AR") {
		t.Fatalf("DeadLetters = %+v, %v; want b1 rejected with the peer's text", dead, err)
	}
	round(500*time.Millisecond, 0)
	round(time.Second, 2) // a1 and c1 again: AA
	round(time.Second, 1) // a2
	round(time.Second, 0) // b2 waits behind b1
	if err := s.Replay(context.Background(), ids["b1"], clk.Now()); err != nil {
		t.Fatal(err)
	}
	round(time.Second, 1) // b1
	round(time.Second, 1) // b2
	round(time.Hour, 0)

	p.mu.Lock()
	defer p.mu.Unlock()
	for key, want := range map[string][]string{"a": {"a1", "a1", "a2"}, "b": {"b1", "b1", "b2"}, "c": {"c1", "c1"}} {
		if got := p.received[key]; !slices.Equal(got, want) {
			t.Errorf("the peer received %v for key %s, want %v", got, key, want)
		}
	}
	for _, ctl := range []string{"a1", "a2", "b1", "b2", "c1"} {
		if p.applied[ctl] != 1 {
			t.Errorf("the peer applied %s %d times, want once", ctl, p.applied[ctl])
		}
	}
	if b, err := s.Backlog(context.Background(), clk.Now()); err != nil || len(b) != 0 {
		t.Errorf("Backlog = %+v, %v; want nothing left", b, err)
	}
	if st := d.Status(); st.Delivered != 5 || st.Retried != 2 || st.DeadLettered != 1 {
		t.Errorf("Status = %+v; want 5 delivered, 2 retried, 1 dead-lettered", st)
	}
}
