package hl7v2

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"
)

// An Outcome is what a receiver made of a message: accepted, error (AE/CE:
// the message was fine but could not be processed; the sender may retry) or
// reject (AR/CR: the message will never be processed as sent).
type Outcome int

// The three outcomes.
const (
	OutcomeAccept Outcome = iota // AA or CA
	OutcomeError                 // AE or CE
	OutcomeReject                // AR or CR
)

// letter is the outcome's second letter in MSA-1.
func (o Outcome) letter() string {
	switch o {
	case OutcomeError:
		return "E"
	case OutcomeReject:
		return "R"
	}
	return "A"
}

// Enhanced reports whether the message asks for enhanced-mode
// acknowledgement: MSH-15 (accept acknowledgement type) or MSH-16
// (application acknowledgement type) is valued. Otherwise original mode
// applies, with one acknowledgement (AA/AE/AR) after processing.
func (m *Message) Enhanced() bool {
	return m.Get("MSH-15") != "" || m.Get("MSH-16") != ""
}

// WantsAck reports whether the sender wants an acknowledgement with this
// outcome: always in original mode; in enhanced mode as MSH-15 (commit
// acknowledgements) or MSH-16 (application acknowledgements) says: AL
// always, NE never, ER only for an error or reject, SU only for success.
// An empty MSH-15 or MSH-16 in enhanced mode means AL, as the standard
// reads it.
func (m *Message) WantsAck(commit bool, o Outcome) bool {
	if !m.Enhanced() {
		return true
	}
	field := "MSH-16"
	if commit {
		field = "MSH-15"
	}
	switch m.Get(field) {
	case "NE":
		return false
	case "ER":
		return o != OutcomeAccept
	case "SU":
		return o == OutcomeAccept
	}
	return true
}

// An Ack describes the acknowledgement to build for a message.
type Ack struct {
	// Outcome is accept, error or reject.
	Outcome Outcome
	// Commit marks an enhanced-mode commit acknowledgement (CA/CE/CR: the
	// message was received and stored). In original mode it is ignored:
	// the one acknowledgement there is AA/AE/AR.
	Commit bool
	// Text goes in MSA-3 (a short message for the sender's operators).
	Text string
	// Issues each become an ERR segment.
	Issues []*Issue
	// ControlID is the acknowledgement's own MSH-10; a random one when empty.
	ControlID string
	// Time is MSH-7; now when zero.
	Time time.Time
}

// Code is the MSA-1 acknowledgement code the Ack gives for msg: AA, AE or
// AR, or CA, CE or CR for a commit acknowledgement in enhanced mode.
func (a Ack) Code(msg *Message) string {
	if a.Commit && msg.Enhanced() {
		return "C" + a.Outcome.letter()
	}
	return "A" + a.Outcome.letter()
}

// BuildAck builds the acknowledgement of msg: its MSH swaps msg's sender
// and receiver (MSH-3/4 and MSH-5/6), keeps its delimiters, processing id
// and version, gives MSH-9 ACK^<msg's trigger>^ACK and a new control id;
// MSA-1 carries the code, MSA-2 msg's control id (MSH-10), MSA-3 the text;
// each issue becomes an ERR segment with ERR-2 (location), ERR-3 (code from
// table 0357), ERR-4 (severity) and ERR-8 (the text), and, for versions
// before 2.5 that know only ERR-1, ERR-1 as well.
func BuildAck(msg *Message, a Ack) (*Message, error) {
	ack, err := NewMessage(msg.Delimiters)
	if err != nil {
		return nil, err
	}
	if a.ControlID == "" {
		a.ControlID = newControlID()
	}
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	version := msg.Version()
	if version == "" {
		version = "2.5.1"
	}
	// Copy the addressing components raw, as they came (HD types carry
	// components: namespace^universal id^type).
	mshOrig := msg.Segments[0]
	mshAck := ack.Segments[0]
	copyField := func(to, from int) {
		if from <= len(mshOrig.Fields) {
			for len(mshAck.Fields) < to {
				mshAck.Fields = append(mshAck.Fields, nil)
			}
			mshAck.Fields[to-1] = cloneField(mshOrig.Fields[from-1])
		}
	}
	copyField(3, 5)
	copyField(4, 6)
	copyField(5, 3)
	copyField(6, 4)
	copyField(11, 11)
	sets := []struct{ path, value string }{
		{"MSH-7", FormatTime(a.Time)},
		{"MSH-9.1", "ACK"},
		{"MSH-9.2", msg.Get("MSH-9.2")},
		{"MSH-9.3", "ACK"},
		{"MSH-10", a.ControlID},
		{"MSH-12", version},
		{"MSA-1", a.Code(msg)},
		{"MSA-2", msg.ControlID()},
	}
	if msg.Get("MSH-11") == "" {
		sets = append(sets, struct{ path, value string }{"MSH-11", "P"})
	}
	if a.Text != "" {
		sets = append(sets, struct{ path, value string }{"MSA-3", a.Text})
	}
	for _, s := range sets {
		if err := ack.Set(s.path, s.value); err != nil {
			return nil, err
		}
	}
	legacy := version == "2.3" || version == "2.3.1" || version == "2.4"
	for i, is := range a.Issues {
		n := strconv.Itoa(i + 1)
		sev := is.Severity
		if sev == "" {
			sev = SeverityError
		}
		loc := is.Location
		vals := []struct{ path, value string }{
			{"ERR[" + n + "]-3.1", is.Code},
			{"ERR[" + n + "]-3.2", codeText[is.Code]},
			{"ERR[" + n + "]-3.3", "HL70357"},
			{"ERR[" + n + "]-4", sev},
			{"ERR[" + n + "]-8", is.Text},
		}
		if loc.Segment != "" {
			vals = append(vals,
				struct{ path, value string }{"ERR[" + n + "]-2.1", loc.Segment},
				struct{ path, value string }{"ERR[" + n + "]-2.2", strconv.Itoa(max(loc.SegRep, 1))},
				struct{ path, value string }{"ERR[" + n + "]-2.3", itoaOrEmpty(loc.Field)},
				struct{ path, value string }{"ERR[" + n + "]-2.4", itoaOrEmpty(loc.Rep)},
				struct{ path, value string }{"ERR[" + n + "]-2.5", itoaOrEmpty(loc.Comp)},
				struct{ path, value string }{"ERR[" + n + "]-2.6", itoaOrEmpty(loc.Sub)},
			)
		}
		if legacy { // ERR-1 (ELD): segment^sequence^field^code&text&table
			vals = append(vals,
				struct{ path, value string }{"ERR[" + n + "]-1.1", loc.Segment},
				struct{ path, value string }{"ERR[" + n + "]-1.2", itoaOrEmpty(loc.SegRep)},
				struct{ path, value string }{"ERR[" + n + "]-1.3", itoaOrEmpty(loc.Field)},
				struct{ path, value string }{"ERR[" + n + "]-1.4.1", is.Code},
				struct{ path, value string }{"ERR[" + n + "]-1.4.2", codeText[is.Code]},
				struct{ path, value string }{"ERR[" + n + "]-1.4.3", "HL70357"},
			)
		}
		for _, v := range vals {
			if v.value == "" {
				continue
			}
			if err := ack.Set(v.path, v.value); err != nil {
				return nil, err
			}
		}
	}
	return ack, nil
}

// itoaOrEmpty writes n, or nothing for zero.
func itoaOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// cloneField copies a field deeply.
func cloneField(f Field) Field {
	if f == nil {
		return nil
	}
	out := make(Field, len(f))
	for i, r := range f {
		out[i] = make(Repetition, len(r))
		for j, c := range r {
			out[i][j] = append(Component(nil), c...)
		}
	}
	return out
}

// newControlID returns 20 random hex digits (MSH-10 holds up to 20
// characters in v2.5).
func newControlID() string {
	var b [10]byte
	rand.Read(b[:]) // never fails: crypto/rand crashes the program rather than return an error
	return hex.EncodeToString(b[:])
}
