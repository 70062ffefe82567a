package notify

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
)

// SMS is one text message for an SMS gateway.
type SMS struct {
	// To is the recipient's number as the patient's record has it
	// (Patient.telecom value; the gateway normalises it, say to E.164).
	To string `json:"to"`
	// Body is the text.
	Body string `json:"body"`
	// Reference names what the message is, for the gateway's records and
	// delivery receipts: "Communication/{id}".
	Reference string `json:"reference"`
	// IdempotencyKey is the same on every retry of one message (the
	// outbox control id): a gateway that has taken a message with the
	// key takes a repeat as done, without sending it again.
	IdempotencyKey string `json:"idempotencyKey"`
}

// SMSGateway sends text messages. Send returns nil once the gateway has
// taken the message, a Permanent error when it never will (an invalid
// number, a refused message), and any other error when it may later.
//
// HTTPGateway is the implementation for gateways that speak Signpost's
// HTTP contract (docs/reminders.md); a deployment whose gateway speaks
// another puts a small bridge in front of it, and tests use a double.
type SMSGateway interface {
	Send(ctx context.Context, m SMS) error
}

// SMSConfig configures the SMS channel's HTTP gateway.
type SMSConfig struct {
	// URL is where messages are POSTed; it must be https.
	URL string `json:"url" validate:"required,url,startswith=https://"`
	// TokenEnv names an environment variable holding the bearer token
	// the gateway expects (Authorization: Bearer …); empty: none.
	TokenEnv string `json:"tokenEnv"`
	// AllowPrivate lets the gateway's address be loopback, private or
	// link-local (a gateway inside the trust's network).
	AllowPrivate bool `json:"allowPrivate"`
	// CAFile is a PEM file of the certificate authorities the gateway's
	// certificate may chain to, instead of the system's.
	CAFile string `json:"caFile"`
	// Timeout bounds one request (default 10s).
	Timeout Duration `json:"timeout"`
}

// HTTPGateway is an SMSGateway speaking the HTTP JSON contract: POST URL
// with an SMS as its JSON body (Content-Type application/json,
// Idempotency-Key header = IdempotencyKey, Authorization Bearer when a
// token is configured); 2xx: taken; 408, 429, 5xx or no answer: try
// again later; any other status: refused for good.
type HTTPGateway struct {
	post *Poster
}

var _ SMSGateway = (*HTTPGateway)(nil)

// NewHTTPGateway returns the gateway of cfg with token as its bearer token
// ("" for none); rootCAs as NewPoster.
func NewHTTPGateway(cfg SMSConfig, token string, rootCAs *x509.CertPool) (*HTTPGateway, error) {
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	p, err := NewPoster(WebhookConfig{URL: cfg.URL, AllowPrivate: cfg.AllowPrivate, CAFile: cfg.CAFile, Timeout: cfg.Timeout}, auth, rootCAs)
	if err != nil {
		return nil, fmt.Errorf("sms: %w", err)
	}
	p.idempotencyHeader = "Idempotency-Key"
	return &HTTPGateway{post: p}, nil
}

// Send POSTs m to the gateway.
func (g *HTTPGateway) Send(ctx context.Context, m SMS) error {
	body, err := json.Marshal(m)
	if err != nil {
		return Permanent(err)
	}
	return g.post.Post(ctx, m.IdempotencyKey, "application/json", body)
}
