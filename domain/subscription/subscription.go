// Package subscription makes Signpost's Subscriptions deliver: R4
// Subscriptions whose criteria is a search on the changed resource type,
// and topic-based Subscriptions as the Subscriptions R5 Backport IG (STU
// 1.1.0) defines them for R4, on the topics Signpost publishes (Topics).
//
// Its write rule ("subscription", on every type) validates a client's
// Subscription (rest-hook channel, an https endpoint outside private
// ranges, an end at most MaxLifetime away, criteria or topic filters the
// search engine parses), fills the server-owned elements (status, error,
// the owner: the principal who wrote it) and queues a handshake; on every
// other write it matches the transaction's changes against the live
// subscriptions and queues one notification event per match in the
// store's outbox, in the same transaction, numbered per subscription. A
// sender (adapters/resthook) delivers them through adapters/dispatch,
// asking Prepare for each notification's body when it sends it: a
// full-resource notification carries the focus only if the owner may read
// it at that moment.
package subscription

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Canonical URLs this package reads and writes.
const (
	backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	// ProfileBackport is the Backport IG's R4 topic-based Subscription profile.
	ProfileBackport = backport + "backport-subscription"
	// ProfileNotification is the IG's R4 notification Bundle profile.
	ProfileNotification = backport + "backport-subscription-notification-r4"
	// ProfileStatus is the IG's R4 subscription status Parameters profile.
	ProfileStatus = backport + "backport-subscription-status-r4"
	// ExtFilterCriteria (valueString, on Subscription.criteria) narrows a topic.
	ExtFilterCriteria = backport + "backport-filter-criteria"
	// ExtPayloadContent (valueCode, on Subscription.channel.payload) is
	// empty, id-only or full-resource.
	ExtPayloadContent = backport + "backport-payload-content"
	// ExtHeartbeatPeriod (valueUnsignedInt, seconds, on Subscription.channel).
	ExtHeartbeatPeriod = backport + "backport-heartbeat-period"
	// ExtTimeout (valueUnsignedInt, seconds, on Subscription.channel).
	ExtTimeout = backport + "backport-timeout"
	// ExtMaxCount (valuePositiveInt, on Subscription.channel).
	ExtMaxCount = backport + "backport-max-count"
	// ExtOwner is the server-owned record of the principal who last wrote
	// the Subscription: whose reach its notifications have.
	ExtOwner = conformance.Canonical + "/StructureDefinition/subscription-owner"
	// ExtEventCount (valueString) is the number of events the
	// subscription has had since it started, kept beside it (a derived
	// value, served as this extension).
	ExtEventCount = conformance.Canonical + "/StructureDefinition/subscription-event-count"
)

// Destination is the outbox destination of every notification.
const Destination = "subscriptions"

// MaxLifetime is the longest a subscription may last from its last write:
// its end is at most this far away (a client renews by updating it).
const MaxLifetime = 30 * 24 * time.Hour

// The notification types (R5 SubscriptionNotificationType).
const (
	Handshake         = "handshake"
	Heartbeat         = "heartbeat"
	EventNotification = "event-notification"
	QueryStatus       = "query-status"
)

// Config configures the Service.
type Config struct {
	BaseURL string // the public FHIR base, for references in notifications
	// Addresses decides which endpoint addresses are allowed.
	Addresses AddressPolicy
	// MinHeartbeat is the shortest heartbeat period accepted (default 10s).
	MinHeartbeat time.Duration
	// MaxTimeout is the longest delivery timeout a subscription may ask
	// for, and the default (default 30s).
	MaxTimeout time.Duration
	// ClientKnown reports whether the OAuth client a subscription's owner
	// used is still registered; a subscription whose client is not stops
	// (status off). Nil: every client is.
	ClientKnown func(issuer, clientID string) bool
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the subscriptions' domain logic.
type Service struct {
	cfg    Config
	writes *write.Path
	reg    *search.Registry
	types  []string // the types the rule is registered on

	cache    liveCache // the live subscriptions, for matching
	mu       sync.Mutex
	wake     func()               // wakes the sender after notifications are queued
	activity map[string]time.Time // subscription id → when its last notification was queued
}

// New returns the Service over writes.
func New(writes *write.Path, reg *search.Registry, cfg Config) *Service {
	if cfg.MinHeartbeat == 0 {
		cfg.MinHeartbeat = 10 * time.Second
	}
	if cfg.MaxTimeout == 0 {
		cfg.MaxTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Service{cfg: cfg, writes: writes, reg: reg, activity: map[string]time.Time{}}
}

// Register adds the "subscription" rule to the writes of each of types
// (the writable types: app/rules.go declares it on every type).
func (s *Service) Register(types []string) {
	s.types = slices.Clone(types)
	for _, typ := range types {
		s.writes.AddRule(typ, "subscription", s.rule)
	}
}

// OnQueued sets f to be called after a transaction that queued
// notifications commits (the sender's wake-up).
func (s *Service) OnQueued(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wake = f
}

func (s *Service) queued(ids []string) {
	s.mu.Lock()
	now := s.cfg.Now()
	for _, id := range ids {
		s.activity[id] = now
	}
	w := s.wake
	s.mu.Unlock()
	if w != nil {
		w()
	}
}

// sub is a Subscription as this package reads it.
type sub struct {
	ID, Status, End, Criteria, Endpoint, Payload, Error string
	Content                                             string   // empty, id-only or full-resource
	Filters                                             []string // backport filter criteria
	Headers                                             []string
	Heartbeat, Timeout                                  time.Duration
	Owner                                               *owner
	topic                                               *Topic // nil for an R4 criteria subscription
}

// rawSub is the JSON of a Subscription, primitive extensions included.
type rawSub struct {
	Status      string `json:"status"`
	End         string `json:"end"`
	Criteria    string `json:"criteria"`
	CriteriaExt *prim  `json:"_criteria"`
	Error       string `json:"error"`
	Extension   []ext  `json:"extension"`
	Channel     struct {
		Type       string   `json:"type"`
		Endpoint   string   `json:"endpoint"`
		Payload    string   `json:"payload"`
		PayloadExt *prim    `json:"_payload"`
		Header     []string `json:"header"`
		Extension  []ext    `json:"extension"`
	} `json:"channel"`
}

type prim struct {
	Extension []ext `json:"extension"`
}

type ext struct {
	URL              string  `json:"url"`
	ValueString      *string `json:"valueString,omitempty"`
	ValueCode        *string `json:"valueCode,omitempty"`
	ValueUnsignedInt *int64  `json:"valueUnsignedInt,omitempty"`
	ValuePositiveInt *int64  `json:"valuePositiveInt,omitempty"`
	ValueBoolean     *bool   `json:"valueBoolean,omitempty"`
	Extension        []ext   `json:"extension,omitempty"`
}

func find(exts []ext, url string) []ext {
	var out []ext
	for _, e := range exts {
		if e.URL == url {
			out = append(out, e)
		}
	}
	return out
}

// parse reads a Subscription's JSON (id as given) without judging it.
func parse(id string, b []byte) (*sub, error) {
	var r rawSub
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "Subscription", "the Subscription cannot be read: %v", err)
	}
	x := &sub{ID: id, Status: r.Status, End: r.End, Criteria: strings.TrimSpace(r.Criteria), Endpoint: r.Channel.Endpoint,
		Payload: r.Channel.Payload, Headers: r.Channel.Header, Error: r.Error}
	if r.CriteriaExt != nil {
		for _, e := range find(r.CriteriaExt.Extension, ExtFilterCriteria) {
			if e.ValueString != nil {
				x.Filters = append(x.Filters, *e.ValueString)
			}
		}
	}
	if r.Channel.PayloadExt != nil {
		for _, e := range find(r.Channel.PayloadExt.Extension, ExtPayloadContent) {
			if e.ValueCode != nil {
				x.Content = *e.ValueCode
			}
		}
	}
	for _, e := range find(r.Channel.Extension, ExtHeartbeatPeriod) {
		if e.ValueUnsignedInt != nil {
			x.Heartbeat = time.Duration(*e.ValueUnsignedInt) * time.Second
		}
	}
	for _, e := range find(r.Channel.Extension, ExtTimeout) {
		if e.ValueUnsignedInt != nil {
			x.Timeout = time.Duration(*e.ValueUnsignedInt) * time.Second
		}
	}
	if x.Content == "" {
		// An R4 subscription without the backport extension: the resource
		// when a payload type is given, nothing otherwise (R4 3.3.2).
		x.Content = "empty"
		if x.Payload != "" {
			x.Content = "full-resource"
		}
	}
	if t, ok := Topics[x.Criteria]; ok {
		x.topic = &t
	}
	if o := find(r.Extension, ExtOwner); len(o) > 0 {
		x.Owner = readOwner(o[0])
	}
	return x, nil
}

// end returns the subscription's end; zero when it has none.
func (x *sub) end() time.Time {
	t, err := time.Parse(time.RFC3339, x.End)
	if err != nil {
		return time.Time{}
	}
	return t
}

// focusType is the type of resource the subscription is about.
func (x *sub) focusType() string {
	if x.topic != nil {
		return x.topic.Resource
	}
	typ, _, _ := strings.Cut(x.Criteria, "?")
	return typ
}

// owner is the principal a subscription acts as: who wrote it last.
type owner struct {
	Server                                                 bool
	Issuer, Client, Subject, Patient, NHSNumber, Org, Role string
	Scope                                                  string
}

// ownerOf returns the owner a write made in ctx records; nil on a server
// without authorisation (everything is visible there).
func ownerOf(ctx context.Context) *owner {
	if write.IsServer(ctx) {
		return &owner{Server: true}
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return nil
	}
	return &owner{Issuer: p.Issuer, Client: p.ClientID, Subject: p.Subject, Patient: p.Patient, NHSNumber: p.NHSNumber,
		Org: p.Organization, Role: string(p.Role), Scope: strings.Join(p.RawScopes, " ")}
}

// extension encodes the owner as the ExtOwner extension.
func (o *owner) extension() map[string]any {
	var parts []map[string]any
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, map[string]any{"url": name, "valueString": v})
		}
	}
	if o.Server {
		parts = append(parts, map[string]any{"url": "server", "valueBoolean": true})
	}
	add("issuer", o.Issuer)
	add("client", o.Client)
	add("subject", o.Subject)
	add("patient", o.Patient)
	add("nhs-number", o.NHSNumber)
	add("organization", o.Org)
	add("role", o.Role)
	add("scope", o.Scope)
	return map[string]any{"url": ExtOwner, "extension": parts}
}

func readOwner(e ext) *owner {
	o := &owner{}
	for _, p := range e.Extension {
		v := ""
		if p.ValueString != nil {
			v = *p.ValueString
		}
		switch p.URL {
		case "server":
			o.Server = p.ValueBoolean != nil && *p.ValueBoolean
		case "issuer":
			o.Issuer = v
		case "client":
			o.Client = v
		case "subject":
			o.Subject = v
		case "patient":
			o.Patient = v
		case "nhs-number":
			o.NHSNumber = v
		case "organization":
			o.Org = v
		case "role":
			o.Role = v
		case "scope":
			o.Scope = v
		}
	}
	return o
}

// context returns a context acting as the owner, for reads that apply the
// owner's reach (write.Path.ReadAs). It carries nothing of the writer's
// context: neither its principal nor the server's mark.
func (o *owner) context() context.Context {
	base := context.Background()
	if o == nil {
		return base // no authorisation on this server: nothing is restricted
	}
	if o.Server {
		return write.AsServer(base)
	}
	scopes, _ := auth.ParseScopes(o.Scope)
	return auth.NewContext(base, &auth.Principal{Issuer: o.Issuer, ClientID: o.Client, Subject: o.Subject,
		Patient: o.Patient, NHSNumber: o.NHSNumber, Organization: o.Org, Role: auth.Role(o.Role),
		Scopes: scopes, RawScopes: strings.Fields(o.Scope)})
}

// parseSearch parses "Type?params" for the search engine, strictly.
func (s *Service) parseSearch(expr, location string, wantType string) (*search.Query, error) {
	typ, raw, _ := strings.Cut(expr, "?")
	if typ == "" || (wantType != "" && typ != wantType) {
		want := "a resource type"
		if wantType != "" {
			want = wantType
		}
		return nil, fhir.Errorf(fhir.Unprocessable, "value", location, "%q must be a search on %s: Type?parameters", expr, want)
	}
	if typ == "Subscription" || !slices.Contains(s.types, typ) {
		return nil, fhir.Errorf(fhir.Unprocessable, "value", location, "%q: Signpost has no subscriptions on %s", expr, typ)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fhir.Errorf(fhir.Unprocessable, "value", location, "%q: the parameters cannot be read: %v", expr, err)
	}
	q, err := s.reg.Parse(typ, vals, search.ParseOptions{Strict: true})
	if err != nil {
		e := fhir.AsError(err)
		msg := err.Error()
		if e != nil && len(e.Issues) > 0 {
			msg = e.Issues[0].Diagnostics
		}
		return nil, fhir.Errorf(fhir.Unprocessable, "value", location, "%q: %s", expr, msg)
	}
	return q, nil
}

// storeOutbox returns tx's outbox.
func storeOutbox(tx *write.Tx) (store.OutboxTx, error) {
	ob, ok := tx.Tx.(store.OutboxTx)
	if !ok {
		return nil, fmt.Errorf("subscription: the store keeps no outbox: subscriptions cannot deliver")
	}
	return ob, nil
}
