// Package resthook delivers Signpost's subscription notifications over
// HTTP (the rest-hook channel): each is a POST of the notification Bundle
// to the subscription's endpoint, signed with a detached JWS (RFC 7515
// appendix F) in the X-Signpost-Signature header, from the store's outbox
// through adapters/dispatch (leases, retries with back-off, order per
// subscription). The address the endpoint resolves to is checked when the
// connection is made, against the deployment's AddressPolicy, so a name
// that resolves to a private address (DNS rebinding included) is refused.
package resthook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/domain/subscription"
	"github.com/signpost-fhir/signpost/store"
)

// SignatureHeader carries a notification's detached JWS.
const SignatureHeader = "X-Signpost-Signature"

// Notifier builds notifications and hears of their outcome
// (subscription.Service).
type Notifier interface {
	Prepare(ctx context.Context, payload []byte) (*subscription.Delivery, error)
	Delivered(ctx context.Context, payload []byte)
	Failed(ctx context.Context, payload []byte, reason string)
}

// Config configures a Sender.
type Config struct {
	// Addresses decides which addresses may be connected to.
	Addresses subscription.AddressPolicy
	// TLS is the client's TLS configuration (nil: the system's roots).
	TLS *tls.Config
	// Workers is how many notifications are sent at once (default 4),
	// each of another subscription.
	Workers int
	// Dispatch tunes delivery (back-off, poll interval); its Destination
	// is set to subscription.Destination.
	Dispatch dispatch.Config
	Logger   *slog.Logger
}

// Sender is the dispatch.Sender of rest-hook notifications.
type Sender struct {
	cfg    Config
	notes  Notifier
	signer *Signer
	client *http.Client
	ds     []*dispatch.Dispatcher
}

var _ dispatch.Sender = (*Sender)(nil)

// New returns a Sender of ob's subscription notifications.
func New(ob store.OutboxDelivery, notes Notifier, signer *Signer, cfg Config) (*Sender, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sender{cfg: cfg, notes: notes, signer: signer}
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: s.control}
	tr := &http.Transport{Proxy: nil, DialContext: dialer.DialContext, TLSClientConfig: cfg.TLS,
		ForceAttemptHTTP2: true, MaxIdleConns: 16, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	s.client = &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	dc := cfg.Dispatch
	dc.Destination = subscription.Destination
	if dc.Lease == 0 {
		dc.Lease = time.Minute // outlasts the longest timeout (30 s) and a connection
	}
	if dc.PollInterval == 0 {
		dc.PollInterval = time.Second
	}
	if dc.Logger == nil {
		dc.Logger = cfg.Logger
	}
	for range cfg.Workers {
		d, err := dispatch.New(ob, s, dc)
		if err != nil {
			return nil, err
		}
		s.ds = append(s.ds, d)
	}
	return s, nil
}

// control refuses a connection to an address the policy does not allow:
// it sees the address actually dialled, after resolution.
func (s *Sender) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("resthook: %s: %w", address, err)
	}
	return s.cfg.Addresses.CheckIP(ap.Addr())
}

// Run delivers until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	done := make(chan struct{}, len(s.ds))
	for _, d := range s.ds {
		go func() { _ = d.Run(ctx); done <- struct{}{} }()
	}
	for range s.ds {
		<-done
	}
}

// Wake nudges the dispatchers after notifications were queued.
func (s *Sender) Wake() {
	for _, d := range s.ds {
		d.Wake()
	}
}

// Status returns what each worker has done.
func (s *Sender) Status() []dispatch.Status {
	var out []dispatch.Status
	for _, d := range s.ds {
		out = append(out, d.Status())
	}
	return out
}

// Send posts one notification. A 2xx answer delivers it; anything else
// (another status, no answer, a refused address) fails it, to be retried:
// the subscription is in error until a notification gets through.
func (s *Sender) Send(ctx context.Context, m store.Queued) (dispatch.Outcome, error) {
	d, err := s.notes.Prepare(ctx, m.Payload)
	if err != nil {
		return dispatch.Outcome{}, err
	}
	if d.Drop != "" {
		s.cfg.Logger.Info("subscription: notification not sent", "control_id", m.ControlID, "reason", d.Drop)
		return dispatch.Outcome{Result: dispatch.Accepted, Reason: d.Drop}, nil
	}
	reason := s.post(ctx, d, m.ControlID)
	if reason == "" {
		s.notes.Delivered(context.WithoutCancel(ctx), m.Payload)
		return dispatch.Outcome{Result: dispatch.Accepted}, nil
	}
	s.notes.Failed(context.WithoutCancel(ctx), m.Payload, reason)
	return dispatch.Outcome{Result: dispatch.Failed, Reason: reason}, nil
}

// post sends d and returns why it failed, "" when the endpoint took it.
func (s *Sender) post(ctx context.Context, d *subscription.Delivery, id string) string {
	sig, err := s.signer.Sign(d.Body)
	if err != nil {
		return fmt.Sprintf("signing: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Endpoint, bytes.NewReader(d.Body))
	if err != nil {
		return fmt.Sprintf("the endpoint cannot be used: %v", err)
	}
	for k, vs := range d.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set(SignatureHeader, sig)
	req.Header.Set("X-Signpost-Notification", id)
	resp, err := s.client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			return fmt.Sprintf("posting to the endpoint: %v", ue.Unwrap())
		}
		return fmt.Sprintf("posting to the endpoint: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Sprintf("the endpoint answered %s", resp.Status)
	}
	return ""
}
