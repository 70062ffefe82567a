package pas

import (
	"context"
	"net/netip"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
)

// receive is the listener's Handler: it applies one message from the PAS
// and returns its acknowledgement.
//
// TODO(issue 12, inbound): apply SIU and ADT through the domain. Until
// then every message is refused with AR, so a PAS is never told a message
// it sent was applied.
func (a *Adapter) receive(ctx context.Context, peer netip.Addr, raw []byte) ([]byte, error) {
	msg, err := hl7v2.Parse(raw)
	if err != nil {
		return nil, err
	}
	ack, err := hl7v2.BuildAck(msg, hl7v2.Ack{Outcome: hl7v2.OutcomeReject, Text: "inbound messages are not applied yet"})
	if err != nil {
		return nil, err
	}
	return ack.Encode(), nil
}
