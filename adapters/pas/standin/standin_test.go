package standin_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/adapters/pas/standin"
)

// syncBuffer is a bytes.Buffer safe for the stand-in's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T) (*standin.PAS, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	p, err := standin.Start("127.0.0.1:0", out)
	if err != nil {
		t.Fatal(err)
	}
	p.Facility, p.SignpostFacility = "R9901", "R9901"
	t.Cleanup(func() { _ = p.Close() })
	return p, out
}

// TestAcknowledgesAndLogs: every message Signpost sends is answered AA
// (its control id in MSA-2) and logged in one readable line; a message
// that is not HL7 v2 gets no acknowledgement and a line saying so.
func TestAcknowledgesAndLogs(t *testing.T) {
	p, out := start(t)
	c := &mllp.Client{Addr: p.Addr(), AckTimeout: 10 * time.Second}
	defer c.Close()
	msgs := []string{
		"MSH|^~\\&|SIGNPOST|R9901|PAS|R9901|20261207100000||SIU^S12^SIU_S12|OUT-1|P|2.5.1\rSCH|appt-1^SIGNPOST" + strings.Repeat("|", 24) + "Booked\rPID|1||9990000018^^^NHS^NH~P1^^^PAS^PI\rAIS|1||394579002^Cardiology^SCT|20261208140000+0000\rAIL|1||KB-CARD",
		"MSH|^~\\&|SIGNPOST|R9901|PAS|R9901|20261207100000||SIU^S15^SIU_S12|OUT-2|P|2.5.1\rSCH|appt-1^SIGNPOST|F1^PAS" + strings.Repeat("|", 23) + "Cancelled",
	}
	for _, m := range msgs {
		raw, err := c.Send(context.Background(), []byte(m))
		if err != nil {
			t.Fatal(err)
		}
		ack, err := hl7v2.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		sent, _ := hl7v2.Parse([]byte(m))
		if ack.Get("MSA-1") != "AA" || ack.Get("MSA-2") != sent.ControlID() {
			t.Errorf("acknowledgement %q of %s", ack.Encode(), sent.ControlID())
		}
	}
	if got := len(p.Received()); got != 2 {
		t.Errorf("received %d messages, want 2", got)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"demo PAS ← SIU^S12 OUT-1, appointment appt-1, patient 9990000018 (NH), P1 (PI), at 2026-12-08 14:00 +0000, clinic KB-CARD, status Booked → ACK AA",
		"demo PAS ← SIU^S15 OUT-2, appointment appt-1, PAS appointment F1, status Cancelled → ACK AA",
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %q", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	if _, err := c.Send(context.Background(), []byte("not HL7")); err == nil {
		t.Error("a message that is not HL7 v2 was acknowledged")
	}
	if !strings.Contains(out.String(), "← a message it cannot read") {
		t.Errorf("the unreadable message was not logged: %q", out.String())
	}
}

// TestSendsBooking: BookingMessage builds an SIU^S12 that parses with
// the patient, times and clinic where a receiver looks for them, and
// Send delivers it to a listener, logging the listener's answer.
func TestSendsBooking(t *testing.T) {
	p, out := start(t)
	var mu sync.Mutex
	var got []*hl7v2.Message
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	srv := &mllp.Server{AllowAnyPeer: true, Handler: func(_ context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
		m, err := hl7v2.Parse(raw)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		ack, err := hl7v2.BuildAck(m, hl7v2.Ack{Outcome: hl7v2.OutcomeReject, Text: "not today"})
		if err != nil {
			return nil, err
		}
		return ack.Encode(), nil
	}}
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	start := time.Date(2026, 12, 8, 14, 0, 0, 0, time.UTC)
	msg, err := p.BookingMessage(standin.Booking{ControlID: "PAS-1", AppointmentID: "F100", NHSNumber: "9990000018", PASNumber: "P100001",
		Family: "Jones", Given: "Ann", BirthDate: time.Date(1980, 5, 17, 0, 0, 0, 0, time.UTC), Sex: "F", Clinic: "KB-CARD",
		ServiceCode: "394579002", ServiceName: "Cardiology", ServiceSystem: "SCT", Start: start, Minutes: 30, Sent: start.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := p.Send(context.Background(), ln.Addr().String(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Get("MSA-1") != "AR" {
		t.Errorf("acknowledgement %q", ack.Encode())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the listener received %d messages", len(got))
	}
	m := got[0]
	checks := map[string]string{
		"MSH-3": "PAS", "MSH-4": "R9901", "MSH-5": "SIGNPOST", "MSH-9.1": "SIU", "MSH-9.2": "S12", "MSH-10": "PAS-1", "MSH-12": "2.5.1",
		"SCH-2.1": "F100", "SCH-25.1": "Booked", "SCH-11.4": "20261208140000+0000", "SCH-11.5": "20261208143000+0000",
		"PID-3[1].1": "9990000018", "PID-3[1].4": "NHS", "PID-3[1].5": "NH", "PID-3[2].1": "P100001", "PID-3[2].5": "PI",
		"PID-5.1": "Jones", "PID-7": "19800517", "AIS-3.1": "394579002", "AIS-4": "20261208140000+0000", "AIS-7": "30",
		"AIL-3.1": "KB-CARD", "AIL-6": "20261208140000+0000",
	}
	for path, want := range checks {
		if v := m.Get(path); v != want {
			t.Errorf("%s = %q, want %q", path, v, want)
		}
	}
	if err := m.CheckHeader(); err != nil {
		t.Errorf("header: %v", err)
	}
	if line := strings.TrimSpace(out.String()); !strings.HasPrefix(line, "demo PAS → SIU^S12 PAS-1, PAS appointment F100") || !strings.HasSuffix(line, "← ACK AR: not today") {
		t.Errorf("logged %q", line)
	}
	if _, err := p.BookingMessage(standin.Booking{}); err == nil {
		t.Error("a booking without a control id was built")
	}
}
