// Package reminder reminds patients of their booked appointments: a
// schedule of leads (say 7 days and 1 day before the start) makes one
// Communication per appointment and lead, through the write path as the
// server, and queues it in the store's transactional outbox for the
// channel chosen for the patient (e-mail, SMS or a webhook; the senders
// live in adapters/notify).
//
// Everything is computed from the store, nothing from memory: Sweep
// searches the booked appointments whose reminder is due now, so a
// reminder due while the server was down is made when it comes back, and
// an appointment already past makes none. Each reminder carries an
// identifier naming its appointment, the start it was made for and its
// lead; Sweep looks it up in the transaction that creates it (the store's
// transactions are serialisable), so two sweeps racing make one
// reminder each.
//
// A Communication moves preparation (queued) → in-progress (being sent) →
// completed (sent), or to not-done with a statusReason: the patient opted
// out or has no contact point for any channel (made so by Sweep), the
// appointment was cancelled, moved or is past (the Appointment rule, or
// the sender's check at send time), or the channel refused it.
//
// Opting out is a Consent (see OptOut): active, category
// appointment-reminders, provision deny, naming the channels it covers
// in provision.code (none: every channel).
package reminder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The code systems and identifier system of reminders.
const (
	// IdentifierSystem is the system of a reminder's identifier, whose
	// value is "{appointment id}/{start}/{lead}": one reminder per
	// appointment, start and lead.
	IdentifierSystem = "https://signpost.example/fhir/reminder"
	// ChannelSystem codes the channels (email, sms, webhook) in
	// Communication.medium and in an opt-out's provision.code.
	ChannelSystem = "https://signpost.example/fhir/CodeSystem/reminder-channel"
	// ConsentCategorySystem and ConsentCategoryCode mark a Consent as an
	// opt-out of appointment reminders.
	ConsentCategorySystem = "https://signpost.example/fhir/CodeSystem/consent-category"
	ConsentCategoryCode   = "appointment-reminders"
	// NotDoneSystem is FHIR's communication-not-done-reason code system
	// (patient-objection, recipient-unavailable, system-error).
	NotDoneSystem = "http://terminology.hl7.org/CodeSystem/communication-not-done-reason"
	// ReasonSystem holds Signpost's reasons a reminder was not sent that
	// FHIR's code system lacks (appointment-cancelled, appointment-moved,
	// appointment-past).
	ReasonSystem = "https://signpost.example/fhir/CodeSystem/reminder-not-done-reason"
	// CategorySystem is FHIR's communication-category; a reminder has
	// code "reminder".
	CategorySystem = "http://terminology.hl7.org/CodeSystem/communication-category"
	// ParticipationModeSystem is v3 ParticipationMode, which codes the
	// e-mail (EMAILWRIT) and webhook (ONLINEWRIT) media.
	ParticipationModeSystem = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
)

// Channel is a way a reminder reaches a patient.
type Channel string

// The channels.
const (
	Email   Channel = "email"   // to the patient's e-mail contact point, over SMTP
	SMS     Channel = "sms"     // to the patient's sms or mobile phone contact point, through a gateway
	Webhook Channel = "webhook" // the Communication posted to the deployment's endpoint (a messaging hub); needs no contact point
)

// Channels are the channels that exist, in the order docs list them.
var Channels = []Channel{Email, SMS, Webhook}

// Destination is the outbox destination of channel's messages.
func Destination(ch Channel) string { return "reminders-" + string(ch) }

// Config configures reminders.
type Config struct {
	// Leads are how long before an appointment's start its reminders are
	// due (say 168h and 24h). At least one; each positive.
	Leads []time.Duration
	// Channels are the channels the deployment delivers through, in its
	// order of preference (see Choose). At least one.
	Channels []Channel
	// HowToChange tells the patient how to cancel or rebook (a phone
	// number, a web address); it ends every reminder's text.
	HowToChange string
	// Location is the time zone the text gives dates and times in
	// (default Europe/London).
	Location *time.Location
	// Now is the clock (time.Now when nil); tests inject one.
	Now func() time.Time
	// Logger receives what a sweep could not do; slog.Default() when nil.
	Logger *slog.Logger
}

// Searcher parses FHIR search parameters into a query (search.Registry).
type Searcher interface {
	Parse(resourceType string, params url.Values, opts search.ParseOptions) (*search.Query, error)
}

// Service makes, withdraws and tracks reminders.
type Service struct {
	cfg    Config
	repo   *write.Path
	search Searcher
}

// New returns the reminder service over rp, or what is wrong with cfg.
// The rule that withdraws reminders is registered apart (RegisterRule).
func New(cfg Config, rp *write.Path, s Searcher) (*Service, error) {
	var errs []error
	if len(cfg.Leads) == 0 {
		errs = append(errs, errors.New("reminder: no leads: say how long before an appointment a reminder is due"))
	}
	for i, l := range cfg.Leads {
		if l <= 0 {
			errs = append(errs, fmt.Errorf("reminder: Leads[%d] is %v; it must be positive", i, l))
		}
	}
	if len(cfg.Channels) == 0 {
		errs = append(errs, errors.New("reminder: no channels"))
	}
	for i, ch := range cfg.Channels {
		if !slices.Contains(Channels, ch) {
			errs = append(errs, fmt.Errorf("reminder: Channels[%d] is %q; it must be one of %q", i, ch, Channels))
		} else if slices.Index(cfg.Channels, ch) != i {
			errs = append(errs, fmt.Errorf("reminder: Channels[%d]: %q is listed twice", i, ch))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.Leads = slices.Clone(cfg.Leads)
	slices.Sort(cfg.Leads)
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Europe/London")
		if err != nil {
			return nil, fmt.Errorf("reminder: %w", err)
		}
		cfg.Location = loc
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, repo: rp, search: s}, nil
}

// RegisterRule registers on rp the rule that withdraws an appointment's
// pending reminders when it is cancelled or moved
// ("reminder.appointment", which app/rules.go places among the
// Appointment's rules). It runs whether or not reminders are configured:
// reminders queued before they were switched off are withdrawn too.
func RegisterRule(rp *write.Path, s Searcher) {
	w := &withdrawer{search: s}
	rp.AddRule("Appointment", "reminder.appointment", w.appointmentRule)
}

// withdrawer withdraws pending reminders.
type withdrawer struct{ search Searcher }

// Now returns the service's clock's time.
func (s *Service) Now() time.Time { return s.cfg.Now() }

// SweepResult is what a Sweep did.
type SweepResult struct {
	// Queued counts the reminders queued for sending, by channel.
	Queued map[Channel]int
	// NotDone counts the reminders recorded as not sent (opted out, no
	// contact point).
	NotDone int
}

// Sweep makes the reminders due now: for every booked appointment that
// starts after now and within the longest lead, the reminder of the
// shortest lead whose time has come (start − lead ≤ now), unless it
// exists. A reminder whose time passed while a shorter one's has come
// too is not made: after a downtime a patient gets one reminder, the
// latest due. Each reminder is made in a transaction of its own, which
// checks again that the appointment is booked for the same start.
// Errors of one appointment are logged and the sweep goes on; the first
// is returned.
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	ctx = write.AsServer(ctx)
	res := SweepResult{Queued: map[Channel]int{}}
	now := s.cfg.Now().UTC()
	longest := s.cfg.Leads[len(s.cfg.Leads)-1]
	q, err := s.search.Parse("Appointment", url.Values{
		"status": {"booked"},
		"date":   {"gt" + now.Format(time.RFC3339Nano), "le" + now.Add(longest).Format(time.RFC3339Nano)},
		"_count": {"200"},
	}, search.ParseOptions{Strict: true, MaxCount: 200})
	if err != nil {
		return res, err
	}
	var first error
	for {
		page, err := s.repo.Store().Search(ctx, q)
		if err != nil {
			return res, err
		}
		todo, err := s.missing(ctx, page.Resources, now)
		if err != nil {
			return res, err
		}
		for _, id := range todo {
			if err := s.remind(ctx, id, now, &res); err != nil {
				s.cfg.Logger.Error("reminder: making a reminder", "appointment", id, "error", err)
				if first == nil {
					first = err
				}
			}
		}
		if page.Next == "" {
			return res, first
		}
		q.Cursor = page.Next
	}
}

// missing returns the ids of the appointments among page whose reminder
// is due at now and not made yet, as the store answers outside a
// transaction: the steady state (every due reminder made) costs one
// search per page rather than a transaction per appointment. remind
// checks again in its transaction.
func (s *Service) missing(ctx context.Context, page []*fhir.Resource, now time.Time) ([]string, error) {
	keys := map[string]string{} // key → appointment id
	var order []string
	for _, r := range page {
		a, err := decode[appointment](r.JSON)
		if err != nil {
			return nil, err
		}
		start, ok := a.start()
		if a.Status != "booked" || !ok || a.patient() == "" {
			continue
		}
		lead, ok := s.due(start, now)
		if !ok {
			continue
		}
		k := Key(r.ID, start, lead)
		keys[k] = r.ID
		order = append(order, k)
	}
	const chunk = 50
	for i := 0; i < len(order); i += chunk {
		var values []string
		for _, k := range order[i:min(i+chunk, len(order))] {
			values = append(values, IdentifierSystem+"|"+k)
		}
		q, err := s.search.Parse("Communication", url.Values{"identifier": {strings.Join(values, ",")}, "_count": {"100"}},
			search.ParseOptions{Strict: true, MaxCount: 100})
		if err != nil {
			return nil, err
		}
		for {
			found, err := s.repo.Store().Search(ctx, q)
			if err != nil {
				return nil, err
			}
			for _, c := range found.Resources {
				delete(keys, reminderKey(c.JSON))
			}
			if found.Next == "" {
				break
			}
			q.Cursor = found.Next
		}
	}
	var ids []string
	for _, k := range order {
		if id, ok := keys[k]; ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// due returns the shortest lead whose time has come for an appointment
// starting at start, and false when none has.
func (s *Service) due(start, now time.Time) (time.Duration, bool) {
	if !start.After(now) {
		return 0, false
	}
	for _, l := range s.cfg.Leads { // shortest first
		if !start.Add(-l).After(now) {
			return l, true
		}
	}
	return 0, false
}

// Key is the identifier value of the reminder of lead for the appointment
// id starting at start.
func Key(id string, start time.Time, lead time.Duration) string {
	return fmt.Sprintf("%s/%s/%s", id, start.UTC().Format(time.RFC3339), lead)
}

// remind makes appointment id's due reminder, if any, in a transaction.
func (s *Service) remind(ctx context.Context, id string, now time.Time, res *SweepResult) error {
	var queued Channel
	notDone := false
	err := s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		queued, notDone = "", false
		cur, err := tx.Read(ctx, "Appointment", id)
		if fhir.KindOf(err) == fhir.NotFound || fhir.KindOf(err) == fhir.Gone {
			return nil
		} else if err != nil {
			return err
		}
		a, err := decode[appointment](cur.JSON)
		if err != nil {
			return err
		}
		start, ok := a.start()
		if a.Status != "booked" || !ok {
			return nil // changed since the search
		}
		lead, ok := s.due(start, now)
		if !ok {
			return nil
		}
		patient := a.patient()
		if patient == "" {
			return nil // nobody to remind
		}
		key := Key(id, start, lead)
		if found, err := s.exists(ctx, tx, key); err != nil || found {
			return err
		}
		text, err := s.text(ctx, tx, a, start)
		if err != nil {
			return err
		}
		comm := newCommunication(key, id, patient, text)
		choice, err := s.choose(ctx, tx, patient, now)
		if err != nil {
			return err
		}
		if choice.Channel == "" {
			comm.notDone(choice.Reason)
			_, err := tx.Create(ctx, "Communication", comm.object())
			notDone = err == nil
			return err
		}
		comm.medium(choice.Channel)
		created, err := tx.Create(ctx, "Communication", comm.object())
		if err != nil {
			return err
		}
		if err := enqueue(ctx, tx, created.ID, choice, now); err != nil {
			return err
		}
		queued = choice.Channel
		return nil
	})
	if err != nil {
		return err
	}
	if queued != "" {
		res.Queued[queued]++
	}
	if notDone {
		res.NotDone++
	}
	return nil
}

// exists reports whether the reminder with identifier key exists (in any
// status), read in tx so that a concurrent sweep making it conflicts.
func (s *Service) exists(ctx context.Context, tx *write.Tx, key string) (bool, error) {
	q, err := s.search.Parse("Communication", url.Values{"identifier": {IdentifierSystem + "|" + key}, "_count": {"1"}},
		search.ParseOptions{Strict: true})
	if err != nil {
		return false, err
	}
	page, err := tx.Search(ctx, q)
	if err != nil {
		return false, err
	}
	return len(page.Resources) > 0, nil
}

// Message is the payload of a reminder's outbox message: which
// Communication to send, by which channel, to which address (the contact
// point chosen when it was queued; "" for the webhook).
type Message struct {
	Communication string  `json:"communication"` // the Communication's id
	Channel       Channel `json:"channel"`
	To            string  `json:"to,omitempty"`
}

// enqueue queues the reminder Communication/id for choice's channel, in
// tx: it is sent only if the transaction commits.
func enqueue(ctx context.Context, tx *write.Tx, id string, choice Choice, now time.Time) error {
	ob, ok := tx.Tx.(store.OutboxTx)
	if !ok {
		return errors.New("reminder: the store keeps no outbox (store.OutboxTx)")
	}
	payload, err := jsonMarshal(Message{Communication: id, Channel: choice.Channel, To: choice.To})
	if err != nil {
		return err
	}
	_, err = ob.Enqueue(ctx, store.Message{Destination: Destination(choice.Channel), Key: "Communication/" + id,
		ControlID: "reminder-" + id, ContentType: "application/json", Payload: payload, Created: now})
	return err
}

// appointmentRule withdraws the pending reminders (preparation or
// in-progress) of an appointment that is no longer booked for the start
// they were made for: cancelled, moved to another time, or deleted. A
// rescheduled appointment ($reschedule) is a new Appointment, whose
// reminders Sweep makes in their time.
func (s *withdrawer) appointmentRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.Old == nil {
		return nil
	}
	old, err := decode[appointment](c.Old.JSON)
	if err != nil || old.Status != "booked" {
		return nil // no reminders are made for it
	}
	oldStart, _ := old.start()
	reason := reasonCancelled
	if c.New != nil {
		nw, err := decode[appointment](c.New.Bytes())
		if err != nil {
			return nil // the booking rules refuse what does not decode
		}
		newStart, ok := nw.start()
		switch {
		case nw.Status == "booked" && ok && newStart.Equal(oldStart):
			return nil
		case nw.Status == "booked":
			reason = reasonMoved
		case nw.Status == "arrived" || nw.Status == "fulfilled" || nw.Status == "checked-in":
			reason = reasonPast
		}
	}
	return s.withdraw(ctx, tx, c.ID, "", reason, write.Consequence{Grant: write.WithCause, Of: "Appointment/" + c.ID})
}

// withdraw marks the pending reminders about Appointment/id not-done with
// reason: all of them, or the one Communication/only when it is not "".
// Each write is declared as the consequence cause (its Type and ID are
// filled in).
func (s *withdrawer) withdraw(ctx context.Context, tx *write.Tx, id, only string, reason notDoneReason, cause write.Consequence) error {
	q, err := s.search.Parse("Communication", url.Values{"about": {"Appointment/" + id},
		"status": {"preparation,in-progress"}, "_count": {"100"}}, search.ParseOptions{Strict: true})
	if err != nil {
		return err
	}
	for {
		page, err := tx.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range page.Resources {
			if only != "" && r.ID != only {
				continue
			}
			if !isReminder(r.JSON) {
				continue // a Communication about it that Signpost's reminders did not make
			}
			obj, err := fhir.ParseObject(r.JSON)
			if err != nil {
				return err
			}
			setNotDone(obj, reason)
			cause.Type, cause.ID = "Communication", r.ID
			if _, _, err := tx.Put(write.AsConsequence(ctx, cause), "Communication", r.ID, obj, r.Version); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// text is the reminder's message: when and where, and how to cancel or
// rebook.
func (s *Service) text(ctx context.Context, tx *write.Tx, a *appointment, start time.Time) (string, error) {
	place, err := s.place(ctx, tx, a)
	if err != nil {
		return "", err
	}
	local := start.In(s.cfg.Location)
	var b strings.Builder
	fmt.Fprintf(&b, "Reminder: you have an appointment on %s at %s", local.Format("Monday 2 January 2006"), local.Format("15:04"))
	if place != "" {
		fmt.Fprintf(&b, " at %s", place)
	}
	b.WriteString(".")
	if s.cfg.HowToChange != "" {
		fmt.Fprintf(&b, " To cancel or rebook: %s", strings.TrimSpace(s.cfg.HowToChange))
	}
	return b.String(), nil
}
