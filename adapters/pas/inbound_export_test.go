package pas

import (
	"context"
	"net/netip"
)

// Receive hands raw to the listener's handler as if it had arrived from
// 127.0.0.1, for tests that need the answer the handler gives (nil when
// the sender asked for no acknowledgement).
func (a *Adapter) Receive(ctx context.Context, raw []byte) ([]byte, error) {
	return a.receive(ctx, netip.MustParseAddr("127.0.0.1"), raw)
}

// FailListener records err as the listener's failure, as its Serve
// returning err would.
func FailListener(a *Adapter, err error) { a.listenerFailed(err) }
