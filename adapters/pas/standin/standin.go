// Package standin is a hospital PAS stand-in for demonstrations (serve
// --demo, docs/pas.md): a small MLLP peer that acknowledges and logs,
// one readable line each, every message Signpost sends it, and that sends
// Signpost what a PAS would (an SIU^S12 for an appointment booked in the
// PAS). It speaks raw HL7 v2 through adapters/hl7v2 and adapters/mllp, and
// knows nothing of how Signpost applies what it sends: it is the other
// side of the wire. It is not a PAS: it stores nothing and accepts
// everything.
package standin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
)

// PAS is a running stand-in.
type PAS struct {
	// Name starts every line it logs ("demo PAS").
	Name string
	// Application and Facility are its MSH-3 and MSH-4 in what it sends;
	// Signpost's are MSH-5 and MSH-6.
	Application, Facility      string
	Signpost, SignpostFacility string

	out    io.Writer
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	received []*hl7v2.Message
	arrived  chan struct{}
}

// Start listens on addr (host:port; loopback, port 0 for a free one),
// accepting connections from loopback only, and logs to out. Every
// message that parses is answered AA; of one that does not, the line
// logged says why, and the MLLP server closes the connection.
func Start(addr string, out io.Writer) (*PAS, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PAS stand-in: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &PAS{Name: "demo PAS", Application: "PAS", Signpost: "SIGNPOST", out: out, ln: ln, cancel: cancel,
		done: make(chan struct{}), arrived: make(chan struct{}, 1)}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	srv := &mllp.Server{Handler: p.handle, AllowedPeers: loopback}
	go func() { defer close(p.done); _ = srv.Serve(ctx, ln) }()
	return p, nil
}

// Addr is the stand-in's host:port, for the adapter's settings.send.
func (p *PAS) Addr() string { return p.ln.Addr().String() }

// Close stops the listener and waits for it.
func (p *PAS) Close() error {
	p.cancel()
	<-p.done
	return nil
}

// logf writes one line.
func (p *PAS) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, p.Name+" "+format+"\n", args...)
}

// handle acknowledges and logs one message from Signpost.
func (p *PAS) handle(_ context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
	msg, err := hl7v2.Parse(raw)
	if err != nil {
		p.logf("← a message it cannot read (%v): connection closed", err)
		return nil, err
	}
	ack, err := hl7v2.BuildAck(msg, hl7v2.Ack{Outcome: hl7v2.OutcomeAccept})
	if err != nil {
		p.logf("← %s: cannot acknowledge it (%v)", Describe(msg), err)
		return nil, err
	}
	p.mu.Lock()
	p.received = append(p.received, msg)
	p.mu.Unlock()
	select {
	case p.arrived <- struct{}{}:
	default:
	}
	p.logf("← %s → ACK AA", Describe(msg))
	return ack.Encode(), nil
}

// Received returns the messages it has acknowledged, in order.
func (p *PAS) Received() []*hl7v2.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*hl7v2.Message(nil), p.received...)
}

// Arrived is signalled (without blocking, so possibly once for several)
// when a message has been acknowledged.
func (p *PAS) Arrived() <-chan struct{} { return p.arrived }

// Send sends msg to Signpost's listener at addr and returns the
// acknowledgement, logging both in one line.
func (p *PAS) Send(ctx context.Context, addr string, msg *hl7v2.Message) (*hl7v2.Message, error) {
	c := &mllp.Client{Addr: addr, AckTimeout: 30 * time.Second}
	defer c.Close()
	raw, err := c.Send(ctx, msg.Encode())
	if err != nil {
		p.logf("→ %s: not delivered (%v)", Describe(msg), err)
		return nil, err
	}
	ack, err := hl7v2.Parse(raw)
	if err != nil {
		p.logf("→ %s: the answer is not HL7 v2 (%v)", Describe(msg), err)
		return nil, err
	}
	line := "→ " + Describe(msg) + " ← ACK " + ack.Get("MSA-1")
	if text := ack.Get("MSA-3"); text != "" {
		line += ": " + text
	}
	if text := ack.Get("ERR-8"); text != "" {
		line += " (" + text + ")"
	}
	p.logf("%s", line)
	return ack, nil
}

// Describe is one readable line about an SIU, SRM or ADT message: type,
// control id, appointment ids, patient, time, clinic and status, as far
// as the message carries them.
func Describe(m *hl7v2.Message) string {
	code, event := m.Type()
	var b strings.Builder
	fmt.Fprintf(&b, "%s^%s %s", code, event, m.ControlID())
	add := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, ", %s %s", label, v)
		}
	}
	switch code {
	case "SIU", "SRM", "SRR":
		add("appointment", m.Get("SCH-1.1"))
		add("PAS appointment", m.Get("SCH-2.1"))
		add("referral", m.Get("SCH-26.1"))
	}
	add("patient", patientIDs(m))
	start := m.Get("AIS-4")
	if start == "" {
		start = m.Get("AIL-6")
	}
	if start == "" {
		start = m.Get("SCH-11.4")
	}
	if t, err := hl7v2.ParseTime(start, time.Local); err == nil {
		start = t.Format("2006-01-02 15:04 -0700")
	}
	add("at", start)
	add("clinic", m.Get("AIL-3.1"))
	add("status", m.Get("SCH-25.1"))
	return b.String()
}

// patientIDs lists PID-3's identifiers with their types ("9990000018
// (NH), P100001 (PI)").
func patientIDs(m *hl7v2.Message) string {
	var ids []string
	for i := 1; i <= m.Count("PID-3"); i++ {
		id := m.Get(fmt.Sprintf("PID-3[%d].1", i))
		if id == "" {
			continue
		}
		if typ := m.Get(fmt.Sprintf("PID-3[%d].5", i)); typ != "" {
			id += " (" + typ + ")"
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, ", ")
}

// Booking is an appointment booked in the PAS, for BookingMessage.
type Booking struct {
	ControlID                               string // MSH-10: the same booking sent again keeps it
	AppointmentID                           string // SCH-2: the PAS's (filler) appointment id
	NHSNumber                               string
	PASNumber                               string
	Family, Given                           string
	BirthDate                               time.Time
	Sex                                     string // F, M or U
	Clinic                                  string // AIL-3: the PAS's clinic code
	ServiceCode, ServiceName, ServiceSystem string // AIS-3, e.g. 394579002, Cardiology, SCT
	Start                                   time.Time
	Minutes                                 int
	Sent                                    time.Time // MSH-7
}

// RegistrationMessage builds the ADT^A04 (register a patient) a PAS sends
// for the patient of b, with control id controlID: PID as BookingMessage
// writes it, and PV1 for an outpatient at b's clinic.
func (p *PAS) RegistrationMessage(controlID string, b Booking) (*hl7v2.Message, error) {
	if controlID == "" {
		return nil, errors.New("a registration message needs its control id")
	}
	return p.build(append([][2]string{
		{"MSH-9.1", "ADT"}, {"MSH-9.2", "A04"}, {"MSH-9.3", "ADT_A01"}, {"MSH-10", controlID},
		{"EVN-1", "A04"}, {"EVN-2", hl7v2.FormatTime(b.Sent)},
	}, append(p.pid(b), [2]string{"PV1-1", "1"}, [2]string{"PV1-2", "O"}, [2]string{"PV1-3.1", b.Clinic}, [2]string{"PV1-3.4", p.Facility})...), b)
}

// pid is the PID segment's fields for the patient of b.
func (p *PAS) pid(b Booking) [][2]string {
	return [][2]string{
		{"PID-1", "1"},
		{"PID-3[1].1", b.NHSNumber}, {"PID-3[1].4", "NHS"}, {"PID-3[1].5", "NH"},
		{"PID-3[2].1", b.PASNumber}, {"PID-3[2].4", p.Application}, {"PID-3[2].5", "PI"},
		{"PID-5.1", b.Family}, {"PID-5.2", b.Given}, {"PID-7", b.BirthDate.Format("20060102")}, {"PID-8", b.Sex},
	}
}

// build makes a message from the PAS to Signpost (version 2.5.1) with the
// header fields every message carries and sets, in order; empty values
// are left out.
func (p *PAS) build(sets [][2]string, b Booking) (*hl7v2.Message, error) {
	m, err := hl7v2.NewMessage(hl7v2.DefaultDelimiters)
	if err != nil {
		return nil, err
	}
	head := [][2]string{
		{"MSH-3", p.Application}, {"MSH-4", p.Facility}, {"MSH-5", p.Signpost}, {"MSH-6", p.SignpostFacility},
		{"MSH-7", hl7v2.FormatTime(b.Sent)}, {"MSH-11", "P"}, {"MSH-12", "2.5.1"},
	}
	for _, s := range append(head, sets...) {
		if s[1] == "" {
			continue
		}
		if err := m.Set(s[0], s[1]); err != nil {
			return nil, fmt.Errorf("%s: %w", s[0], err)
		}
	}
	return m, nil
}

// BookingMessage builds the SIU^S12 (new appointment booked) a PAS sends
// for b, from application/facility to Signpost (version 2.5.1). The
// appointment's time is in SCH-11 (start and end), AIS-4 and AIL-6, its
// length in AIS-7/AIL-9 (minutes); the patient in PID-3 (NHS number with
// assigning authority NHS and type NH, then the PAS number, type PI).
func (p *PAS) BookingMessage(b Booking) (*hl7v2.Message, error) {
	if b.ControlID == "" {
		return nil, errors.New("a booking message needs its control id")
	}
	end := b.Start.Add(time.Duration(b.Minutes) * time.Minute)
	sets := [][2]string{
		{"MSH-9.1", "SIU"}, {"MSH-9.2", "S12"}, {"MSH-9.3", "SIU_S12"}, {"MSH-10", b.ControlID},
		{"SCH-2.1", b.AppointmentID}, {"SCH-2.2", p.Application},
		{"SCH-6.1", "NEW"}, {"SCH-9", fmt.Sprint(b.Minutes)}, {"SCH-10.1", "MIN"},
		{"SCH-11.3", fmt.Sprintf("M%d", b.Minutes)}, {"SCH-11.4", hl7v2.FormatTime(b.Start)}, {"SCH-11.5", hl7v2.FormatTime(end)},
		{"SCH-25.1", "Booked"},
	}
	sets = append(sets, p.pid(b)...)
	sets = append(sets, [][2]string{
		{"RGS-1", "1"},
		{"AIS-1", "1"}, {"AIS-3.1", b.ServiceCode}, {"AIS-3.2", b.ServiceName}, {"AIS-3.3", b.ServiceSystem},
		{"AIS-4", hl7v2.FormatTime(b.Start)}, {"AIS-7", fmt.Sprint(b.Minutes)}, {"AIS-8.1", "MIN"},
		{"AIL-1", "1"}, {"AIL-3.1", b.Clinic}, {"AIL-3.4", p.Facility},
		{"AIL-6", hl7v2.FormatTime(b.Start)}, {"AIL-9", fmt.Sprint(b.Minutes)}, {"AIL-10.1", "MIN"}, {"AIL-12.1", "Booked"},
	}...)
	return p.build(sets, b)
}
