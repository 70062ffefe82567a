package dispatch

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// The defaults a zero Config field takes.
const (
	DefaultLease        = 2 * time.Minute
	DefaultBatch        = 10
	DefaultPollInterval = 5 * time.Second
	DefaultBackoffBase  = time.Second
	DefaultBackoffMax   = 5 * time.Minute
	DefaultBackoffRatio = 2.0
)

// Config configures a Dispatcher for one destination. A zero field takes
// its default (the Default… constants); a negative or inconsistent one is
// an error of Validate.
type Config struct {
	// Destination is the outbox destination delivered (an adapter
	// instance's name). Required.
	Destination string
	// Lease is how long a claim holds a message. It must outlast a send
	// (for MLLP: dial timeout plus ACK timeout): a send is cut off when
	// its lease ends, and a message whose lease ended before its turn in
	// a batch is left for the next claim rather than sent.
	Lease time.Duration
	// Batch is the most messages claimed at once (each of its own key).
	Batch int
	// PollInterval is how long the dispatcher waits for a wake-up before
	// looking again for messages that became due (back-off ended, lease
	// ended, enqueued without a wake-up).
	PollInterval time.Duration
	// Backoff spaces the attempts of a message that failed.
	Backoff Backoff
	// MaxAttempts is the number of attempts after which a message that
	// still fails becomes a dead letter; zero retries forever.
	MaxAttempts int

	// Now is the clock (time.Now when nil); tests inject one.
	Now func() time.Time `json:"-"`
	// Rand returns a number in [0, 1) for the back-off's jitter
	// (math/rand/v2's Float64 when nil); tests inject one.
	Rand func() float64 `json:"-"`
	// Logger receives delivery failures and store errors; slog.Default()
	// when nil.
	Logger *slog.Logger `json:"-"`
}

// Backoff is exponential back-off: the n-th failed attempt of a message
// waits Base·Factorⁿ⁻¹, at most Max, shortened by a random part of up to
// Jitter of it (0: none; 0.2: by up to 20 %), so that messages failing
// together do not all come back at once.
type Backoff struct {
	Base   time.Duration
	Factor float64
	Max    time.Duration
	Jitter float64
}

// withDefaults returns c with its zero fields defaulted.
func (c Config) withDefaults() Config {
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Backoff.Base == 0 {
		c.Backoff.Base = DefaultBackoffBase
	}
	if c.Backoff.Factor == 0 {
		c.Backoff.Factor = DefaultBackoffRatio
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = max(DefaultBackoffMax, c.Backoff.Base)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every field of c (zero fields taking their defaults)
// that a Dispatcher cannot run with, each naming the field, its value and
// what it must be.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field string, value any, must string) {
		errs = append(errs, fmt.Errorf("dispatch: %s is %v; it must be %s", field, value, must))
	}
	if c.Destination == "" {
		errs = append(errs, errors.New("dispatch: Destination is empty; it must name the outbox destination to deliver"))
	}
	if c.Lease < time.Second {
		bad("Lease", c.Lease, "at least 1s (and outlast a send)")
	}
	if c.Batch < 0 {
		bad("Batch", c.Batch, "positive (0 takes the default)")
	}
	if c.PollInterval < 0 {
		bad("PollInterval", c.PollInterval, "positive (0 takes the default)")
	}
	if c.Backoff.Base < 0 {
		bad("Backoff.Base", c.Backoff.Base, "positive (0 takes the default)")
	}
	if c.Backoff.Factor < 1 {
		bad("Backoff.Factor", c.Backoff.Factor, "at least 1")
	}
	if c.Backoff.Max < c.Backoff.Base {
		bad("Backoff.Max", c.Backoff.Max, fmt.Sprintf("at least Backoff.Base (%v)", c.Backoff.Base))
	}
	if c.Backoff.Jitter < 0 || c.Backoff.Jitter > 1 {
		bad("Backoff.Jitter", c.Backoff.Jitter, "between 0 and 1")
	}
	if c.MaxAttempts < 0 {
		bad("MaxAttempts", c.MaxAttempts, "positive, or 0 to retry forever")
	}
	return errors.Join(errs...)
}

// Delay is the wait after the attempt-th failed attempt (1 for the first)
// of a message; r in [0, 1) picks the jitter.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	d := float64(b.Base)
	for i := 1; i < attempt && d < float64(b.Max); i++ {
		d *= b.Factor
	}
	d = min(d, float64(b.Max))
	d -= d * b.Jitter * r
	return time.Duration(d)
}
