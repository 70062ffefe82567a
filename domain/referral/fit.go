package referral

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// A booking fits its referral: the rule that every booking based on a
// referral passes, whichever way it arrives (POST or PUT Appointment, a
// Bundle entry, $book, $hold, $reschedule), that $find offers only what
// passes, and that $shortlist ranks by (judge).
//
// The service booked must suit the referral as $shortlist judges services
// (specialty or service type, active, accepting referrals, commissioned
// for the patient's commissioner, patient eligible) and be directly
// bookable; or be on the referral's saved shortlist; or be the service the
// referral was redirected to. A two-week-wait referral is booked to start
// within TwoWeekWaitDays calendar days of its authoredOn, unless the
// booking gives a reason (BreachReasonExtension), which the referral's Task
// then records (BreachExtension).

// Error codes (https://signpost.example/fhir/CodeSystem/error) of the rule.
const (
	ErrNotSuitable        = "SERVICE_NOT_SUITABLE_FOR_REFERRAL"
	ErrOutsideTwoWeekWait = "OUTSIDE_TWO_WEEK_WAIT"
	ErrNoSlots            = "NO_SLOTS_AVAILABLE"
	ErrProviderBooks      = "PROVIDER_BOOKS"
)

// Extensions of the rule.
const (
	// BreachReasonExtension (valueString, on an Appointment) is why a
	// two-week-wait referral is booked later than its wait allows.
	BreachReasonExtension = booking.ExtBreachReason
	// BreachExtension (on the referral's Task, server-owned) records such a
	// booking: sub-extensions reason, appointment and start.
	BreachExtension = Base + "/StructureDefinition/two-week-wait-breach"
	// RedirectedExtension (valueReference, on the referral's Task,
	// server-owned) is the service $redirect sent the referral to.
	RedirectedExtension = Base + "/StructureDefinition/redirected-to"
)

// TwoWeekWaitDays is how many calendar days after its authoredOn a
// two-week-wait referral's appointment may start on.
const TwoWeekWaitDays = 14

// fit is a referral as its bookings are judged.
type fit struct {
	sr         *fhir.Resource
	r          requestView
	task       *fhir.Resource
	tv         taskView
	pc         patientContext
	shortlist  []string  // saved shortlist, "HealthcareService/id"
	redirected string    // the service $redirect named, if any
	deadline   time.Time // two-week wait: a booking must start before it; zero otherwise
}

// fitOf reads what judging bookings for the referral sr needs.
func (s *Service) fitOf(ctx context.Context, rd store.Reader, sr *fhir.Resource) (*fit, error) {
	f := &fit{sr: sr}
	if err := decode(sr.JSON, &f.r, "ServiceRequest"); err != nil {
		return nil, err
	}
	task, err := s.referralTask(ctx, rd, sr.Reference())
	if err != nil {
		return nil, err
	}
	f.task = task
	if err := decode(task.JSON, &f.tv, "Task"); err != nil {
		return nil, err
	}
	now := s.cfg.Now().In(s.cfg.Location)
	if f.pc, err = s.patientContext(ctx, rd, elem.Str(f.r.Subject.Reference), now); fhir.KindOf(err) == fhir.Unprocessable {
		f.pc = patientContext{age: -1, whereFrom: "none"} // a subject not on this server: nothing known of them
	} else if err != nil {
		return nil, err
	}
	for _, e := range elem.Extensions(f.r.Extension, ShortlistExtension) {
		if e.ValueReference != nil {
			f.shortlist = append(f.shortlist, canonicalRef(elem.Str(e.ValueReference.Reference)))
		}
	}
	for _, e := range elem.Extensions(f.tv.Extension, RedirectedExtension) {
		if e.ValueReference != nil {
			f.redirected = canonicalRef(elem.Str(e.ValueReference.Reference))
		}
	}
	if f.r.twoWeekWait() {
		authored := f.r.AuthoredOn
		if authored == "" {
			var t struct {
				AuthoredOn string `json:"authoredOn"`
			}
			_ = decode(task.JSON, &t, "Task")
			authored = t.AuthoredOn
		}
		if day, ok := calendarDay(authored, s.cfg.Location); ok {
			f.deadline = day.AddDate(0, 0, TwoWeekWaitDays+1)
		}
	}
	return f, nil
}

// calendarDay returns the first instant of the day a FHIR date or dateTime
// falls on in loc.
func calendarDay(v string, loc *time.Location) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		if t, err = time.ParseInLocation("2006-01-02", v, loc); err != nil {
			return time.Time{}, false
		}
	}
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc), true
}

func canonicalRef(ref string) string {
	if typ, id, ok := fhir.SplitReference(ref); ok {
		return typ + "/" + id
	}
	return ref
}

// unsuitable says why a booking for the referral cannot be at service (a
// "HealthcareService/id"); nothing when it can.
func (f *fit) unsuitable(ctx context.Context, rd store.Reader, service string) ([]string, error) {
	service = canonicalRef(service)
	if service == f.redirected || slices.Contains(f.shortlist, service) {
		return nil, nil
	}
	res, err := readRef(ctx, rd, service)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return []string{service + " does not exist"}, nil
	} else if err != nil {
		return nil, err
	}
	return f.judgeService(res)
}

// judgeService is unsuitable for a service already read. An indirectly
// bookable service is not booked through Signpost's choice, except by its
// own provider once the referral is with it (its Task's owner, in triage
// or after): the provider records the appointment it made.
func (f *fit) judgeService(res *fhir.Resource) ([]string, error) {
	var hs serviceView
	if err := decode(res.JSON, &hs, "HealthcareService"); err != nil {
		return nil, err
	}
	c := Candidate{Service: res.Reference()}
	judge(&c, &f.r, &hs, &f.pc)
	if hs.indirectlyBookable() && !f.withProvider(res.Reference()) {
		c.Excluded = append(c.Excluded, "service is indirectly bookable: its provider books after triage")
	}
	return c.Excluded, nil
}

// withProvider reports whether the referral is with service for triage or
// after it.
func (f *fit) withProvider(service string) bool {
	switch f.tv.state() {
	case AwaitingTriage, Accepted, Booked:
		return canonicalRef(elem.Str(f.tv.Owner.Reference)) == service
	}
	return false
}

func (hs *serviceView) indirectlyBookable() bool {
	for _, ch := range hs.Characteristic {
		if elem.HasCoding(ch, directory.BookabilitySystem, directory.IndirectlyBookable) {
			return true
		}
	}
	return false
}

// checkServices refuses a booking for the referral at any of services
// that does not fit it, or one that names no service at all.
func (f *fit) checkServices(ctx context.Context, rd store.Reader, services []string) error {
	if len(services) == 0 {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.participant",
			"the appointment names no HealthcareService (as a participant or its slots' schedule actor), so it cannot be checked against its referral %s", f.sr.Reference()).
			WithDetails(ErrNotSuitable)
	}
	for _, svc := range services {
		why, err := f.unsuitable(ctx, rd, svc)
		if err != nil {
			return err
		}
		if len(why) > 0 {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.participant",
				"%s is not suitable for referral %s: %s", canonicalRef(svc), f.ubrnLabel(), strings.Join(why, "; ")).
				WithDetails(ErrNotSuitable)
		}
	}
	return nil
}

// checkStart refuses a two-week-wait booking starting on or after the
// deadline, unless reason says why.
func (f *fit) checkStart(start time.Time, reason string) (breach bool, err error) {
	if f.deadline.IsZero() || start.Before(f.deadline) {
		return false, nil
	}
	if strings.TrimSpace(reason) != "" {
		return true, nil
	}
	last := f.deadline.AddDate(0, 0, -1).Format("2006-01-02")
	return false, fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.start",
		"referral %s is a two-week-wait referral: its appointment must start by %s (%d calendar days after it was made), not %s; to book it later anyway give the reason (extension %s, or $book's breach-reason)",
		f.ubrnLabel(), last, TwoWeekWaitDays, start.Format(time.RFC3339), BreachReasonExtension).WithDetails(ErrOutsideTwoWeekWait)
}

func (f *fit) ubrnLabel() string {
	if u := f.r.ubrn(); u != "" {
		return "UBRN " + u
	}
	return f.sr.Reference()
}

// Plan tells booking's $find what the referral allows (booking.Referrals).
func (s *Service) Plan(ctx context.Context, rd store.Reader, referralID string) (*booking.Plan, error) {
	sr, err := rd.Read(ctx, "ServiceRequest", referralID)
	if err != nil {
		return nil, err
	}
	f, err := s.fitOf(ctx, rd, sr)
	if err != nil {
		return nil, err
	}
	switch st := f.tv.state(); st {
	case Cancelled, Completed:
		return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "referral-identifier",
			"referral %s is %s: nothing can be booked for it", f.ubrnLabel(), st).WithDetails("ILLEGAL_TRANSITION")
	case AwaitingTriage:
		return &booking.Plan{Patient: f.patientID(), Notice: providerBooks(f)}, nil
	}
	plan := &booking.Plan{Patient: f.patientID(), Until: f.deadline}
	services, err := f.candidates(ctx, rd, s)
	if err != nil {
		return nil, err
	}
	for _, res := range services {
		why := []string{}
		if ref := res.Reference(); ref != f.redirected && !slices.Contains(f.shortlist, ref) {
			if why, err = f.judgeService(res); err != nil {
				return nil, err
			}
		}
		if len(why) == 0 {
			plan.Services = append(plan.Services, res.Reference())
		}
	}
	within := ""
	if !f.deadline.IsZero() {
		within = " before its two-week wait ends on " + f.deadline.AddDate(0, 0, -1).Format("2006-01-02")
	}
	plan.NoSlots = fhir.Issue{Severity: "warning", Code: "not-found", Details: ErrNoSlots, Expression: []string{"referral-identifier"},
		Diagnostics: fmt.Sprintf("no service suitable for referral %s has a free slot%s: raise an appointment slot issue with POST %s/$defer and the parameter reason \"no slots\"; the provider then contacts the patient to book",
			f.ubrnLabel(), within, f.sr.Reference())}
	return plan, nil
}

var _ booking.Referrals = (*Service)(nil)

// candidates returns the services a booking for the referral might be at:
// those of its specialty (performerType) or service type (code), found by
// search rather than by judging the whole directory, and those of its
// saved shortlist and redirection. Each is then judged.
func (f *fit) candidates(ctx context.Context, rd store.Reader, s *Service) ([]*fhir.Resource, error) {
	seen := map[string]bool{}
	var out []*fhir.Resource
	add := func(rs ...*fhir.Resource) {
		for _, r := range rs {
			if !seen[r.Reference()] {
				seen[r.Reference()] = true
				out = append(out, r)
			}
		}
	}
	for param, cc := range map[string]r4.CodeableConcept{"specialty": f.r.PerformerType, "service-type": f.r.Code} {
		var values []string
		for _, c := range cc.Coding {
			if code := elem.Str(c.Code); code != "" {
				values = append(values, tokenValue(elem.Str(c.System), code))
			}
		}
		if len(values) == 0 {
			continue
		}
		found, err := find(ctx, rd, s.reg, "HealthcareService", url.Values{param: {strings.Join(values, ",")}}.Encode())
		if err != nil {
			return nil, err
		}
		add(found...)
	}
	for _, ref := range append(slices.Clone(f.shortlist), f.redirected) {
		if ref == "" || seen[ref] {
			continue
		}
		res, err := readRef(ctx, rd, ref)
		if gone(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		add(res)
	}
	return out, nil
}

// tokenValue is a token search value for a coding: system|code, or the
// code alone (any system) when it has none, escaped as FHIR search
// escapes.
func tokenValue(system, code string) string {
	esc := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `|`, `\|`, `$`, `\$`)
	if system == "" {
		return esc.Replace(code)
	}
	return esc.Replace(system) + "|" + esc.Replace(code)
}

func (f *fit) patientID() string {
	if typ, id, ok := fhir.SplitReference(elem.Str(f.r.Subject.Reference)); ok && typ == "Patient" {
		return id
	}
	return ""
}

// providerBooks is $find's answer for a referral the provider books after
// triage.
func providerBooks(f *fit) *fhir.Issue {
	who := "its provider"
	if elem.Str(f.tv.Owner.Reference) != "" {
		who = elem.Str(f.tv.Owner.Reference)
	}
	return &fhir.Issue{Severity: "information", Code: "informational", Details: ErrProviderBooks, Expression: []string{"referral-identifier"},
		Diagnostics: fmt.Sprintf("referral %s is with %s for triage: the provider books the appointment and tells the patient, so there is nothing to choose here", f.ubrnLabel(), who)}
}
