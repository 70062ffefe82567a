// Package booking is Signpost's scheduling and booking domain: the rules
// that keep Appointments, Slots, Schedules and AppointmentResponses
// consistent on every write path, and the IHE ITI Scheduling operations
// ($find, $hold, $book) plus $reschedule.
//
// The rules are write.Rules, so they hold however a write arrives (POST,
// PUT, PATCH, conditional, transaction, operation): booking an Appointment
// (status booked or pending, with slot references) claims every slot in
// the same store transaction, and a slot that is no longer free fails the
// write with 409 and SLOT_NOT_AVAILABLE; cancelling frees them; a booked
// appointment can only be amended in the ways GP Connect allows.
//
// A proposal from $find is not an Appointment: its id is an opaque token,
// a valid FHIR id signed with a key kept in the data directory, naming the
// slots, the patient and the referral, valid for a short time (the ids
// themselves when they fit, else a store record that expires with it). A hold is a pending Appointment whose slots are
// busy-tentative until the hold-expires extension's instant; Sweep
// releases expired holds, and Run sweeps periodically.
//
// Booking writes may carry an Idempotency-Key: the API claims it
// (api/idempotency.go) and the booking rules and operations store their
// answer under it in the transaction of the write (write.Tx.Remember).
package booking

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Searcher parses FHIR search parameters into a query (search.Registry).
type Searcher interface {
	Parse(resourceType string, params url.Values, opts search.ParseOptions) (*search.Query, error)
}

// Config configures booking.
type Config struct {
	Data        string         // data directory: the proposal signing key is made there first; the one in use is the store's (store.SharedSecret)
	BaseURL     string         // public FHIR base
	Location    *time.Location // the server's time zone, for date-only windows (default Europe/London)
	HoldFor     time.Duration  // how long $hold keeps slots (default 5 minutes)
	ProposalFor time.Duration  // how long a $find proposal stays valid (default 15 minutes)
	SweepEvery  time.Duration  // how often Run releases expired holds (default 5 seconds)
	Logger      *slog.Logger
	Validator   Validator // checks $book's appointment-resource; nil skips that
	Observer    Observer  // hears of bookings, holds and conflicts (metrics); nil: nobody
}

// Service is the booking domain wired to a repo.
type Service struct {
	cfg    Config
	repo   *write.Path
	search Searcher
	key    []byte // HMAC key for proposal tokens
	now    func() time.Time

	// The schedules and services the rules and $find read, decoded once
	// per content (they are read by every booking of a service).
	schedules *write.Views[schedule]
	services  *write.Views[healthcareService]

	// Referrals tells $find what a referral allows. Set it before
	// serving; nil offers any service for a referral.
	Referrals Referrals

	// confirmers are the other systems of record, by the
	// HealthcareService id whose bookings each confirms (ConfirmedBy).
	confirmers map[string]confirmer

	// sweeping lets one Sweep run at a time: Run's and a direct call do
	// not race for the same holds, and a Sweep that returns has seen
	// every release the other made told to the Observer.
	sweeping sync.Mutex
}

// New returns the booking service over rp and registers its Rules and
// Prepare steps with rp. Register its operations with
// api.Server.AddOperation (Operations).
func New(cfg Config, rp *write.Path, s Searcher) (*Service, error) {
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Europe/London")
		if err != nil {
			return nil, fmt.Errorf("booking: %w", err)
		}
		cfg.Location = loc
	}
	if cfg.HoldFor <= 0 {
		cfg.HoldFor = 5 * time.Minute
	}
	if cfg.ProposalFor <= 0 {
		cfg.ProposalFor = 15 * time.Minute
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	// The key is shared by every process serving the store (adopting the
	// one an older release kept in cfg.Data): a proposal one process signs,
	// another books.
	key, err := store.SharedSecret(context.Background(), rp.Store(), "booking.proposal-key",
		func() ([]byte, error) { return LoadKey(cfg.Data) })
	if err != nil {
		return nil, err
	}
	b := &Service{cfg: cfg, repo: rp, search: s, key: key, now: time.Now,
		schedules: write.NewViews(decode[schedule]), services: write.NewViews(decode[healthcareService])}
	rp.AddPrepare("Appointment", "booking.slots", b.prepareAppointment)
	rp.AddRule("Appointment", "booking.clinical", b.clinicalRule)
	rp.AddRule("Appointment", "booking.appointment", b.appointmentRule)
	rp.AddRule("Slot", "booking.slot", b.slotRule)
	rp.AddRule("Schedule", "booking.schedule", b.scheduleRule)
	rp.AddRule("AppointmentResponse", "booking.response", b.responseRule)
	// A new booking of a slot already taken is refused from the
	// committed state, before the store's writer (POST Appointment,
	// $book, $hold: write.TxOptions.Precheck).
	rp.Precheck("Appointment")
	return b, nil
}

// Operations returns $find, $hold, $book and $reschedule.
func (b *Service) Operations() []*operation.Operation {
	return []*operation.Operation{b.findOp(), b.holdOp(), b.bookOp(), b.rescheduleOp()}
}

// Run releases expired holds now and then every SweepEvery until ctx ends,
// in the rounds this process takes the store's hold-sweeper lease
// (store.TakeLease: one process of several on one store sweeps each
// round). Errors are logged; the next sweep tries again.
func (b *Service) Run(ctx context.Context) {
	t := time.NewTicker(b.cfg.SweepEvery)
	defer t.Stop()
	for {
		// One process of several serving the store sweeps each round; a
		// lease that cannot be taken for another reason does not stop this
		// one (sweeping twice costs work, never correctness).
		mine, err := store.TakeLease(ctx, b.repo.Store(), "booking.hold-sweeper", time.Now().Add(b.cfg.SweepEvery*9/10))
		if err != nil && ctx.Err() == nil {
			b.cfg.Logger.Warn("taking the hold sweeper's lease", "error", err)
		}
		if mine || err != nil {
			if n, err := b.Sweep(ctx); err != nil && ctx.Err() == nil {
				b.cfg.Logger.Error("releasing expired holds", "error", err)
			} else if n > 0 {
				b.cfg.Logger.Info("released expired holds", "count", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
