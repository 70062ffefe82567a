// Package offer is Signpost's earlier-slot offers: patients waiting for an
// earlier appointment are offered the slots that free up.
//
// Who waits: a patient who asked for an earlier date on their booked
// appointment (Appointment/{id}/$request-earlier, recorded as a Task with
// code earlier-slot, focus the appointment), and every referral on the
// slot-issues worklist (no request needed). When a slot frees up (a
// booking cancelled, a hold expired, a new free slot published, however
// the write arrives: the Slot rule sees it and acts once the transaction
// has committed), the waiting patients are taken in order (two-week-wait,
// then urgent, then routine; within each, the oldest referral first), and
// the first whose referral the slot suits (the referral service's own
// judgement, booking.Referrals.Plan, as $find uses it) and for whom it is
// earlier than their current booking (and inside their window) gets an
// offer: a hold (a pending Appointment, its slot busy-tentative until its
// hold-expires instant, so booking's sweeper releases it) carrying the
// OfferExtension, announced by a Communication (CommunicationCategory).
//
// Accepting is $book on the offer (or any write that books it): in the
// same transaction the booking it replaces is cancelled, as $reschedule
// does, and the referral's state follows. Declining ($decline-offer, or
// cancelling the offer) or the hold expiring frees the slot, which is
// then offered to the next patient. A patient holds at most one offer at
// a time, and is never offered the same slot twice.
package offer

import (
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Canonical URLs and codes of offers.
const (
	// CodeSystem codes the request Task (TaskCode), its businessStatus
	// (Waiting, Offered) and the Communications that announce offers
	// (CommunicationCategory).
	CodeSystem = referral.Base + "/CodeSystem/earlier-slot"
	// TaskCode is the Task.code of a request for an earlier slot.
	TaskCode = "earlier-slot"
	// Waiting and Offered are a request's businessStatus: no offer out,
	// or an offer out (Task.output names it).
	Waiting = "waiting"
	Offered = "offered"
	// CommunicationCategory (in CodeSystem) is the Communication.category
	// of an offer's announcement. Such a Communication is created with
	// status preparation, recipient and subject the patient, about the
	// offered Appointment, and the text in payload.contentString: a
	// channel that delivers Communications picks these up by category
	// (Communication?category=CodeSystem|earlier-slot-offer&status=preparation)
	// and should deliver only while the offer is still pending; an offer
	// that ends before delivery has its announcement stopped.
	CommunicationCategory = "earlier-slot-offer"
	// Extension is referral.OfferExtension: on an offer and the booking it
	// becomes (server-owned).
	Extension = referral.OfferExtension
)

// Signpost error codes offers report.
const (
	ErrNotOffer    = "NOT_AN_OFFER"
	ErrNoReferral  = "NO_REFERRAL"
	ErrNotBooked   = "APPOINTMENT_NOT_BOOKED"
	ErrServerOwned = "SERVER_OWNED"
)

// Searcher parses FHIR search parameters into a query (search.Registry).
type Searcher interface {
	Parse(resourceType string, params url.Values, opts search.ParseOptions) (*search.Query, error)
}

// Config configures offers. The zero value of every field has a working
// default.
type Config struct {
	// HoldFor is how long an offer holds its slot for the patient; default
	// DefaultHoldFor.
	HoldFor time.Duration
	// Off stops new offers being made (requests are still recorded, and
	// offers already out can still be accepted or declined).
	Off bool
	// Location is the time zone of date-only request windows; default
	// Europe/London.
	Location *time.Location
	// Logger logs offers made and failures to make one.
	Logger *slog.Logger
}

// DefaultHoldFor is how long an offer holds its slot unless configured:
// long enough for a patient told by text or e-mail to answer, short enough
// that a slot a patient ignores reaches the next one the same day.
const DefaultHoldFor = 2 * time.Hour

// Service makes, accepts and declines offers.
type Service struct {
	cfg       Config
	repo      *write.Path
	search    Searcher
	referrals booking.Referrals
}

// own marks the writes offers make themselves (an offer created, a request
// moved): the package's rules let them set what is server-owned.
var own = write.PutOptions{By: "offer"}

// New returns the offers service over rp and registers its rules with rp
// (names "offer.appointment", "offer.slot" and "offer.request"; app's rule
// order places them). referrals judges whether a slot suits a referral.
func New(cfg Config, rp *write.Path, s Searcher, referrals booking.Referrals) (*Service, error) {
	if cfg.HoldFor <= 0 {
		cfg.HoldFor = DefaultHoldFor
	}
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Europe/London")
		if err != nil {
			return nil, err
		}
		cfg.Location = loc
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	o := &Service{cfg: cfg, repo: rp, search: s, referrals: referrals}
	rp.AddRule("Appointment", "offer.appointment", o.appointmentRule)
	rp.AddRule("Slot", "offer.slot", o.slotRule)
	rp.AddRule("Task", "offer.request", o.requestRule)
	return o, nil
}

// Operations returns $request-earlier and $decline-offer.
func (o *Service) Operations() []*operation.Operation {
	return []*operation.Operation{o.requestOp(), o.declineOp()}
}

// HoldFor returns how long an offer holds its slot.
func (o *Service) HoldFor() time.Duration { return o.cfg.HoldFor }

// serverCtx is the context of the server's own offer work, begun after a
// caller's write committed: not the caller's (its principal does not make
// offers to other patients), and not cancelled with its request.
func serverCtx() context.Context {
	return write.AsServer(context.Background())
}
