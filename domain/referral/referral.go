// Package referral is Signpost's referral management, in the manner of the
// NHS e-Referral Service: Patients with checked NHS numbers, referrals
// (ServiceRequest) that receive a UBRN, one workflow Task per referral whose
// businessStatus moves through a fixed state machine with a Provenance for
// every move, the provider and referrer actions ($accept, $reject,
// $redirect, $defer, $cancel), patient choice ($shortlist), booking with a
// UBRN and access code ($access-code, $ubrn-access), attachments, advice
// and guidance, and commissioners' reports.
//
// Every invariant is a write.Rule, so it holds whichever way a write
// arrives: a POST, a PUT, a transaction bundle or an operation.
package referral

import (
	"context"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Canonical URLs and identifier systems the package reads and writes.
const (
	Base               = "https://signpost.example/fhir"
	UBRNSystem         = "https://fhir.nhs.uk/Id/UBRN"
	NHSNumberSystem    = "https://fhir.nhs.uk/Id/nhs-number"
	StateSystem        = Base + "/CodeSystem/referral-state"
	TaskCodeSystem     = Base + "/CodeSystem/referral-task"
	TaskCode           = "referral-workflow"
	WorklistExtension  = Base + "/StructureDefinition/worklist"
	WorklistSystem     = Base + "/CodeSystem/worklist"
	ShortlistExtension = Base + "/StructureDefinition/shortlist"
	AccessExtension    = Base + "/StructureDefinition/access-code"
	PriorityExtension  = Base + "/StructureDefinition/nhs-priority"
	PrioritySystem     = Base + "/CodeSystem/nhs-priority"
	CommissionedBy     = Base + "/StructureDefinition/commissioned-by"
	Eligibility        = Base + "/StructureDefinition/eligibility"
	AcceptingReferrals = Base + "/StructureDefinition/accepting-referrals"
	WaitingTime        = Base + "/StructureDefinition/waiting-time"
	Geolocation        = "http://hl7.org/fhir/StructureDefinition/geolocation"
)

// TokenMinter issues the short-lived access token $ubrn-access hands out:
// limited to one referral and its patient. The embedded authorisation
// server implements it (wired in package app).
type TokenMinter interface {
	MintReferralToken(ctx context.Context, patientID, referralID string, ttl time.Duration) (string, error)
}

// MinterFunc adapts a function to TokenMinter.
type MinterFunc func(ctx context.Context, patientID, referralID string, ttl time.Duration) (string, error)

// MintReferralToken calls f.
func (f MinterFunc) MintReferralToken(ctx context.Context, patientID, referralID string, ttl time.Duration) (string, error) {
	return f(ctx, patientID, referralID, ttl)
}

// Config configures the referral service. The zero value of every field
// has a working default.
type Config struct {
	// Score weights $shortlist's ranking; default DefaultScore.
	Score Score
	// Postcodes locates patients by postcode when their address has no
	// geolocation (NormalisePostcode form → position; see ReadPostcodes).
	Postcodes map[string]LatLon
	// TokenTTL is the lifetime of a $ubrn-access token; default 15 minutes.
	TokenTTL time.Duration
	// AccessCodeTTL is how long an access code from $access-code works;
	// default 180 days.
	AccessCodeTTL time.Duration
	// Location is the time zone whose calendar days waits count; default UTC.
	Location *time.Location
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service holds the referral rules and operations.
type Service struct {
	repo *write.Path
	reg  *search.Registry
	cfg  Config
	// Tokens mints $ubrn-access tokens. Set it before serving; nil makes
	// $ubrn-access answer 503-like errors (no authorisation server).
	Tokens   TokenMinter
	attempts attempts // failed $ubrn-access attempts, counted in the store
}

// New returns the referral service over rp, searching with reg.
func New(rp *write.Path, reg *search.Registry, cfg Config) *Service {
	if cfg.Score == (Score{}) {
		cfg.Score = DefaultScore
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 15 * time.Minute
	}
	if cfg.AccessCodeTTL == 0 {
		cfg.AccessCodeTTL = 180 * 24 * time.Hour
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{repo: rp, reg: reg, cfg: cfg, attempts: attempts{st: rp.Store(), max: 5, window: 15 * time.Minute}}
}

// Register adds the package's rules to the repo: call it once at start-up.
func (s *Service) Register() {
	s.repo.AddRule("Patient", "referral.patient", s.patientRule)
	s.repo.AddRule("ServiceRequest", "referral.service-request", s.serviceRequestRule)
	s.repo.AddRule("ServiceRequest", "referral.category", s.categoryRule)
	s.repo.AddRule("Task", "referral.task", s.taskRule)
	s.repo.AddRule("Appointment", "referral.guidance", s.guidanceRule)
	s.repo.AddPrepare("Appointment", "referral.appointment", s.prepareAppointment)
	s.repo.AddRule("Appointment", "referral.appointment", s.appointmentRule)
	s.repo.AddRule("DocumentReference", "referral.document-reference", documentReferenceRule)
	s.repo.AddRule("Binary", "referral.binary", binaryRule)
	s.repo.AddRule("QuestionnaireResponse", "referral.questionnaire-response", s.questionnaireResponseRule)
	s.repo.AddRule("Communication", "referral.communication", s.communicationRule)
}

// Operations returns the operations the package implements, for the API.
func (s *Service) Operations() []*operation.Operation {
	return []*operation.Operation{
		s.transitionOp("accept"), s.transitionOp("reject"), s.transitionOp("redirect"),
		s.transitionOp("defer"), s.transitionOp("cancel"), s.recategoriseOp(),
		s.shortlistOp(), s.accessCodeOp(), s.ubrnAccessOp(), s.convertOp(),
		s.reportOp("referral-trends", s.referralTrends), s.reportOp("capacity-gaps", s.capacityGaps),
		s.reportOp("waiting-times", s.waitingTimes), s.reportOp("booking-outcomes", s.bookingOutcomes),
		s.reportOp("patient-experience", s.patientExperience),
	}
}
