// Package pas is the hospital PAS adapter (kind "hl7v2-pas"): it connects a
// trust's patient administration system to Signpost over HL7 v2 and MLLP.
//
//   - inbound (inbound.go): SIU and ADT messages from the PAS, applied
//     through the domain's write path as the instance's principal,
//     recorded in the store's inbox so a resent message is applied once;
//   - outbound (outbound.go): changes made in Signpost to the PAS's
//     schedules, queued in the outbox in the change's own transaction and
//     delivered by a dispatcher (adapters/dispatch);
//   - pas-confirmed bookings (confirm.go): the PAS's answer decides a
//     booking of its slots;
//   - the slot feed (feed.go): the PAS's published slots, by pas_slot_id.
package pas

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/store"
)

func init() { adapters.Register(Kind, New) }

// Adapter is one hl7v2-pas instance.
type Adapter struct {
	env      adapters.Env
	set      Settings
	services map[string]bool // the HealthcareService ids the PAS owns
	allow    []netip.Prefix  // peers that may connect to the listener
	tls      *tls.Config     // nil without TLS
	store    store.Store

	client     *mllp.Client         // to the PAS; nil without Send
	dispatcher *dispatch.Dispatcher // delivers the outbox to client; nil without Send
	server     *mllp.Server         // nil without Listen

	run adapters.Runner // the listener and the dispatcher

	mu       sync.Mutex
	listenOn net.Addr  // the listener's bound address, once started
	lastErr  string    // the last error of any kind, for Status
	lastAt   time.Time // … and when
	listenAt time.Time // when the listener failed (zero while it serves)
	// The confirmer's exchanges with the PAS (the dispatcher keeps its
	// own): a success is an answer of AA.
	confirms adapters.Exchanges
}

var _ adapters.Waker = (*Adapter)(nil)

// dialTimeout bounds connecting to the PAS.
const dialTimeout = 5 * time.Second

// New is the hl7v2-pas Factory: it reads and validates settings.
func New(env adapters.Env, settings json.RawMessage) (adapters.Adapter, error) {
	var set Settings
	if err := adapters.DecodeSettings(settings, &set); err != nil {
		return nil, err
	}
	if set.Listen == "" && set.Send == "" {
		return nil, errors.New("settings: neither listen nor send is set: the instance would do nothing")
	}
	if set.Mode == ModePASConfirmed && set.Send == "" {
		return nil, errors.New("settings.send: a pas-confirmed instance must be able to ask the PAS")
	}
	set = set.withDefaults(env)
	a := &Adapter{env: env, set: set, services: map[string]bool{}, store: env.Writes.Store()}
	for _, s := range set.Services {
		a.services[s] = true
	}
	var err error
	if a.allow, err = mllp.ParseAllowList(set.Allow); err != nil {
		return nil, fmt.Errorf("settings.allow: %w", err)
	}
	if set.TLS != nil {
		if a.tls, err = set.TLS.config(); err != nil {
			return nil, fmt.Errorf("settings.tls: %w", err)
		}
	}
	if set.Send != "" {
		ob, ok := a.store.(store.Outbox)
		if !ok {
			return nil, errors.New("settings.send: the store keeps no outbox, so messages to the PAS could be lost")
		}
		a.client = &mllp.Client{Addr: set.Send, TLSConfig: a.tls, AckTimeout: set.AckTimeout.Or(30 * time.Second), DialTimeout: dialTimeout}
		a.dispatcher, err = dispatch.New(ob, sender{a: a, hl7: dispatch.HL7{Client: a.client}}, dispatch.Config{
			Destination: env.Name, MaxAttempts: set.MaxAttempts, Now: env.Now, Logger: env.Logger,
			PollInterval: time.Duration(set.PollInterval),
			// A claim outlasts a send (dial, then the ACK) but no more: after
			// a crash, a message in flight is sent again once it ends.
			Lease:   dialTimeout + a.client.AckTimeout + 5*time.Second,
			Backoff: dispatch.Backoff{Base: set.RetryBase.Or(0), Max: set.RetryMax.Or(0), Factor: 2, Jitter: 0.2},
		})
		if err != nil {
			return nil, fmt.Errorf("settings: %w", err)
		}
	}
	if set.Listen != "" {
		if _, ok := a.store.(store.Inbox); !ok {
			return nil, errors.New("settings.listen: the store keeps no inbox, so a resent message could be applied twice")
		}
		a.server = &mllp.Server{Handler: a.receive, AllowedPeers: a.allow, TLSConfig: a.tls, Logger: env.Logger}
	}
	if set.Mode == ModePASConfirmed {
		if err := a.confirmBookings(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// withDefaults fills the settings left empty.
func (s Settings) withDefaults(env adapters.Env) Settings {
	org := env.Principal.Organization
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.Application, "SIGNPOST")
	def(&s.Facility, org)
	def(&s.PASApplication, "PAS")
	def(&s.PASFacility, org)
	def(&s.Version, "2.5.1")
	return s
}

// config builds the TLS configuration: the certificate presented, and the
// CA that verifies the peer (client certificates required on the listener).
func (t *TLS) config() (*tls.Config, error) {
	c, err := adapters.TLSConfig(t.Cert, t.Key, t.CA)
	if err != nil {
		return nil, err
	}
	if t.CA != "" {
		c.ClientCAs, c.ClientAuth = c.RootCAs, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// Start binds the listener and starts it and the dispatcher.
func (a *Adapter) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run.Running() {
		return adapters.ErrStarted
	}
	var work []func(context.Context)
	if a.server != nil {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", a.set.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		a.listenOn = ln.Addr()
		work = append(work, func(run context.Context) {
			if err := a.server.Serve(run, ln); err != nil {
				a.listenerFailed(err)
			}
		})
	}
	if a.dispatcher != nil {
		work = append(work, func(run context.Context) { _ = a.dispatcher.Run(run) })
	}
	a.listenAt = time.Time{}
	return a.run.Start(ctx, work...)
}

// Stop stops the listener and the dispatcher, waits for them, and closes
// the connection to the PAS.
func (a *Adapter) Stop(ctx context.Context) error {
	stopped, err := a.run.Stop(ctx)
	if stopped && err == nil && a.client != nil {
		a.client.Close()
	}
	return err
}

// Addr is the listener's bound address (nil before Start or without
// one): tests listen on port 0.
func (a *Adapter) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.listenOn
}

// Status says how the instance is doing: stopped; down when its
// listener failed; degraded when its last exchange with the PAS (a
// message sent or a booking asked) failed more recently than its last
// success, saying since when, or when messages wait or are dead; up
// otherwise.
func (a *Adapter) Status(ctx context.Context) adapters.Status {
	a.mu.Lock()
	st := adapters.Status{State: adapters.StateUp, LastError: a.lastErr, LastErrorAt: a.lastAt}
	listenAt := a.listenAt
	peer := []adapters.Exchanges{a.confirms}
	if !a.run.Running() {
		st.State = adapters.StateStopped
	}
	a.mu.Unlock()
	if a.dispatcher != nil {
		ds := a.dispatcher.Status()
		if ds.LastErrorAt.After(st.LastErrorAt) {
			st.LastError, st.LastErrorAt = ds.LastError, ds.LastErrorAt
		}
		peer = append(peer, adapters.Exchanges{OK: ds.LastDelivered, Fail: ds.LastErrorAt, FailingSince: ds.FailingSince})
	}
	switch {
	case st.State != adapters.StateUp:
	case !listenAt.IsZero():
		st.State, st.Detail = adapters.StateDown, "the listener failed at "+listenAt.UTC().Format(time.RFC3339)+": the PAS's messages are not received"
	default:
		if since, ok, failing := failingSince(peer); failing {
			st.State, st.Detail = adapters.StateDegraded, "exchanges with the PAS fail since "+since.UTC().Format(time.RFC3339)
			if ok.IsZero() {
				st.Detail += " (none has succeeded yet)"
			} else {
				st.Detail += " (the last succeeded at " + ok.UTC().Format(time.RFC3339) + ")"
			}
		}
	}
	if a.dispatcher != nil {
		for _, b := range adapters.BacklogOf(ctx, a.store, a.env.Now(), a.env.Name) {
			st.Backlog = append(st.Backlog, b)
			if b.Dead == 0 && b.Pending == 0 || st.State == adapters.StateStopped || st.State == adapters.StateDown {
				continue
			}
			wait := fmt.Sprintf("%d messages wait, %d dead letters", b.Pending+b.InFlight, b.Dead)
			if st.State == adapters.StateUp {
				st.State, st.Detail = adapters.StateDegraded, wait
			} else {
				st.Detail += "; " + wait
			}
		}
	}
	return st
}

// failingSince reports whether the last of all exchanges with the PAS
// (the dispatcher's and the confirmer's) failed, since when (the first
// failure after the last success), and the last success.
func failingSince(xs []adapters.Exchanges) (since, ok time.Time, failing bool) {
	var fail time.Time
	for _, x := range xs {
		if x.OK.After(ok) {
			ok = x.OK
		}
		if x.Fail.After(fail) {
			fail = x.Fail
		}
	}
	if !fail.After(ok) {
		return time.Time{}, ok, false
	}
	since = fail
	for _, x := range xs {
		if !x.FailingSince.IsZero() && x.FailingSince.After(ok) && x.FailingSince.Before(since) {
			since = x.FailingSince
		}
	}
	return since, ok, true
}

// failed records an error for Status.
func (a *Adapter) failed(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastErr, a.lastAt = msg, a.env.Now()
	a.env.Logger.Warn("pas adapter", "error", msg)
}

// listenerFailed records that the listener stopped with err: the
// instance is down until it is started again.
func (a *Adapter) listenerFailed(err error) {
	a.failed(fmt.Sprintf("listener: %v", err))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.listenAt = a.lastAt
}

// asked records the outcome of one of the confirmer's exchanges with the
// PAS: accepted (AA), or failed with msg (no answer, an unreadable one,
// or a refusal).
func (a *Adapter) asked(failure string) {
	if failure != "" {
		a.failed(failure)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.confirms.Record(a.env.Now(), failure == "")
}
