package mongo

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// The transactional outbox and inbox (store.Outbox, store.Inbox).
//
// A message's ID comes from a counter document that every Enqueue
// increments in its transaction: IDs increase in the order the store
// serialised the transactions (on MongoDB two enqueuing transactions
// write the counter, so one waits for the other's outcome through a
// retried write conflict). Claims and outcomes update the message's own
// document, so two dispatchers claiming one message conflict the same way.

// outboxDoc is an outbox message.
type outboxDoc struct {
	ID        int64  `bson:"_id"`
	Dest      string `bson:"dest"`
	Key       string `bson:"key"`
	Ctl       string `bson:"ctl"`
	CT        string `bson:"ct"`
	Payload   []byte `bson:"payload"`
	Created   int64  `bson:"created"` // unix microseconds, as the times below (0: none)
	State     string `bson:"state"`
	Attempts  int    `bson:"attempts"`
	Claim     int64  `bson:"claim"`
	Next      int64  `bson:"next"`
	LastError string `bson:"lasterr"`
	Finished  int64  `bson:"finished"`
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func (d *outboxDoc) queued() store.Queued {
	return store.Queued{ID: d.ID, Message: store.Message{Destination: d.Dest, Key: d.Key, ControlID: d.Ctl, ContentType: d.CT,
		Payload: d.Payload, Created: fromMicros(d.Created)}, State: store.OutboxState(d.State), Attempts: d.Attempts,
		Claim: d.Claim, NextAt: fromMicros(d.Next), LastError: d.LastError, Finished: fromMicros(d.Finished)}
}

// Enqueue implements store.OutboxTx.
func (t *txn) Enqueue(_ context.Context, m store.Message) (int64, error) {
	if m.Destination == "" || m.Key == "" || m.ControlID == "" {
		return 0, fhir.Errorf(fhir.Invalid, "required", "", "an outbox message needs a destination, an ordering key and a control id (got %q, %q, %q)",
			m.Destination, m.Key, m.ControlID)
	}
	n, err := t.c(colOutbox).CountDocuments(t.ctx, bson.D{{Key: "dest", Value: m.Destination}, {Key: "ctl", Value: m.ControlID}})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		return 0, fhir.Errorf(fhir.Conflict, "conflict", "", "control id %q is already used for %s", m.ControlID, m.Destination)
	}
	var counter struct {
		N int64 `bson:"n"`
	}
	err = t.c(colMeta).FindOneAndUpdate(t.ctx, bson.D{{Key: "_id", Value: "outbox-id"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&counter)
	if err != nil {
		return 0, err
	}
	created := micros(m.Created)
	if created == 0 {
		created = time.Now().UnixMicro()
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	d := outboxDoc{ID: counter.N, Dest: m.Destination, Key: m.Key, Ctl: m.ControlID, CT: m.ContentType, Payload: payload,
		Created: created, State: string(store.OutboxPending), Next: created}
	if _, err := t.c(colOutbox).InsertOne(t.ctx, d); err != nil {
		return 0, dupConflict(err, "control id "+m.ControlID)
	}
	return d.ID, nil
}

func (r reader) outbox(f bson.D, limit int) ([]outboxDoc, error) {
	o := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if limit > 0 {
		o.SetLimit(int64(limit))
	}
	cur, err := r.c(colOutbox).Find(r.ctx, f, o)
	if err != nil {
		return nil, err
	}
	var docs []outboxDoc
	err = cur.All(r.ctx, &docs)
	return docs, err
}

var openStates = bson.A{string(store.OutboxPending), string(store.OutboxInFlight), string(store.OutboxDead)}

// Claim implements store.OutboxDelivery.
func (s *Store) Claim(ctx context.Context, destination string, now time.Time, lease time.Duration, limit int) ([]store.Queued, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.Queued
	err := s.inTxn(ctx, func(sc context.Context) error {
		out = nil
		r := reader{s: s, ctx: sc}
		docs, err := r.outbox(bson.D{{Key: "dest", Value: destination}, {Key: "state", Value: bson.D{{Key: "$in", Value: openStates}}}}, 0)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, d := range docs {
			if len(out) == limit {
				break
			}
			if seen[d.Key] {
				continue
			}
			seen[d.Key] = true
			if d.State == string(store.OutboxDead) || d.Next > now.UnixMicro() {
				continue
			}
			d.State, d.Attempts, d.Claim, d.Next = string(store.OutboxInFlight), d.Attempts+1, d.Claim+1, now.Add(lease).UnixMicro()
			if _, err := r.c(colOutbox).UpdateOne(sc, bson.D{{Key: "_id", Value: d.ID}}, bson.D{{Key: "$set", Value: bson.D{
				{Key: "state", Value: d.State}, {Key: "attempts", Value: d.Attempts}, {Key: "claim", Value: d.Claim}, {Key: "next", Value: d.Next}}}}); err != nil {
				return err
			}
			out = append(out, d.queued())
		}
		return nil
	})
	return out, err
}

// change updates message id in a transaction when ok accepts its state.
func (s *Store) change(ctx context.Context, id int64, ok func(d *outboxDoc) error, set func(d *outboxDoc) bson.D) error {
	return s.inTxn(ctx, func(sc context.Context) error {
		var d outboxDoc
		err := s.col[colOutbox].FindOne(sc, bson.D{{Key: "_id", Value: id}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return fhir.Errorf(fhir.NotFound, "not-found", "", "outbox message %d is not known", id)
		}
		if err != nil {
			return err
		}
		if err := ok(&d); err != nil {
			return err
		}
		_, err = s.col[colOutbox].UpdateOne(sc, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set(&d)}})
		return err
	})
}

func currentClaim(claim int64) func(d *outboxDoc) error {
	return func(d *outboxDoc) error {
		if d.State != string(store.OutboxInFlight) || d.Claim != claim {
			return fhir.Errorf(fhir.Conflict, "conflict", "", "claim %d of outbox message %d is not current (it is %s)", claim, d.ID, d.State)
		}
		return nil
	}
}

// Delivered implements store.OutboxDelivery.
func (s *Store) Delivered(ctx context.Context, id, claim int64, now time.Time) error {
	return s.change(ctx, id, currentClaim(claim), func(*outboxDoc) bson.D {
		return bson.D{{Key: "state", Value: string(store.OutboxDone)}, {Key: "next", Value: int64(0)}, {Key: "finished", Value: micros(now)}}
	})
}

// Retry implements store.OutboxDelivery.
func (s *Store) Retry(ctx context.Context, id, claim int64, reason string, next time.Time) error {
	return s.change(ctx, id, currentClaim(claim), func(*outboxDoc) bson.D {
		return bson.D{{Key: "state", Value: string(store.OutboxPending)}, {Key: "next", Value: micros(next)}, {Key: "lasterr", Value: reason}}
	})
}

// DeadLetter implements store.OutboxDelivery.
func (s *Store) DeadLetter(ctx context.Context, id, claim int64, reason string, now time.Time) error {
	return s.change(ctx, id, currentClaim(claim), func(*outboxDoc) bson.D {
		return bson.D{{Key: "state", Value: string(store.OutboxDead)}, {Key: "next", Value: int64(0)}, {Key: "lasterr", Value: reason},
			{Key: "finished", Value: micros(now)}}
	})
}

// DeadLetters implements store.OutboxAdmin.
func (s *Store) DeadLetters(ctx context.Context, destination string, limit int) ([]store.Queued, error) {
	if limit <= 0 {
		return nil, nil
	}
	f := bson.D{{Key: "state", Value: string(store.OutboxDead)}}
	if destination != "" {
		f = bson.D{{Key: "dest", Value: destination}, {Key: "state", Value: string(store.OutboxDead)}}
	}
	docs, err := reader{s: s, ctx: ctx}.outbox(f, limit)
	if err != nil {
		return nil, err
	}
	out := make([]store.Queued, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.queued())
	}
	return out, nil
}

func deadOnly(what string) func(d *outboxDoc) error {
	return func(d *outboxDoc) error {
		if d.State != string(store.OutboxDead) {
			return fhir.Errorf(fhir.Conflict, "conflict", "", "only a dead letter can be %s: outbox message %d is %s", what, d.ID, d.State)
		}
		return nil
	}
}

// Replay implements store.OutboxAdmin.
func (s *Store) Replay(ctx context.Context, id int64, now time.Time) error {
	return s.change(ctx, id, deadOnly("replayed"), func(*outboxDoc) bson.D {
		return bson.D{{Key: "state", Value: string(store.OutboxPending)}, {Key: "next", Value: micros(now)}, {Key: "attempts", Value: 0},
			{Key: "finished", Value: int64(0)}}
	})
}

// Discard implements store.OutboxAdmin.
func (s *Store) Discard(ctx context.Context, id int64, reason string, now time.Time) error {
	return s.change(ctx, id, deadOnly("discarded"), func(*outboxDoc) bson.D {
		return bson.D{{Key: "state", Value: string(store.OutboxDiscarded)}, {Key: "lasterr", Value: reason}, {Key: "finished", Value: micros(now)}}
	})
}

// Prune implements store.OutboxAdmin: the messages delivered or
// discarded, and the inbox records received, before before, in one
// transaction.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.inTxn(ctx, func(sc context.Context) error {
		n = 0
		done, err := s.col[colOutbox].DeleteMany(sc, bson.D{
			{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{string(store.OutboxDone), string(store.OutboxDiscarded)}}}},
			{Key: "finished", Value: bson.D{{Key: "$lt", Value: micros(before)}}}})
		if err != nil {
			return err
		}
		old, err := s.col[colInbox].DeleteMany(sc, bson.D{{Key: "received", Value: bson.D{{Key: "$lt", Value: micros(before)}}}})
		if err != nil {
			return err
		}
		n = int(done.DeletedCount + old.DeletedCount)
		return nil
	})
	return n, err
}

// Backlog implements store.OutboxAdmin: one read of the open messages,
// counted here (lungo has no aggregation).
func (s *Store) Backlog(ctx context.Context, now time.Time) ([]store.Backlog, error) {
	var docs []outboxDoc
	err := s.view(ctx, func(r reader) error {
		var err error
		docs, err = r.outbox(bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: openStates}}}}, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	by := map[string]*store.Backlog{}
	var dests []string
	for _, d := range docs {
		b := by[d.Dest]
		if b == nil {
			b = &store.Backlog{Destination: d.Dest}
			by[d.Dest] = b
			dests = append(dests, d.Dest)
		}
		switch {
		case d.State == string(store.OutboxDead):
			b.Dead++
		case d.State == string(store.OutboxInFlight) && d.Next > now.UnixMicro():
			b.InFlight++
		default:
			b.Pending++
		}
		if d.State != string(store.OutboxDead) {
			if c := fromMicros(d.Created); b.OldestPending.IsZero() || c.Before(b.OldestPending) {
				b.OldestPending = c
			}
		}
	}
	slices.Sort(dests)
	out := make([]store.Backlog, 0, len(dests))
	for _, d := range dests {
		out = append(out, *by[d])
	}
	return out, nil
}

// inboxDoc is an inbound message recorded.
type inboxDoc struct {
	Key      string `bson:"_id"` // sender NUL control id
	Sender   string `bson:"sender"`
	Ctl      string `bson:"ctl"`
	Hash     []byte `bson:"hash,omitempty"`
	Payload  []byte `bson:"payload,omitempty"`
	Answer   []byte `bson:"answer,omitempty"`
	Received int64  `bson:"received"`
}

// Received implements store.Inbox.
func (s *Store) Received(ctx context.Context, sender, controlID string) (*store.Inbound, error) {
	return reader{s: s, ctx: ctx}.Received(ctx, sender, controlID)
}

// Received implements store.Inbox.
func (r reader) Received(_ context.Context, sender, controlID string) (*store.Inbound, error) {
	var d inboxDoc
	err := r.c(colInbox).FindOne(r.ctx, bson.D{{Key: "_id", Value: sender + "\x00" + controlID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "no message %q from %q was received", controlID, sender)
	}
	if err != nil {
		return nil, err
	}
	return &store.Inbound{Sender: d.Sender, ControlID: d.Ctl, Hash: d.Hash, Payload: d.Payload, Answer: d.Answer, Received: fromMicros(d.Received)}, nil
}

// RecordReceived implements store.InboxTx. Two transactions recording one
// message both insert its document: one fails (a duplicate key, or on
// MongoDB a write conflict that is retried and then finds the record).
func (t *txn) RecordReceived(ctx context.Context, in store.Inbound) error {
	if in.Sender == "" || in.ControlID == "" {
		return fhir.Errorf(fhir.Invalid, "required", "", "an inbound record needs a sender and a control id")
	}
	if _, err := t.Received(ctx, in.Sender, in.ControlID); err == nil {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "message %q from %q was already received", in.ControlID, in.Sender)
	} else if fhir.KindOf(err) != fhir.NotFound {
		return err
	}
	received := micros(in.Received)
	if received == 0 {
		received = time.Now().UnixMicro()
	}
	d := inboxDoc{Key: in.Sender + "\x00" + in.ControlID, Sender: in.Sender, Ctl: in.ControlID, Hash: in.Hash, Payload: in.Payload,
		Answer: in.Answer, Received: received}
	_, err := t.c(colInbox).InsertOne(t.ctx, d)
	return dupConflict(err, "message "+in.ControlID)
}
