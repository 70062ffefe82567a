// Package dispatch delivers an outbox destination's messages (store.Outbox)
// to their receiver, at least once and in order per ordering key: a
// Dispatcher claims the messages due, hands each to a Sender and records
// the outcome. A positive acknowledgement marks the message delivered; an
// error (HL7 v2 AE), a transport failure or an acknowledgement timeout
// retries it with exponential back-off; a rejection (AR), or a configured
// retry limit reached, makes it a dead letter, which holds its key's later
// messages until an operator replays or discards it (store.OutboxAdmin).
// The store keeps the order and the leases; after a crash a message whose
// lease ended is claimed and sent again with its control id unchanged, so
// a receiver that de-duplicates by it applies it once. With a store that
// records outcomes in batches (store.OutboxBatch, as SQLite does), a
// batch's outcomes and the next claim are one transaction.
//
// HL7 is the Sender of HL7 v2 messages over MLLP.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// tracerName is the instrumentation scope of the delivery spans: one per
// message sent ("adapter.deliver", with the destination's name and the
// attempt), recorded when tracing is on (app's --otlp-endpoint).
const tracerName = "github.com/signpost-fhir/signpost/adapters/dispatch"

// A Sender delivers one message to the destination's receiver and says
// what the receiver made of it. An error means the message may not have
// arrived (connection refused or lost, no acknowledgement in time): the
// dispatcher retries it. ctx ends when the message's lease does, or when
// the dispatcher stops; Send must then return promptly.
type Sender interface {
	Send(ctx context.Context, msg store.Queued) (Outcome, error)
}

// Outcome is the receiver's answer to a message.
type Outcome struct {
	// Result is what becomes of the message.
	Result Result
	// Reason says why a message was not accepted (the receiver's text);
	// it is recorded with the retry or the dead letter.
	Reason string
}

// Result is what becomes of a message that reached its receiver.
type Result int

// The results of a send.
const (
	// Accepted: the receiver took the message (HL7 v2 AA or CA); it is
	// delivered.
	Accepted Result = iota
	// Failed: the receiver could not process it this time (AE or CE, or
	// an answer that does not answer it); it is retried.
	Failed
	// Rejected: the receiver will never process it as sent (AR or CR);
	// it becomes a dead letter.
	Rejected
)

// String names the result.
func (r Result) String() string {
	switch r {
	case Accepted:
		return "accepted"
	case Failed:
		return "failed"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// A Dispatcher delivers one destination's outbox messages through a
// Sender. Run it once; Wake, Status and DispatchOnce are safe to call
// while it runs.
type Dispatcher struct {
	ob   store.OutboxDelivery
	send Sender
	cfg  Config
	wake chan struct{}

	mu     sync.Mutex
	status Status
	// retryAt is the soonest retry this dispatcher scheduled that may not
	// have come due yet: Run looks again then rather than at its next poll.
	retryAt time.Time
}

// Status is what a Dispatcher has done since it was made, for an
// operator's view.
type Status struct {
	Destination  string
	Delivered    int64 // messages accepted
	Retried      int64 // failed attempts scheduled again
	DeadLettered int64 // messages rejected or given up
	// LastError is the reason of the last failed attempt, dead letter or
	// store error, and LastErrorAt when it happened ("" and zero if none).
	LastError   string
	LastErrorAt time.Time
	// LastDelivered is when a message was last accepted (zero if never).
	LastDelivered time.Time
	// FailingSince is when the failures began that have come since the
	// last delivery (zero when none has failed since): how long the
	// receiver has not been taking messages.
	FailingSince time.Time
}

// New returns a Dispatcher delivering cfg.Destination's messages from ob
// through send, or the errors of cfg.Validate.
func New(ob store.OutboxDelivery, send Sender, cfg Config) (*Dispatcher, error) {
	if ob == nil || send == nil {
		return nil, errors.New("dispatch: New needs an outbox and a sender")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Dispatcher{ob: ob, send: send, cfg: cfg, wake: make(chan struct{}, 1),
		status: Status{Destination: cfg.Destination}}, nil
}

// Wake nudges a running dispatcher to look for messages now (say after an
// enqueue committed) instead of at its next poll. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Status returns what the dispatcher has done.
func (d *Dispatcher) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// Run delivers until ctx is cancelled, then returns nil. It claims and
// sends what is due, again at once while batches come back full, then
// waits for Wake or the poll interval. A store error is logged and tried
// again at the next poll. A send in progress when ctx is cancelled is cut
// off and its message released, due at once, for the next run.
//
// With a store that records outcomes in batches (store.OutboxBatch), the
// outcomes of a batch are recorded in one transaction, together with the
// claim of the next batch: one wait for the store's writer per batch.
// Until then a message sent stays claimed: if the process dies first, it
// is sent again once its lease ends (at least once, as always).
func (d *Dispatcher) Run(ctx context.Context) error {
	timer := time.NewTimer(d.cfg.PollInterval)
	defer timer.Stop()
	var outs []settled // the last batch's outcomes, recorded with the next claim
	for {
		start := d.cfg.Now()
		if ctx.Err() != nil {
			d.settle(ctx, outs, false)
			return nil
		}
		msgs, err := d.settle(ctx, outs, true)
		outs = d.sendAll(ctx, msgs)
		// A batch claimed may have freed the next message of each of its
		// keys (or more were due than a batch holds): look again at once,
		// recording this batch's outcomes with that claim. Messages that
		// failed are not due again yet, so this ends.
		if len(msgs) > 0 || ctx.Err() != nil {
			continue
		}
		_ = err // logged by settle; tried again at the next poll
		timer.Reset(d.wait(start))
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// wait is how long Run waits for a wake-up after a round that started at
// start: the poll interval, or less when a retry it scheduled comes due
// sooner.
func (d *Dispatcher) wait(start time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.cfg.PollInterval
	if d.retryAt.IsZero() {
		return w
	}
	if !d.retryAt.After(start) { // due before the round began: it was claimed
		d.retryAt = time.Time{}
		return w
	}
	return max(min(w, d.retryAt.Sub(d.cfg.Now())), 0)
}

// retryScheduled notes a retry due at next, for wait.
func (d *Dispatcher) retryScheduled(next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.retryAt.IsZero() || next.Before(d.retryAt) || !d.retryAt.After(d.cfg.Now()) {
		d.retryAt = next
	}
}

// DispatchOnce claims once the messages due (up to the batch size), sends
// each in turn and records their outcomes (in one transaction when the
// store records outcomes in batches); it returns how many it claimed.
// The error is that of the claim; an outcome the store refuses (the lease
// was lost to another claim) is logged and skipped, as the message's new
// holder reports it.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	msgs, err := d.claim(ctx)
	if err != nil {
		return 0, err
	}
	d.settle(ctx, d.sendAll(ctx, msgs), false)
	return len(msgs), nil
}

// claim claims the messages due, up to the batch size.
func (d *Dispatcher) claim(ctx context.Context) ([]store.Queued, error) {
	msgs, err := d.ob.Claim(ctx, d.cfg.Destination, d.cfg.Now(), d.cfg.Lease, d.cfg.Batch)
	if err != nil && ctx.Err() == nil {
		d.failed(fmt.Sprintf("claiming messages: %v", err))
	}
	return msgs, err
}

// settled is the outcome of a message sent (or released), to record.
type settled struct {
	m    store.Queued
	out  store.Outcome
	what string // the outcome, for the log: delivered, retry, dead letter, release
	// done counts the outcome in the status once it is recorded.
	done func()
}

// sendAll sends msgs, claimed, in turn and returns their outcomes, in
// order; once ctx is cancelled the rest are released, due at once.
func (d *Dispatcher) sendAll(ctx context.Context, msgs []store.Queued) []settled {
	var outs []settled
	for _, m := range msgs {
		if ctx.Err() != nil {
			outs = append(outs, d.release(m, "the dispatcher stopped before sending it"))
			continue
		}
		if o, ok := d.deliver(ctx, m); ok {
			outs = append(outs, o)
		}
	}
	return outs
}

// settle records outs and, with claim, claims the next batch, in one
// transaction when the store records outcomes in batches. The outcomes
// are recorded even when ctx is cancelled (an answer received is not lost
// to a stop); the claim is not made then. It returns the messages claimed
// and the claim's error.
func (d *Dispatcher) settle(ctx context.Context, outs []settled, claim bool) ([]store.Queued, error) {
	claim = claim && ctx.Err() == nil
	if len(outs) == 0 {
		if !claim {
			return nil, nil
		}
		return d.claim(ctx)
	}
	rctx, cancel := outcomeContext(ctx)
	defer cancel()
	batch, ok := d.ob.(store.OutboxBatch)
	if !ok {
		for _, o := range outs {
			d.recorded(o, d.recordOne(rctx, o.out))
		}
		if !claim {
			return nil, nil
		}
		return d.claim(ctx)
	}
	next := store.ClaimRequest{Destination: d.cfg.Destination}
	if claim {
		next.Now, next.Lease, next.Limit = d.cfg.Now(), d.cfg.Lease, d.cfg.Batch
	}
	list := make([]store.Outcome, len(outs))
	for i, o := range outs {
		list[i] = o.out
	}
	errs, msgs, err := batch.Settle(rctx, list, next)
	if err != nil {
		for _, o := range outs {
			d.recorded(o, err)
		}
		if claim {
			d.failed(fmt.Sprintf("claiming messages: %v", err))
		}
		return nil, err
	}
	for i, o := range outs {
		d.recorded(o, errs[i])
	}
	return msgs, nil
}

// recordOne records out through the OutboxDelivery call of its state.
func (d *Dispatcher) recordOne(ctx context.Context, out store.Outcome) error {
	switch out.State {
	case store.OutboxDone:
		return d.ob.Delivered(ctx, out.ID, out.Claim, out.At)
	case store.OutboxDead:
		return d.ob.DeadLetter(ctx, out.ID, out.Claim, out.Reason, out.At)
	default:
		return d.ob.Retry(ctx, out.ID, out.Claim, out.Reason, out.At)
	}
}

// recorded counts o when the store recorded it (err is nil) and logs
// a refusal.
func (d *Dispatcher) recorded(o settled, err error) {
	if d.record(o.m, o.what, err) && o.done != nil {
		o.done()
	}
}

// deliver sends m, claimed, and returns its outcome, or false when it was
// not sent because its lease ended.
func (d *Dispatcher) deliver(ctx context.Context, m store.Queued) (settled, bool) {
	now := d.cfg.Now()
	left := m.NextAt.Sub(now)
	if left <= 0 {
		// Its lease ended while earlier messages of the batch were sent:
		// someone may have claimed it again; leave it to the next claim.
		d.cfg.Logger.Warn("dispatch: lease ended before sending; left for the next claim",
			"destination", m.Destination, "control_id", m.ControlID)
		return settled{}, false
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, "adapter.deliver", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("signpost.destination", m.Destination), attribute.Int("signpost.attempt", m.Attempts)))
	defer span.End()
	sendCtx, cancel := context.WithTimeout(ctx, left)
	out, err := d.send.Send(sendCtx, m)
	cancel()
	switch {
	case err != nil:
		span.SetStatus(codes.Error, "not sent")
	case out.Result != Accepted:
		span.SetStatus(codes.Error, out.Result.String())
	}
	if err != nil && ctx.Err() != nil {
		return d.release(m, "the dispatcher stopped while sending it"), true
	}
	// An answer received is recorded even when the dispatcher is stopping.
	now = d.cfg.Now()
	switch {
	case err == nil && out.Result == Accepted:
		return settled{m: m, what: "delivered", out: store.Outcome{ID: m.ID, Claim: m.Claim, State: store.OutboxDone, At: now},
			done: func() {
				d.count(func(s *Status) { s.Delivered, s.LastDelivered, s.FailingSince = s.Delivered+1, now, time.Time{} })
			}}, true
	case err == nil && out.Result == Rejected:
		return d.deadLetter(m, fmt.Sprintf("rejected: %s", out.Reason), now), true
	default:
		reason := out.Reason
		if err != nil {
			reason = err.Error()
		} else if out.Result != Failed {
			reason = fmt.Sprintf("the sender gave an unknown result %v: %s", out.Result, out.Reason)
		}
		if d.cfg.MaxAttempts > 0 && m.Attempts >= d.cfg.MaxAttempts {
			return d.deadLetter(m, fmt.Sprintf("gave up after %d attempts: %s", m.Attempts, reason), now), true
		}
		next := now.Add(d.cfg.Backoff.Delay(m.Attempts, d.cfg.Rand()))
		d.failed(fmt.Sprintf("%s: attempt %d: %s", m.ControlID, m.Attempts, reason))
		return settled{m: m, what: "retry", out: store.Outcome{ID: m.ID, Claim: m.Claim, State: store.OutboxPending, Reason: reason, At: next},
			done: func() {
				d.count(func(s *Status) { s.Retried++ })
				d.retryScheduled(next)
			}}, true
	}
}

// deadLetter is the outcome making m a dead letter with reason.
func (d *Dispatcher) deadLetter(m store.Queued, reason string, now time.Time) settled {
	d.failed(fmt.Sprintf("%s: dead letter: %s", m.ControlID, reason))
	return settled{m: m, what: "dead letter", out: store.Outcome{ID: m.ID, Claim: m.Claim, State: store.OutboxDead, Reason: reason, At: now},
		done: func() { d.count(func(s *Status) { s.DeadLettered++ }) }}
}

// release is the outcome returning m, whose send the dispatcher's stop cut
// off (or which it stopped before sending), to pending, due at once, so
// that a restart need not wait for its lease.
func (d *Dispatcher) release(m store.Queued, reason string) settled {
	return settled{m: m, what: "release", out: store.Outcome{ID: m.ID, Claim: m.Claim, State: store.OutboxPending, Reason: reason, At: d.cfg.Now()}}
}

// outcomeContext is the context an outcome is recorded in: ctx's values,
// not its cancellation, so that an outcome known is not lost to a stop,
// and a bound of its own.
func outcomeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// record reports whether the store recorded an outcome (err is nil), and
// logs one it refused.
func (d *Dispatcher) record(m store.Queued, what string, err error) bool {
	if err == nil {
		return true
	}
	if fhir.KindOf(err) == fhir.Conflict {
		d.cfg.Logger.Warn("dispatch: the claim was lost before its outcome was recorded; the message will be sent again",
			"destination", m.Destination, "control_id", m.ControlID, "outcome", what)
		return false
	}
	d.failed(fmt.Sprintf("%s: recording %s: %v", m.ControlID, what, err))
	return false
}

// failed logs msg and keeps it as the last error.
func (d *Dispatcher) failed(msg string) {
	d.cfg.Logger.Warn("dispatch: "+msg, "destination", d.cfg.Destination)
	now := d.cfg.Now()
	d.count(func(s *Status) {
		s.LastError, s.LastErrorAt = msg, now
		if s.FailingSince.IsZero() {
			s.FailingSince = now
		}
	})
}

// count updates the status under the lock.
func (d *Dispatcher) count(f func(*Status)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.status)
}
