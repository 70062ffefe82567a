package dispatch

import (
	"context"
	"fmt"
	"strings"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/store"
)

// Exchanger sends one message and returns its acknowledgement's bytes:
// an *mllp.Client.
type Exchanger interface {
	Send(ctx context.Context, msg []byte) ([]byte, error)
}

// HL7 is the Sender of HL7 v2 messages: it sends a message's payload (ER7)
// through an Exchanger and reads the acknowledgement's MSA: MSA-1 AA or CA
// accepts it, AE or CE fails it (retried), AR or CR rejects it (a dead
// letter). An acknowledgement whose MSA-2 does not echo the message's
// control id does not answer it and fails it, as does one that cannot be
// read. A payload whose MSH-10 is not the message's control id is
// rejected without being sent: its acknowledgement could never match.
type HL7 struct {
	Client Exchanger
}

// Send implements Sender.
func (h HL7) Send(ctx context.Context, m store.Queued) (Outcome, error) {
	msg, err := hl7v2.Parse(m.Payload)
	if err != nil {
		return Outcome{Result: Rejected, Reason: fmt.Sprintf("the payload is not an HL7 v2 message: %v", err)}, nil
	}
	if got := msg.ControlID(); got != m.ControlID {
		return Outcome{Result: Rejected, Reason: fmt.Sprintf("the payload's MSH-10 is %q, not the message's control id %q", got, m.ControlID)}, nil
	}
	raw, err := h.Client.Send(ctx, m.Payload)
	if err != nil {
		return Outcome{}, err
	}
	return readAck(raw, m.ControlID), nil
}

// readAck maps acknowledgement raw of the message with control id ctl to
// an Outcome.
func readAck(raw []byte, ctl string) Outcome {
	ack, err := hl7v2.Parse(raw)
	if err != nil {
		return Outcome{Result: Failed, Reason: fmt.Sprintf("the acknowledgement cannot be read: %v", err)}
	}
	if ack.Segment("MSA", 1) == nil {
		return Outcome{Result: Failed, Reason: "the acknowledgement has no MSA segment"}
	}
	code, echo := ack.Get("MSA-1"), ack.Get("MSA-2")
	if echo != ctl {
		return Outcome{Result: Failed, Reason: fmt.Sprintf("the acknowledgement (%s) answers control id %q (MSA-2), not %q", code, echo, ctl)}
	}
	reason := code + ackText(ack)
	switch code {
	case "AA", "CA":
		return Outcome{Result: Accepted}
	case "AE", "CE":
		return Outcome{Result: Failed, Reason: reason}
	case "AR", "CR":
		return Outcome{Result: Rejected, Reason: reason}
	}
	return Outcome{Result: Failed, Reason: fmt.Sprintf("the acknowledgement code (MSA-1) %q is not one of AA, AE, AR, CA, CE, CR", code)}
}

// ackText is what ack says of its outcome, ": "-prefixed: MSA-3 and each
// ERR's text (ERR-8, else ERR-3's code and text), or "".
func ackText(ack *hl7v2.Message) string {
	var parts []string
	if t := ack.Get("MSA-3"); t != "" {
		parts = append(parts, t)
	}
	for _, e := range ack.All("ERR") {
		d := ack.Delimiters
		t := e.Get("ERR-8", d)
		if t == "" {
			t = strings.TrimSpace(e.Get("ERR-3.1", d) + " " + e.Get("ERR-3.2", d))
		}
		if loc := e.Get("ERR-2.1", d); loc != "" && t != "" {
			t = fmt.Sprintf("%s (%s-%s)", t, loc, e.Get("ERR-2.3", d))
		}
		if t != "" {
			parts = append(parts, t)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}
