package booking

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// Referrals is what booking asks of the referral service about a referral
// that $find is asked to find appointments for (referral.Service
// implements it). Booking an Appointment based on a referral is checked by
// the referral service's own rule; $find only offers what that rule
// accepts.
type Referrals interface {
	Plan(ctx context.Context, r store.Reader, referralID string) (*Plan, error)
}

// Plan is what a referral allows $find to offer.
type Plan struct {
	Patient string // id of the Patient the referral is for
	// Services are the HealthcareServices ("HealthcareService/id") a
	// booking for the referral may be at: suitable for it, on its saved
	// shortlist, or the service it was redirected to.
	Services []string
	// Until, when not zero, is the instant from which a booking would
	// breach the referral's two-week wait: $find offers nothing later.
	Until time.Time
	// Notice, when set, is why $find offers nothing for the referral now
	// (its chosen service is indirectly bookable: the provider books after
	// triage): $find answers it instead of proposals.
	Notice *fhir.Issue
	// NoSlots is the issue $find adds when no service in Services has a
	// free slot within its planning horizon (before Until), whatever the
	// caller's own filters: it says how to raise an appointment slot issue.
	NoSlots fhir.Issue
}

// referralActors is the $find actor group that confines a search to the
// referral's services.
const referralActors = "referral"

// outcomeEntry is a searchset entry holding an OperationOutcome (search
// mode "outcome") with issues.
func outcomeEntry(issues ...fhir.Issue) bundleEntry {
	return bundleEntry{FullURL: "urn:uuid:" + uuid.NewString(), Resource: fhir.OperationOutcome(issues...), Mode: "outcome"}
}

// planFind confines fr to what the referral allows: its patient, its
// services, its two-week wait. It returns nil when fr names no referral.
func (b *Service) planFind(ctx context.Context, r store.Reader, fr *findRequest) (*Plan, error) {
	if fr.referral == "" || b.Referrals == nil {
		return nil, nil
	}
	plan, err := b.Referrals.Plan(ctx, r, fr.referral)
	if err != nil || plan.Notice != nil {
		return plan, err
	}
	if fr.patient != "" && fr.patient != plan.Patient {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "patient-reference",
			"Patient/%s is not the patient of the referral named by referral-identifier", fr.patient)
	}
	fr.patient = plan.Patient
	fr.actors[referralActors] = append([]string{}, plan.Services...) // none: no schedule matches
	if !plan.Until.IsZero() {
		fr.high = min(fr.high, plan.Until.UnixMicro())
	}
	return plan, nil
}

// anyFree reports whether any of the plan's services has a free, bookable
// slot from now on (before plan.Until), whatever else $find was asked.
func (b *Service) anyFree(ctx context.Context, r store.Reader, plan *Plan) (bool, error) {
	now := b.now()
	high := now.AddDate(anyFreeYears, 0, 0)
	if !plan.Until.IsZero() {
		high = plan.Until
	}
	if !high.After(now) || len(plan.Services) == 0 {
		return false, nil
	}
	fr := &findRequest{low: now.UnixMicro(), high: high.UnixMicro(), count: 1,
		actors: map[string][]string{referralActors: plan.Services}}
	props, err := b.propose(ctx, r, fr)
	return len(props) > 0, err
}

// anyFreeYears bounds how far ahead anyFree looks; planning horizons end
// sooner.
const anyFreeYears = 5
