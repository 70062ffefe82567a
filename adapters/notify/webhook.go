package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
)

// WebhookConfig configures the webhook channel: each reminder's
// Communication, as JSON, POSTed to one HTTPS endpoint (a messaging hub
// that reaches the patient).
type WebhookConfig struct {
	// URL is the endpoint; it must be https.
	URL string `json:"url" validate:"required,url,startswith=https://"`
	// AllowPrivate lets the endpoint's address be loopback, private
	// (RFC 1918, fc00::/7), link-local or otherwise not public; without
	// it such an address is refused at every connection (whatever DNS
	// answers then).
	AllowPrivate bool `json:"allowPrivate"`
	// AuthorizationEnv names an environment variable whose value is sent
	// as the Authorization header (say "Bearer …"); empty: none.
	AuthorizationEnv string `json:"authorizationEnv"`
	// CAFile is a PEM file of the certificate authorities the endpoint's
	// certificate may chain to, instead of the system's.
	CAFile string `json:"caFile"`
	// Timeout bounds one POST (default 10s).
	Timeout Duration `json:"timeout"`
}

// Poster POSTs JSON to a webhook endpoint.
type Poster struct {
	url    string
	auth   string
	client *http.Client
	// idempotencyHeader carries Post's id (default X-Signpost-Delivery).
	idempotencyHeader string
}

// NewPoster returns a Poster for cfg with authorization as the
// Authorization header ("" for none). rootCAs, when not nil, are the
// authorities trusted (tests trust their server through it), else
// cfg.CAFile's or the system's.
func NewPoster(cfg WebhookConfig, authorization string, rootCAs *x509.CertPool) (*Poster, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webhook.url %q: must be an https URL", cfg.URL)
	}
	if rootCAs == nil && cfg.CAFile != "" {
		if rootCAs, err = adapters.ReadCAs(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("webhook.caFile: %w", err)
		}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !cfg.AllowPrivate {
		dialer.Control = refusePrivate
	}
	tr := &http.Transport{
		Proxy:               nil, // a proxy would connect for us, past the address check
		DialContext:         dialer.DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rootCAs},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout.Or(10 * time.Second),
		// A redirect could lead anywhere: the endpoint is what is configured.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Poster{url: cfg.URL, auth: authorization, client: client, idempotencyHeader: "X-Signpost-Delivery"}, nil
}

// refusePrivate refuses connections to addresses that are not public:
// loopback, private, link-local, unspecified, multicast.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: cannot check the address %q: %v", address, err)
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() || !a.IsGlobalUnicast() {
		return Permanent(fmt.Errorf("webhook: %s is a private, loopback or link-local address, which the deployment does not allow (allowPrivate)", a))
	}
	return nil
}

// Post sends body (contentType) with the header X-Signpost-Delivery set to
// id (the outbox control id, the same on every retry, for the receiver
// to de-duplicate by). A 2xx answer is success; 408, 429 and 5xx, or no
// answer, are worth retrying; any other answer, or a refused address, is
// Permanent.
func (p *Poster) Post(ctx context.Context, id, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(p.idempotencyHeader, id)
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var perm permanent
		if errors.As(err, &perm) {
			return perm
		}
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return statusError(resp.StatusCode, msg)
}

// statusError classifies an HTTP answer: nil for 2xx, retryable for 408,
// 429 and 5xx, Permanent otherwise.
func statusError(code int, body []byte) error {
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("HTTP %d: %s", code, bytes.TrimSpace(body))
	}
	return Permanent(fmt.Errorf("HTTP %d: %s", code, bytes.TrimSpace(body)))
}
