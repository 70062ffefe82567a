package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/adapters/resthook"
	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/subscription"
	"github.com/signpost-fhir/signpost/store"
)

// SubscriptionsConfig configures the delivery of Subscriptions
// (docs/subscriptions.md).
type SubscriptionsConfig struct {
	// Allow lists the non-public address ranges notifications may be sent
	// to (serve --subscription-allow); AllowHTTP accepts http endpoints.
	Allow     []netip.Prefix
	AllowHTTP bool
	// TLS is the sender's TLS client configuration (tests trust their
	// receiver's certificate with it); nil: the system's roots.
	TLS *tls.Config
	// Backoff spaces the retries of a notification that failed (default
	// 1 s doubling to 5 minutes).
	Backoff dispatch.Backoff
	// MinHeartbeat is the shortest heartbeat period a subscription may ask
	// for (default 10 s); Tick how often heartbeats and ends are looked
	// for (default 1 s).
	MinHeartbeat, Tick time.Duration
}

// supportedProfiles are the profiles the CapabilityStatement names.
var supportedProfiles = map[string][]string{"Subscription": {subscription.ProfileBackport}}

// JWKSPath is where Signpost publishes the keys its notifications are
// signed with (an api.Site, served without a token).
const JWKSPath = "/subscriptions/jwks.json"

// notificationSigner loads (or creates) the notification signing key in
// the data directory.
func notificationSigner(cfg Config) (*resthook.Signer, error) {
	return resthook.NewSigner(filepath.Join(cfg.Data, "subscriptions", "notification-signing-key.pem"))
}

// jwksSite publishes the signer's keys.
func jwksSite(s *resthook.Signer) api.Site {
	return api.Site{Prefix: JWKSPath, Handler: s.JWKSHandler()}
}

// startSubscriptions registers the subscription rule and $status, and
// starts the sender and the heartbeats; the function it returns stops
// them.
func (a *App) startSubscriptions(signer *resthook.Signer, types []string) (stop func(), err error) {
	cfg := a.Config.Subscriptions
	policy := subscription.AddressPolicy{Allow: cfg.Allow, AllowHTTP: cfg.AllowHTTP}
	svc := subscription.New(a.Writes, a.Search, subscription.Config{BaseURL: a.Config.BaseURL, Addresses: policy,
		MinHeartbeat: cfg.MinHeartbeat, Logger: a.Config.Logger, ClientKnown: a.clientKnown})
	svc.Register(types)
	for _, op := range svc.Operations() {
		a.API.AddOperation(op)
	}
	a.Subscriptions = svc
	ob, ok := a.Store.(store.OutboxDelivery)
	if !ok {
		return nil, fmt.Errorf("subscriptions: the store keeps no outbox")
	}
	sender, err := resthook.New(ob, svc, signer, resthook.Config{Addresses: policy, TLS: cfg.TLS, Logger: a.Config.Logger,
		Dispatch: dispatch.Config{Backoff: cfg.Backoff}})
	if err != nil {
		return nil, err
	}
	svc.OnQueued(sender.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { sender.Run(ctx); done <- struct{}{} }()
	go func() { svc.Run(ctx, cfg.Tick); done <- struct{}{} }()
	var once sync.Once // Close may be called more than once
	return func() { once.Do(func() { cancel(); <-done; <-done }) }, nil
}

// clientKnown reports whether a subscription owner's OAuth client is still
// registered: with the development server, one of its clients; tokens of
// another issuer cannot be told, and are.
func (a *App) clientKnown(issuer, clientID string) bool {
	if a.Auth == nil || issuer != a.Auth.Issuer() {
		return true
	}
	return slices.ContainsFunc(a.Auth.Clients(), func(c devserver.DemoClient) bool { return c.ID == clientID })
}
