// Package notifytest holds test doubles of adapters/notify: Gateway, an
// SMS gateway that records what it is given instead of sending it.
package notifytest

import (
	"context"
	"sync"

	"github.com/signpost-fhir/signpost/adapters/notify"
)

// Gateway is an in-memory notify.SMSGateway. It takes every message
// unless Fail says otherwise, and keeps one copy per idempotency key (a
// repeat of a key taken already is taken again without a second copy),
// as the HTTP contract asks of a gateway.
type Gateway struct {
	// Fail, when set, is asked before each message; its error is
	// Send's (wrap it with notify.Permanent for a refusal).
	Fail func(notify.SMS) error

	mu   sync.Mutex
	sent []notify.SMS
	keys map[string]bool
}

var _ notify.SMSGateway = (*Gateway)(nil)

// Send records m.
func (g *Gateway) Send(ctx context.Context, m notify.SMS) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.Fail != nil {
		if err := g.Fail(m); err != nil {
			return err
		}
	}
	if g.keys == nil {
		g.keys = map[string]bool{}
	}
	if g.keys[m.IdempotencyKey] {
		return nil
	}
	g.keys[m.IdempotencyKey] = true
	g.sent = append(g.sent, m)
	return nil
}

// Sent returns the messages taken, in order.
func (g *Gateway) Sent() []notify.SMS {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]notify.SMS(nil), g.sent...)
}
