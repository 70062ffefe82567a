package store

import (
	"context"
	"time"
)

// Outbox is an optional capability of a Store, found by type assertion: a
// transactional outbox of messages for other systems (an adapter's
// destinations). A message is queued in the same transaction as the change
// it announces (the store's Tx implements OutboxTx), so a change that rolls
// back sends nothing and one that commits is never forgotten, crash or not.
// A dispatcher then delivers it at least once through OutboxDelivery, in
// order per ordering key; an operator sees and repairs what failed through
// OutboxAdmin. Callers take the smaller interface they need.
//
// Every method that depends on the time takes it as now, so a dispatcher
// and its tests share one clock.
type Outbox interface {
	OutboxDelivery
	OutboxAdmin
}

// OutboxTx is the Outbox capability of a Tx.
type OutboxTx interface {
	// Enqueue queues m (m.Destination, m.Key and m.ControlID must not be
	// empty) as pending, deliverable from m.Created, and returns its ID.
	// Messages of one (destination, key) are delivered in the order they
	// were enqueued: within a transaction the order of the calls, across
	// transactions the order the store serialised them in. A control id
	// already used for the destination gives an error of kind
	// fhir.Conflict: a peer de-duplicating by control id would drop the
	// second message.
	Enqueue(ctx context.Context, m Message) (int64, error)
}

// OutboxDelivery is the dispatcher's side of the Outbox.
//
// A claim leases a message to one dispatcher: while the lease lasts no
// other Claim returns it; when it ends without an outcome (the dispatcher
// crashed) the message is claimable again, with the same control id. An
// outcome is reported with the message's ID and Claim as Claim returned
// them. An outcome of a claim that is no longer current (the message was
// claimed again after the lease ended, or an outcome was already
// reported) gives an error of kind fhir.Conflict and changes nothing; an
// unknown ID gives fhir.NotFound. A lease that ended while nobody claimed
// the message again still takes its outcome.
type OutboxDelivery interface {
	// Claim leases to the caller, until now+lease, up to limit messages
	// for destination, oldest first: of each ordering key only the
	// oldest message not yet delivered or discarded, and only if it is
	// due (pending with NextAt <= now, or in flight with its lease
	// ended). A key whose oldest message is in flight or dead-lettered
	// gives nothing. Each claim adds one to the message's Attempts and
	// gives it a new Claim.
	Claim(ctx context.Context, destination string, now time.Time, lease time.Duration, limit int) ([]Queued, error)
	// Delivered marks a claimed message done: its key's next message
	// becomes deliverable.
	Delivered(ctx context.Context, id, claim int64, now time.Time) error
	// Retry returns a claimed message to pending with the reason of the
	// failed attempt, deliverable again from next (the dispatcher's
	// back-off).
	Retry(ctx context.Context, id, claim int64, reason string, next time.Time) error
	// DeadLetter moves a claimed message to the dead letters with the
	// reason; its key's later messages wait behind it until it is
	// replayed or discarded (OutboxAdmin).
	DeadLetter(ctx context.Context, id, claim int64, reason string, now time.Time) error
}

// OutboxBatch is an optional capability of an OutboxDelivery, found by
// type assertion: the outcomes of several claims, and the next claim,
// recorded in one transaction. A dispatcher that sends a batch of claimed
// messages records their outcomes together instead of one transaction
// each, and claims the next batch in the same transaction, so that it
// waits for the store's writer once per batch rather than once per
// message. Each outcome means what the OutboxDelivery call of its State
// means, with the same errors.
type OutboxBatch interface {
	// Settle records outcomes in order and then, when next.Limit > 0,
	// claims as Claim(next.Destination, next.Now, next.Lease,
	// next.Limit) would, seeing the outcomes just recorded (a key whose
	// message was delivered gives its next one). errs has one entry per
	// outcome: nil, or the outcome's refusal (fhir.Conflict for a claim
	// no longer current, fhir.NotFound for an unknown ID), which leaves
	// the other outcomes recorded. err is a failure of the store: then
	// nothing was recorded or claimed.
	Settle(ctx context.Context, outcomes []Outcome, next ClaimRequest) (errs []error, claimed []Queued, err error)
}

// Outcome is the outcome of a claim, for OutboxBatch.Settle.
type Outcome struct {
	ID, Claim int64 // as Claim returned them
	// State is OutboxDone (as Delivered), OutboxPending (as Retry) or
	// OutboxDead (as DeadLetter).
	State OutboxState
	// Reason is the reason of a retry or a dead letter.
	Reason string
	// At is when a message was delivered or dead-lettered, or when a
	// retried one is due again.
	At time.Time
}

// ClaimRequest is the claim OutboxBatch.Settle makes after recording its
// outcomes: Claim's arguments; a Limit of zero claims nothing.
type ClaimRequest struct {
	Destination string
	Now         time.Time
	Lease       time.Duration
	Limit       int
}

// OutboxAdmin is the operator's side of the Outbox.
type OutboxAdmin interface {
	// DeadLetters lists up to limit dead letters, oldest first, of
	// destination ("" for every destination).
	DeadLetters(ctx context.Context, destination string, limit int) ([]Queued, error)
	// Replay returns dead letter id to pending, deliverable from now,
	// with its attempts reset to zero; its control id stays. A message
	// that is not a dead letter gives an error of kind fhir.Conflict and
	// an unknown one fhir.NotFound.
	Replay(ctx context.Context, id int64, now time.Time) error
	// Discard gives dead letter id up with the reason: it is never
	// delivered, and its key's later messages flow. A message that is
	// not a dead letter gives fhir.Conflict, an unknown one fhir.NotFound.
	Discard(ctx context.Context, id int64, reason string, now time.Time) error
	// Backlog counts, per destination with any message not yet delivered
	// or discarded, what waits, in destination order.
	Backlog(ctx context.Context, now time.Time) ([]Backlog, error)
	// Prune deletes what no longer needs keeping, so that the outbox and
	// the inbox do not grow forever: the messages delivered or discarded
	// before before (Finished), and, when the store keeps an Inbox, the
	// records of inbound messages received before before. Dead letters,
	// pending and in-flight messages stay whatever their age. It returns
	// how many messages and records it deleted. A resend of an inbound
	// message whose record was pruned is no longer known as one: keep
	// records longer than a sender may resend.
	Prune(ctx context.Context, before time.Time) (int, error)
}

// Message is an outbound message as it is enqueued.
type Message struct {
	// Destination names the receiver: an adapter instance.
	Destination string
	// Key orders delivery: messages of one key (for one destination) are
	// delivered one after another in enqueue order, for example
	// "Appointment/123"; messages of different keys flow independently.
	Key string
	// ControlID identifies the message to its receiver (HL7 v2 MSH-10).
	// It is fixed when the message is enqueued, so every resend carries
	// the same one and a receiver that de-duplicates by it applies the
	// message once.
	ControlID   string
	ContentType string // the payload's media type
	Payload     []byte
	Created     time.Time // when it was enqueued (zero: now); it is due from then
}

// Queued is a message in the outbox with its delivery state.
type Queued struct {
	ID int64 // assigned by Enqueue, increasing in enqueue order
	Message
	State OutboxState
	// Attempts counts the claims since the message was enqueued or last
	// replayed (the dispatcher's back-off and retry limit count them).
	Attempts int
	// Claim identifies the claim that returned the message, for its
	// outcome: the store never gives two claims of a message the same.
	Claim int64
	// NextAt is when a pending message is due, and when an in-flight
	// message's lease ends.
	NextAt time.Time
	// LastError is the reason of the last failed attempt, dead letter or
	// discard; it stays after a replay.
	LastError string
	// Finished is when the message was delivered, dead-lettered or
	// discarded; zero while it is pending or in flight.
	Finished time.Time
}

// OutboxState is where a message is in its delivery.
type OutboxState string

// The states of an outbox message. A message stays in flight when its
// lease ends, until claimed again; Backlog counts it as pending.
const (
	OutboxPending   OutboxState = "pending"
	OutboxInFlight  OutboxState = "in-flight"
	OutboxDead      OutboxState = "dead"
	OutboxDone      OutboxState = "done"
	OutboxDiscarded OutboxState = "discarded"
)

// Backlog is what waits in the outbox for one destination.
type Backlog struct {
	Destination string
	// Pending counts messages waiting to be claimed: due, not yet due
	// (back-off) or blocked behind an earlier message of their key.
	Pending  int
	InFlight int // claimed, lease not ended
	Dead     int // dead letters
	// OldestPending is when the oldest message pending or in flight was
	// enqueued (zero when there is none): its age is how far delivery
	// lags.
	OldestPending time.Time
}

// Inbox is an optional capability of a Store, found by type assertion: a
// record of the inbound messages applied, by sender and control id, with
// the answer given. A receiver records a message in the same transaction
// as applying it (the store's Tx implements InboxTx), and before applying
// one looks it up: a message found was applied already, and a resend is
// answered again with the recorded answer, not applied twice.
type Inbox interface {
	// Received returns the record of (sender, controlID); one not
	// recorded gives an error of kind fhir.NotFound.
	Received(ctx context.Context, sender, controlID string) (*Inbound, error)
}

// InboxTx is the Inbox capability of a Tx; its reads see its own writes.
type InboxTx interface {
	Inbox
	// RecordReceived records in (in.Sender and in.ControlID must not be
	// empty). One already recorded under (Sender, ControlID) gives an
	// error of kind fhir.Conflict and changes nothing: two copies of a
	// message applied at once, the second transaction fails and its
	// receiver answers with the first's answer.
	RecordReceived(ctx context.Context, in Inbound) error
}

// Inbound is the record of an inbound message applied.
type Inbound struct {
	// Sender names who sent it, fully enough that two senders' control
	// ids cannot collide: for HL7 v2, the adapter instance with MSH-3
	// and MSH-4.
	Sender    string
	ControlID string // HL7 v2 MSH-10
	// Hash is a digest of the message's content, chosen by the receiver
	// (say SHA-256 of the payload): a resend whose hash differs reuses
	// a control id for different content.
	Hash     []byte
	Payload  []byte    // the message as received, for inspection; may be nil
	Answer   []byte    // the answer given (an ACK), sent again to a resend
	Received time.Time // when it was recorded (zero: now)
}
