package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/domain/reminder"
	"github.com/signpost-fhir/signpost/store"
)

// Sender is the dispatch.Sender of one channel: for each reminder
// message it asks the reminder service whether the reminder is still
// due (reminder.Service.Begin: withdrawn ones are dropped, unsent),
// hands it to the channel and records the outcome on the Communication:
// completed when the channel took it; not-done when the channel refused
// it for good (the message becomes a dead letter) or the last attempt
// failed; otherwise the message is retried with back-off.
type Sender struct {
	svc         *reminder.Service
	channel     reminder.Channel
	deliver     func(ctx context.Context, d *reminder.Delivery, controlID string) error
	maxAttempts int
	log         *slog.Logger
}

var _ dispatch.Sender = (*Sender)(nil)

// Send delivers one reminder message.
func (s *Sender) Send(ctx context.Context, m store.Queued) (dispatch.Outcome, error) {
	d, err := s.svc.Begin(ctx, m.Payload)
	if errors.Is(err, reminder.ErrWithdrawn) {
		return dispatch.Outcome{Result: dispatch.Accepted, Reason: "withdrawn before sending"}, nil
	}
	if err != nil {
		return dispatch.Outcome{}, err
	}
	err = s.deliver(ctx, d, m.ControlID)
	if err == nil {
		if err := s.svc.Sent(ctx, d); err != nil {
			// It went out: sending it again would be worse than a
			// Communication left in-progress.
			s.log.Error("reminder: sent, but recording it failed", "communication", d.Communication, "error", err)
		}
		return dispatch.Outcome{Result: dispatch.Accepted}, nil
	}
	if ctx.Err() != nil {
		return dispatch.Outcome{}, err // cut off: the dispatcher releases it
	}
	last := s.maxAttempts > 0 && m.Attempts >= s.maxAttempts
	if IsPermanent(err) || last {
		why := fmt.Sprintf("%s: %v", s.channel, err)
		if ferr := s.svc.Failed(ctx, d, why); ferr != nil {
			s.log.Error("reminder: recording a failed reminder", "communication", d.Communication, "error", ferr)
		}
		if IsPermanent(err) {
			return dispatch.Outcome{Result: dispatch.Rejected, Reason: err.Error()}, nil
		}
	}
	return dispatch.Outcome{Result: dispatch.Failed, Reason: err.Error()}, nil
}

// Build returns the Sender of each channel f configures, delivering the
// reminders of svc.
func Build(f *File, svc *reminder.Service, log *slog.Logger) (map[reminder.Channel]*Sender, error) {
	if log == nil {
		log = slog.Default()
	}
	getenv := f.Hooks.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	maxAttempts := f.DispatchConfig(reminder.Email).MaxAttempts
	out := map[reminder.Channel]*Sender{}
	var errs []error
	for i, ch := range f.Channels {
		s := &Sender{svc: svc, channel: reminder.Channel(ch.Kind), maxAttempts: maxAttempts, log: log}
		switch s.channel {
		case reminder.Email:
			password := ""
			if ch.SMTP.PasswordEnv != "" {
				if password = getenv(ch.SMTP.PasswordEnv); password == "" {
					errs = append(errs, fmt.Errorf("channels[%d].smtp.passwordEnv: the environment variable %s is not set", i, ch.SMTP.PasswordEnv))
					continue
				}
			}
			ml, err := NewMailer(*ch.SMTP, password, f.Hooks.SMTPTLS, f.Hooks.Now)
			if err != nil {
				errs = append(errs, fmt.Errorf("channels[%d].%w", i, err))
				continue
			}
			s.deliver = func(ctx context.Context, d *reminder.Delivery, id string) error {
				return ml.Send(ctx, Mail{To: d.To, Subject: d.Subject, Text: d.Text, MessageID: id})
			}
		case reminder.SMS:
			gw := f.Hooks.SMS
			if gw == nil {
				token := ""
				if ch.SMS.TokenEnv != "" {
					if token = getenv(ch.SMS.TokenEnv); token == "" {
						errs = append(errs, fmt.Errorf("channels[%d].sms.tokenEnv: the environment variable %s is not set", i, ch.SMS.TokenEnv))
						continue
					}
				}
				h, err := NewHTTPGateway(*ch.SMS, token, f.Hooks.RootCAs)
				if err != nil {
					errs = append(errs, fmt.Errorf("channels[%d].%w", i, err))
					continue
				}
				gw = h
			}
			s.deliver = func(ctx context.Context, d *reminder.Delivery, id string) error {
				return gw.Send(ctx, SMS{To: d.To, Body: d.Text, Reference: "Communication/" + d.Communication, IdempotencyKey: id})
			}
		case reminder.Webhook:
			auth := ""
			if ch.Webhook.AuthorizationEnv != "" {
				if auth = getenv(ch.Webhook.AuthorizationEnv); auth == "" {
					errs = append(errs, fmt.Errorf("channels[%d].webhook.authorizationEnv: the environment variable %s is not set", i, ch.Webhook.AuthorizationEnv))
					continue
				}
			}
			p, err := NewPoster(*ch.Webhook, auth, f.Hooks.RootCAs)
			if err != nil {
				errs = append(errs, fmt.Errorf("channels[%d].%w", i, err))
				continue
			}
			s.deliver = func(ctx context.Context, d *reminder.Delivery, id string) error {
				return p.Post(ctx, id, "application/fhir+json", d.Resource.JSON)
			}
		default:
			errs = append(errs, fmt.Errorf("channels[%d].kind: unknown kind %q", i, ch.Kind))
			continue
		}
		out[s.channel] = s
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
