// Package gpconnect is the GP Connect provider adapter (kind "gpconnect"):
// it makes a GP practice that publishes its appointment book through GP
// Connect Appointment Management (1.2.x, FHIR STU3) searchable and
// bookable through Signpost's R4 API, one instance per practice.
//
//   - the client (client.go): every request carries the GP Connect
//     headers and the unsigned JWT built from the Signpost principal who
//     asked (the poller acts as the instance's principal);
//   - the poller (poll.go): the practice's free slots over the next
//     Settings.HorizonDays days are copied into Signpost as Schedules and
//     Slots, so that every search, $find and booking rule works on them;
//   - bookings (confirm.go): a booking of the practice's slots is made at
//     the practice (after finding the patient there) before Signpost
//     confirms it, through booking.Service.ConfirmedBy as the hospital
//     PAS adapter's pas-confirmed mode does;
//   - amendments and cancellations (outbound.go): sent to the practice
//     through the outbox (adapters/dispatch), as is the cancellation that
//     reconciles a booking the practice made but Signpost could not keep.
//
// The STU3 ↔ R4 mapping is package adapters/gpconnect/stu3.
package gpconnect

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/store"
)

func init() { adapters.Register(Kind, New) }

// Adapter is one gpconnect instance: one GP practice.
type Adapter struct {
	env      adapters.Env
	set      Settings
	services map[string]bool
	client   *client
	store    store.Store

	dispatcher *dispatch.Dispatcher // delivers amendments and cancellations

	pollMu   sync.Mutex    // one poll at a time
	pollWake chan struct{} // wakes the poller

	run adapters.Runner // the poller and the dispatcher

	mu sync.Mutex
	// The poller's record: its polls, the last failed one's error, and
	// how many failed in a row.
	polls     adapters.Exchanges
	pollErr   string
	pollFails int
	// The bookings' exchanges with the practice, likewise.
	bookings adapters.Exchanges
	lastErr  string
	lastAt   time.Time
}

var _ adapters.Waker = (*Adapter)(nil)
var _ adapters.Watcher = (*Adapter)(nil)

// New is the gpconnect Factory: it reads and validates settings.
func New(env adapters.Env, settings json.RawMessage) (adapters.Adapter, error) {
	var set Settings
	if err := adapters.DecodeSettings(settings, &set); err != nil {
		return nil, err
	}
	set = set.withDefaults(env)
	services := map[string]bool{}
	for _, s := range set.Services {
		services[s] = true
	}
	for code, s := range set.Categories {
		if !services[s] {
			return nil, fmt.Errorf("settings.categories.%s: %q is not one of settings.services %q", code, s, set.Services)
		}
	}
	var tlsc *tls.Config
	if set.TLS != nil {
		var err error
		if tlsc, err = set.TLS.config(); err != nil {
			return nil, fmt.Errorf("settings.tls: %w", err)
		}
	}
	if env.Writes == nil {
		return nil, errors.New("a gpconnect instance needs the write path")
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	a := &Adapter{env: env, set: set, services: services, store: env.Writes.Store(),
		client: newClient(set, tlsc, env.Now), pollWake: make(chan struct{}, 1)}
	ob, ok := a.store.(store.Outbox)
	if !ok {
		return nil, errors.New("the store keeps no outbox, so cancellations sent to the practice could be lost")
	}
	timeout := set.Timeout.Or(DefaultTimeout)
	var err error
	a.dispatcher, err = dispatch.New(ob, sender{a}, dispatch.Config{
		Destination: env.Name, MaxAttempts: set.MaxAttempts, Now: env.Now, Logger: env.Logger,
		// A message's exchanges (a read, then an update) within the lease.
		Lease:   3*timeout + 5*time.Second,
		Backoff: dispatch.Backoff{Base: set.RetryBase.Or(DefaultRetryBase), Max: set.RetryMax.Or(DefaultRetryMax), Factor: 2, Jitter: 0.2},
	})
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	if err := a.confirmBookings(); err != nil {
		return nil, err
	}
	return a, nil
}

// Settings returns the instance's settings, defaults filled in.
func (a *Adapter) Settings() Settings { return a.set }

// Start starts the poller (which polls at once) and the dispatcher.
func (a *Adapter) Start(ctx context.Context) error {
	return a.run.Start(ctx, a.runPoller, func(run context.Context) { _ = a.dispatcher.Run(run) })
}

// Stop stops the poller and the dispatcher and waits for them.
func (a *Adapter) Stop(ctx context.Context) error {
	_, err := a.run.Stop(ctx)
	return err
}

// Wake makes the dispatcher look for messages to the practice now.
func (a *Adapter) Wake() { a.dispatcher.Wake() }

// WakePoller makes the poller poll now rather than at its next turn.
func (a *Adapter) WakePoller() {
	select {
	case a.pollWake <- struct{}{}:
	default:
	}
}

// Status says how the instance is doing: stopped; degraded when its last
// poll, its last booking exchange or its last delivery to the practice
// failed more recently than it last succeeded (saying since when), or
// when messages wait or are dead; up otherwise. Its detail always says
// when the practice was last polled successfully.
func (a *Adapter) Status(ctx context.Context) adapters.Status {
	a.mu.Lock()
	st := adapters.Status{State: adapters.StateUp, LastError: a.lastErr, LastErrorAt: a.lastAt}
	if a.polls.Fail.After(st.LastErrorAt) {
		st.LastError, st.LastErrorAt = "polling the practice: "+a.pollErr, a.polls.Fail
	}
	polls, bookings := a.polls, a.bookings
	stopped := !a.run.Running()
	a.mu.Unlock()
	ds := a.dispatcher.Status()
	if ds.LastErrorAt.After(st.LastErrorAt) {
		st.LastError, st.LastErrorAt = "sending to the practice: "+ds.LastError, ds.LastErrorAt
	}
	polled := "practice " + a.set.ODSCode + ": not polled successfully yet"
	if !polls.OK.IsZero() {
		polled = "practice " + a.set.ODSCode + ": last polled successfully at " + polls.OK.UTC().Format(time.RFC3339)
	}
	st.Detail = polled
	if stopped {
		st.State = adapters.StateStopped
	}
	var failing []string
	if polls.Failing() {
		failing = append(failing, "polls fail since "+polls.FailingSince.UTC().Format(time.RFC3339))
	}
	if bookings.Failing() {
		failing = append(failing, "bookings fail since "+bookings.FailingSince.UTC().Format(time.RFC3339))
	}
	if ds.LastErrorAt.After(ds.LastDelivered) && !ds.FailingSince.IsZero() {
		failing = append(failing, "deliveries fail since "+ds.FailingSince.UTC().Format(time.RFC3339))
	}
	for _, f := range failing {
		st.Detail += "; " + f
	}
	if len(failing) > 0 && st.State == adapters.StateUp {
		st.State = adapters.StateDegraded
	}
	for _, b := range adapters.BacklogOf(ctx, a.store, a.env.Now(), a.env.Name) {
		st.Backlog = append(st.Backlog, b)
		if b.Dead == 0 && b.Pending == 0 || stopped {
			continue
		}
		st.Detail += fmt.Sprintf("; %d messages wait, %d dead letters", b.Pending+b.InFlight, b.Dead)
		st.State = adapters.StateDegraded
	}
	return st
}

// LastPoll returns when the practice was last polled successfully, and
// the last poll's error ("" when it succeeded).
func (a *Adapter) LastPoll() (time.Time, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.polls.Failing() {
		return a.polls.OK, a.pollErr
	}
	return a.polls.OK, ""
}

// failed records an error for Status.
func (a *Adapter) failed(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastErr, a.lastAt = msg, a.env.Now()
	a.env.Logger.Warn("gpconnect adapter", "error", msg)
}

// asked records a booking exchange with the practice: failure "" when it
// worked (whatever the practice decided).
func (a *Adapter) asked(failure string) {
	if failure != "" {
		a.failed(failure)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bookings.Record(a.env.Now(), failure == "")
}
