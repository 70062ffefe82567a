// Package notify delivers appointment reminders (domain/reminder) through
// channels: e-mail over SMTP (smtp.go), an SMS gateway (sms.go: the
// SMSGateway interface and HTTPGateway, its HTTP JSON contract) and a
// webhook (webhook.go: the Communication POSTed over HTTPS). Each
// channel's messages wait in the store's outbox and are delivered by an
// adapters/dispatch Dispatcher (leases, back-off, dead letters) through
// the channel's Sender, which checks at send time that the reminder is
// still due (reminder.Service.Begin) and records the outcome on the
// Communication.
//
// The deployment configures reminders in a YAML (or JSON) file, serve
// --reminders FILE, read by Load (docs/reminders.md is the reference).
package notify

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/domain/reminder"
)

// File is a reminders configuration (serve --reminders FILE):
//
//	leads: [7d, 1d]
//	howToChange: call 0300 123 4567 or visit https://trust.example/appointments
//	channels:
//	  - kind: sms
//	    sms: {url: "https://sms.trust.example/messages", tokenEnv: SMS_TOKEN}
//	  - kind: email
//	    smtp: {host: smtp.trust.example, from: "Reminders <reminders@trust.example>"}
type File struct {
	// Leads are how long before the start reminders are due: "7d",
	// "24h", "90m". One to ten, each positive and different.
	Leads []Lead `json:"leads" validate:"required,min=1,max=10,dive,gt=0"`
	// HowToChange ends every reminder: how to cancel or rebook.
	HowToChange string `json:"howToChange" validate:"required,max=300"`
	// Channels, in the deployment's order of preference (see
	// reminder.Choose), each kind at most once.
	Channels []ChannelConfig `json:"channels" validate:"required,min=1,dive"`
	// SweepEvery is how often due reminders are looked for (default 1m).
	SweepEvery Duration `json:"sweepEvery"`
	// Delivery tunes the channels' dispatchers.
	Delivery Delivery `json:"delivery"`

	// Hooks are what tests inject; a deployment leaves them zero.
	Hooks Hooks `json:"-"`
}

// Duration is a time.Duration in Go's notation ("90s", "5m").
type Duration = adapters.Duration

// DefaultSweepEvery is how often due reminders are looked for by default.
const DefaultSweepEvery = time.Minute

// Delivery tunes the dispatchers of the channels (adapters/dispatch).
type Delivery struct {
	// MaxAttempts is how many attempts a reminder gets before it becomes
	// a dead letter and not-done (default 10).
	MaxAttempts int `json:"maxAttempts" validate:"gte=0,lte=1000"`
	// BackoffBase and BackoffMax space the attempts (defaults 30s, 30m).
	BackoffBase Duration `json:"backoffBase"`
	BackoffMax  Duration `json:"backoffMax"`
	// PollInterval is how often each dispatcher looks for messages it was
	// not woken for (default 5s).
	PollInterval Duration `json:"pollInterval"`
}

// ChannelConfig is one channel and its settings: smtp for kind email,
// sms for kind sms, webhook for kind webhook.
type ChannelConfig struct {
	Kind    string         `json:"kind" validate:"required,oneof=email sms webhook"`
	SMTP    *SMTPConfig    `json:"smtp"`
	SMS     *SMSConfig     `json:"sms"`
	Webhook *WebhookConfig `json:"webhook"`
}

// Hooks are what tests inject instead of what the file configures.
type Hooks struct {
	Now        func() time.Time    // the clock of reminders and dispatchers
	SMS        SMSGateway          // the SMS channel's gateway (a double)
	RootCAs    *x509.CertPool      // trusted by the webhook and SMS gateway
	SMTPTLS    *tls.Config         // the SMTP client's TLS configuration
	Getenv     func(string) string // os.Getenv when nil
	RandJitter func() float64      // the dispatchers' jitter source
	// Manual: the server runs no sweeps or dispatchers by itself; the
	// test drives them (app.Reminders' Sweep and Deliver).
	Manual bool
}

// Lead is a reminder's lead time: "7d" (days), or a Go duration ("36h",
// "90m").
type Lead time.Duration

// UnmarshalJSON reads "7d" or "36h".
func (l *Lead) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a lead is a string such as \"7d\" or \"36h\", not %s", b)
	}
	d, err := ParseLead(s)
	if err != nil {
		return err
	}
	*l = Lead(d)
	return nil
}

// MarshalJSON writes the lead as a Go duration.
func (l Lead) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(l).String()) }

// ParseLead reads "7d" (whole days) or a Go duration.
func ParseLead(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 366 {
			return 0, fmt.Errorf("%q is not a number of days from 1 to 366 (such as \"7d\")", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive lead such as \"7d\", \"36h\" or \"90m\"", s)
	}
	return d, nil
}

// Load reads and validates a reminders configuration file; every problem
// is reported, one a line, as "FILE: PATH: problem" (PATH such as
// channels[1].smtp.host).
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(raw)
	if err != nil {
		lines := strings.Split(err.Error(), "\n")
		for i := range lines {
			lines[i] = path + ": " + lines[i]
		}
		return nil, errors.New(strings.Join(lines, "\n"))
	}
	return f, nil
}

// Parse reads and validates a reminders configuration (Load, from bytes).
func Parse(raw []byte) (*File, error) {
	var f File
	if err := adapters.Decode(raw, &f); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks f: its fields' rules (validator/v10), each channel's
// settings present for its kind and only those, kinds and leads not
// repeated.
func (f *File) Validate() error {
	var lines []string
	if err := adapters.Validate(f); err != nil {
		lines = append(lines, strings.Split(err.Error(), "\n")...)
	}
	seen := map[string]int{}
	for i, ch := range f.Channels {
		at := fmt.Sprintf("channels[%d]", i)
		if j, dup := seen[ch.Kind]; dup && ch.Kind != "" {
			lines = append(lines, fmt.Sprintf("%s.kind: %q is configured twice (channels[%d] has it too)", at, ch.Kind, j))
		}
		seen[ch.Kind] = i
		for _, s := range []struct {
			kind, name string
			set        bool
		}{{"email", "smtp", ch.SMTP != nil}, {"sms", "sms", ch.SMS != nil}, {"webhook", "webhook", ch.Webhook != nil}} {
			switch {
			case s.kind == ch.Kind && !s.set && !(s.kind == "sms" && f.Hooks.SMS != nil):
				lines = append(lines, fmt.Sprintf("%s.%s: is required for kind %s", at, s.name, ch.Kind))
			case s.kind != ch.Kind && s.set:
				lines = append(lines, fmt.Sprintf("%s.%s: belongs to kind %s, not %s", at, s.name, s.kind, ch.Kind))
			}
		}
	}
	leads := map[Lead]int{}
	for i, l := range f.Leads {
		if j, dup := leads[l]; dup {
			lines = append(lines, fmt.Sprintf("leads[%d]: %s is listed twice (leads[%d] has it too)", i, time.Duration(l), j))
		}
		leads[l] = i
	}
	if len(lines) > 0 {
		return errors.New(strings.Join(lines, "\n"))
	}
	return nil
}

// ReminderConfig is the reminder.Config f describes (without Location and
// Logger, which the server has).
func (f *File) ReminderConfig() reminder.Config {
	cfg := reminder.Config{HowToChange: f.HowToChange, Now: f.Hooks.Now}
	for _, l := range f.Leads {
		cfg.Leads = append(cfg.Leads, time.Duration(l))
	}
	for _, ch := range f.Channels {
		cfg.Channels = append(cfg.Channels, reminder.Channel(ch.Kind))
	}
	return cfg
}

// DispatchConfig is the dispatcher configuration of channel ch.
func (f *File) DispatchConfig(ch reminder.Channel) dispatch.Config {
	maxAttempts := f.Delivery.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = 10
	}
	return dispatch.Config{
		Destination:  reminder.Destination(ch),
		Lease:        2 * time.Minute, // outlasts a send (SMTP's timeout is 30s by default)
		PollInterval: f.Delivery.PollInterval.Or(dispatch.DefaultPollInterval),
		Backoff: dispatch.Backoff{Base: f.Delivery.BackoffBase.Or(30 * time.Second),
			Max: f.Delivery.BackoffMax.Or(30 * time.Minute), Factor: 2, Jitter: 0.2},
		MaxAttempts: maxAttempts,
		Now:         f.Hooks.Now,
		Rand:        f.Hooks.RandJitter,
	}
}

// permanent marks an error the receiver will give again however often
// the message is sent.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as permanent: the message is refused for good and
// becomes a dead letter rather than being retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}
