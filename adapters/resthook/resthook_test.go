package resthook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/adapters/resthook"
	"github.com/signpost-fhir/signpost/domain/subscription"
	"github.com/signpost-fhir/signpost/store"
)

// notes is a Notifier that sends one fixed delivery and records outcomes.
type notes struct {
	d                 subscription.Delivery
	delivered, failed atomic.Int32
	reason            atomic.Value
}

func (n *notes) Prepare(context.Context, []byte) (*subscription.Delivery, error) {
	d := n.d
	return &d, nil
}
func (n *notes) Delivered(context.Context, []byte) { n.delivered.Add(1) }
func (n *notes) Failed(_ context.Context, _ []byte, reason string) {
	n.failed.Add(1)
	n.reason.Store(reason)
}

// noOutbox satisfies dispatch.New; Send is called directly.
type noOutbox struct{}

func (noOutbox) Claim(context.Context, string, time.Time, time.Duration, int) ([]store.Queued, error) {
	return nil, nil
}
func (noOutbox) Delivered(context.Context, int64, int64, time.Time) error          { return nil }
func (noOutbox) Retry(context.Context, int64, int64, string, time.Time) error      { return nil }
func (noOutbox) DeadLetter(context.Context, int64, int64, string, time.Time) error { return nil }

// TestAddressCheckedWhenConnecting: a name that resolves to a loopback
// address (as a rebinding name would) is refused when the connection is
// made, whatever the endpoint's text, unless the deployment allows the
// range; the signature travels with the body.
func TestAddressCheckedWhenConnecting(t *testing.T) {
	var hits atomic.Int32
	var sig atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		sig.Store(r.Header.Get(resthook.SignatureHeader))
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	signer, err := resthook.NewSigner(filepath.Join(t.TempDir(), "k", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.ServerName = "example.com" // the test certificate's name
	for _, tc := range []struct {
		name   string
		allow  []netip.Prefix
		result dispatch.Result
	}{
		{"refused", nil, dispatch.Failed},
		{"allowed by configuration", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, dispatch.Accepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &notes{d: subscription.Delivery{Endpoint: "https://localhost:" + port + "/hook", Body: []byte(`{"resourceType":"Bundle"}`), Timeout: 5 * time.Second}}
			s, err := resthook.New(noOutbox{}, n, signer, resthook.Config{Addresses: subscription.AddressPolicy{Allow: tc.allow}, TLS: tlsCfg, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			before := hits.Load()
			out, err := s.Send(context.Background(), store.Queued{Message: store.Message{ControlID: "c1"}})
			if err != nil || out.Result != tc.result {
				t.Fatalf("Send: %v %v (%s), want %v", out, err, out.Reason, tc.result)
			}
			if tc.result == dispatch.Failed {
				if hits.Load() != before || n.failed.Load() != 1 || !strings.Contains(n.reason.Load().(string), "non-public") {
					t.Errorf("refused address reached (%d hits) or not reported: %v", hits.Load()-before, n.reason.Load())
				}
				return
			}
			if hits.Load() != before+1 || n.delivered.Load() != 1 {
				t.Errorf("allowed address: %d hits, %d delivered", hits.Load()-before, n.delivered.Load())
			}
			if err := resthook.Verify(signer.JWKS(), sig.Load().(string), n.d.Body); err != nil {
				t.Errorf("signature: %v", err)
			}
		})
	}
}
