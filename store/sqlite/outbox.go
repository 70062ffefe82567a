package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// outboxSchema holds store.Outbox and store.Inbox. An outbox row is one
// message; id orders the messages of a (destination, okey) and avail is
// when a pending message is due or an in-flight message's lease ends
// (unix microseconds, as every time here). claim counts the message's
// claims and is never reset: it tells a current claim from a stale one.
// The partial indexes cover what is not finished: the messages that order
// their key (pending, in flight, dead) and those that can be claimed.
// An inbox row is one inbound message applied.
const outboxSchema = `
CREATE TABLE IF NOT EXISTS outbox (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	destination  TEXT    NOT NULL,
	okey         TEXT    NOT NULL,
	control_id   TEXT    NOT NULL,
	content_type TEXT    NOT NULL,
	payload      BLOB    NOT NULL,
	created      INTEGER NOT NULL,
	state        TEXT    NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	claim        INTEGER NOT NULL DEFAULT 0,
	avail        INTEGER NOT NULL,
	last_error   TEXT    NOT NULL DEFAULT '',
	finished     INTEGER NOT NULL DEFAULT 0,
	UNIQUE (destination, control_id)
);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (destination, okey, id) WHERE state IN ('pending', 'in-flight', 'dead');
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, id) WHERE state IN ('pending', 'in-flight');
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox (destination, id) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (finished) WHERE state IN ('done', 'discarded');

CREATE TABLE IF NOT EXISTS inbox (
	sender     TEXT    NOT NULL,
	control_id TEXT    NOT NULL,
	hash       BLOB,
	payload    BLOB,
	answer     BLOB,
	received   INTEGER NOT NULL,
	PRIMARY KEY (sender, control_id)
);
CREATE INDEX IF NOT EXISTS inbox_received ON inbox (received);
`

// micros is t in unix microseconds, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros, in UTC.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// Enqueue implements store.OutboxTx.
func (t *txn) Enqueue(ctx context.Context, m store.Message) (int64, error) {
	if m.Destination == "" || m.Key == "" || m.ControlID == "" {
		return 0, fhir.Errorf(fhir.Invalid, "required", "", "an outbox message needs a destination, an ordering key and a control id (got %q, %q, %q)",
			m.Destination, m.Key, m.ControlID)
	}
	created := micros(m.Created)
	if created == 0 {
		created = time.Now().UnixMicro()
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	res, err := t.exec(ctx, `INSERT INTO outbox (destination, okey, control_id, content_type, payload, created, state, avail)
		VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT (destination, control_id) DO NOTHING`,
		m.Destination, m.Key, m.ControlID, m.ContentType, payload, created, created)
	if err != nil {
		return 0, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, err
	} else if n == 0 {
		return 0, fhir.Errorf(fhir.Conflict, "conflict", "", "control id %q is already used for %s", m.ControlID, m.Destination)
	}
	return res.LastInsertId()
}

// queuedColumns are the columns scanQueued reads, in its order.
const queuedColumns = "id, destination, okey, control_id, content_type, payload, created, state, attempts, claim, avail, last_error, finished"

// scanQueued reads the rows of a query of queuedColumns.
func scanQueued(rows *sql.Rows, err error) ([]store.Queued, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Queued
	for rows.Next() {
		var q store.Queued
		var created, avail, finished int64
		var state string
		if err := rows.Scan(&q.ID, &q.Destination, &q.Key, &q.ControlID, &q.ContentType, &q.Payload, &created, &state,
			&q.Attempts, &q.Claim, &avail, &q.LastError, &finished); err != nil {
			return nil, err
		}
		q.Created, q.NextAt, q.Finished, q.State = fromMicros(created), fromMicros(avail), fromMicros(finished), store.OutboxState(state)
		out = append(out, q)
	}
	return out, rows.Err()
}

// claimSQL leases the due heads of their keys for one destination: a
// message pending or in flight, due (avail <= now), with no earlier
// message of its key pending, in flight or dead. (Its LIMIT is an
// expression: see limitParam.)
const claimSQL = `UPDATE outbox SET state = 'in-flight', attempts = attempts + 1, claim = claim + 1, avail = ?3
	WHERE id IN (SELECT o.id FROM outbox o
		WHERE o.destination = ?1 AND o.state IN ('pending', 'in-flight') AND o.avail <= ?2
		AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.destination = o.destination AND e.okey = o.okey
			AND e.state IN ('pending', 'in-flight', 'dead') AND e.id < o.id)
		ORDER BY o.id LIMIT ?4+0)
	RETURNING ` + queuedColumns

// Claim implements store.OutboxDelivery. It runs as a write (through the
// store's one writer), so two claims never lease the same message.
func (s *Store) Claim(ctx context.Context, destination string, now time.Time, lease time.Duration, limit int) ([]store.Queued, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.Queued
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		out, err = scanQueued(tx.(*txn).batch.QueryContext(ctx, claimSQL, destination, now.UnixMicro(), now.Add(lease).UnixMicro(), limit))
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.Queued) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// outcome moves claimed message id, of claim claim, to state, setting avail,
// last_error (when reason is not nil) and finished.
func (s *Store) outcome(ctx context.Context, id, claim int64, state store.OutboxState, avail time.Time, reason *string, finished time.Time) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.(*txn).outcome(ctx, id, claim, state, avail, reason, finished)
	})
}

// outcome is Store.outcome in t.
func (t *txn) outcome(ctx context.Context, id, claim int64, state store.OutboxState, avail time.Time, reason *string, finished time.Time) error {
	res, err := t.exec(ctx, `UPDATE outbox SET state = ?, avail = ?, last_error = coalesce(?, last_error), finished = ?
		WHERE id = ? AND state = 'in-flight' AND claim = ?`, string(state), micros(avail), reason, micros(finished), id, claim)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return t.outboxMiss(ctx, id, "claim %d of outbox message %d is not current", claim, id)
}

// Settle implements store.OutboxBatch: the outcomes and the claim run as
// one write through the store's one writer.
func (s *Store) Settle(ctx context.Context, outcomes []store.Outcome, next store.ClaimRequest) ([]error, []store.Queued, error) {
	for _, o := range outcomes {
		switch o.State {
		case store.OutboxDone, store.OutboxPending, store.OutboxDead:
		default:
			return nil, nil, fhir.Errorf(fhir.Invalid, "value", "", "outcome of outbox message %d: state %q is not an outcome", o.ID, o.State)
		}
	}
	var errs []error
	var claimed []store.Queued
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		t := tx.(*txn)
		errs, claimed = make([]error, len(outcomes)), nil // the store may run this more than once
		for i, o := range outcomes {
			var err error
			switch o.State {
			case store.OutboxDone:
				err = t.outcome(ctx, o.ID, o.Claim, o.State, time.Time{}, nil, o.At)
			case store.OutboxPending:
				err = t.outcome(ctx, o.ID, o.Claim, o.State, o.At, &o.Reason, time.Time{})
			case store.OutboxDead:
				err = t.outcome(ctx, o.ID, o.Claim, o.State, time.Time{}, &o.Reason, o.At)
			}
			switch fhir.KindOf(err) {
			case fhir.Conflict, fhir.NotFound:
				errs[i] = err
			default:
				if err != nil {
					return err
				}
			}
		}
		if next.Limit <= 0 {
			return nil
		}
		var err error
		claimed, err = scanQueued(t.batch.QueryContext(ctx, claimSQL, next.Destination, next.Now.UnixMicro(),
			next.Now.Add(next.Lease).UnixMicro(), next.Limit))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(claimed, func(a, b store.Queued) int { return cmp.Compare(a.ID, b.ID) })
	return errs, claimed, nil
}

// outboxMiss is the error of a change to message id that found it in
// another state: fhir.NotFound when there is no such message, otherwise
// fhir.Conflict with the message format.
func (t *txn) outboxMiss(ctx context.Context, id int64, format string, args ...any) error {
	var state string
	err := t.batch.QueryRowContext(ctx, "SELECT state FROM outbox WHERE id = ?", id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fhir.Errorf(fhir.NotFound, "not-found", "", "outbox message %d is not known", id)
	}
	if err != nil {
		return err
	}
	return fhir.Errorf(fhir.Conflict, "conflict", "", format+" (it is %s)", append(args, state)...)
}

// Delivered implements store.OutboxDelivery.
func (s *Store) Delivered(ctx context.Context, id, claim int64, now time.Time) error {
	return s.outcome(ctx, id, claim, store.OutboxDone, time.Time{}, nil, now)
}

// Retry implements store.OutboxDelivery.
func (s *Store) Retry(ctx context.Context, id, claim int64, reason string, next time.Time) error {
	return s.outcome(ctx, id, claim, store.OutboxPending, next, &reason, time.Time{})
}

// DeadLetter implements store.OutboxDelivery.
func (s *Store) DeadLetter(ctx context.Context, id, claim int64, reason string, now time.Time) error {
	return s.outcome(ctx, id, claim, store.OutboxDead, time.Time{}, &reason, now)
}

// DeadLetters implements store.OutboxAdmin.
func (s *Store) DeadLetters(ctx context.Context, destination string, limit int) ([]store.Queued, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := "SELECT " + queuedColumns + " FROM outbox WHERE state = 'dead' ORDER BY id" + limitParam
	args := []any{limit}
	if destination != "" {
		q = "SELECT " + queuedColumns + " FROM outbox WHERE destination = ? AND state = 'dead' ORDER BY id" + limitParam
		args = []any{destination, limit}
	}
	return scanQueued(s.rdb.QueryContext(ctx, q, args...))
}

// fromDead moves dead letter id to state with avail, last_error (when
// reason is not nil), attempts and finished.
func (s *Store) fromDead(ctx context.Context, id int64, state store.OutboxState, avail time.Time, reason *string, finished time.Time, what string) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		t := tx.(*txn)
		res, err := t.exec(ctx, `UPDATE outbox SET state = ?1, avail = ?2, last_error = coalesce(?3, last_error), finished = ?4,
			attempts = CASE WHEN ?1 = 'pending' THEN 0 ELSE attempts END WHERE id = ?5 AND state = 'dead'`,
			string(state), micros(avail), reason, micros(finished), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return t.outboxMiss(ctx, id, "only a dead letter can be %s: outbox message %d is not one", what, id)
	})
}

// Replay implements store.OutboxAdmin.
func (s *Store) Replay(ctx context.Context, id int64, now time.Time) error {
	return s.fromDead(ctx, id, store.OutboxPending, now, nil, time.Time{}, "replayed")
}

// Discard implements store.OutboxAdmin.
func (s *Store) Discard(ctx context.Context, id int64, reason string, now time.Time) error {
	return s.fromDead(ctx, id, store.OutboxDiscarded, time.Time{}, &reason, now, "discarded")
}

// Backlog implements store.OutboxAdmin.
func (s *Store) Backlog(ctx context.Context, now time.Time) ([]store.Backlog, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT destination,
			sum(state = 'pending' OR (state = 'in-flight' AND avail <= ?1)),
			sum(state = 'in-flight' AND avail > ?1),
			sum(state = 'dead'),
			coalesce(min(CASE WHEN state IN ('pending', 'in-flight') THEN created END), 0)
		FROM outbox WHERE state IN ('pending', 'in-flight', 'dead') GROUP BY destination ORDER BY destination`, now.UnixMicro())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Backlog
	for rows.Next() {
		var b store.Backlog
		var oldest int64
		if err := rows.Scan(&b.Destination, &b.Pending, &b.InFlight, &b.Dead, &oldest); err != nil {
			return nil, err
		}
		b.OldestPending = fromMicros(oldest)
		out = append(out, b)
	}
	return out, rows.Err()
}

// pruneBatch is the most rows one transaction of Prune deletes, so that a
// large prune does not hold the store's one writer for long (a variable
// for a test).
var pruneBatch = 1000

// pruneSQL are Prune's statements, each deleting up to pruneBatch rows
// finished (or received) before ?1.
var pruneSQL = []string{
	`DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
		WHERE state IN ('done', 'discarded') AND finished < ?1 LIMIT ?2+0)`, // LIMITs: see limitParam
	`DELETE FROM inbox WHERE rowid IN (SELECT rowid FROM inbox WHERE received < ?1 LIMIT ?2+0)`,
}

// Prune implements store.OutboxAdmin: it deletes in transactions of up to
// pruneBatch rows, so writes go on between them.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for _, q := range pruneSQL {
		for {
			var n int64
			err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				res, err := tx.(*txn).exec(ctx, q, before.UnixMicro(), pruneBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return total, err
			}
			total += int(n)
			if n < int64(pruneBatch) {
				break
			}
		}
	}
	return total, nil
}

// Received implements store.Inbox.
func (s *Store) Received(ctx context.Context, sender, controlID string) (*store.Inbound, error) {
	return reader{s: s, q: s.rdb}.Received(ctx, sender, controlID)
}

// Received implements store.Inbox over the reader's connection.
func (r reader) Received(ctx context.Context, sender, controlID string) (*store.Inbound, error) {
	in := &store.Inbound{Sender: sender, ControlID: controlID}
	// Every inbound message asks this before it is applied: on the read
	// pool the statement is prepared once (queryRows).
	rows, done, err := r.queryRows(ctx, frag{sql: "SELECT hash, payload, answer, received FROM inbox WHERE sender = ? AND control_id = ?",
		args: []any{sender, controlID}})
	if err != nil {
		return nil, err
	}
	defer done()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "no message %q from %q was received", controlID, sender)
	}
	var received int64
	if err := rows.Scan(&in.Hash, &in.Payload, &in.Answer, &received); err != nil {
		return nil, err
	}
	in.Received = fromMicros(received)
	return in, rows.Err()
}

// RecordReceived implements store.InboxTx.
func (t *txn) RecordReceived(ctx context.Context, in store.Inbound) error {
	if in.Sender == "" || in.ControlID == "" {
		return fhir.Errorf(fhir.Invalid, "required", "", "an inbound message needs a sender and a control id (got %q, %q)", in.Sender, in.ControlID)
	}
	received := micros(in.Received)
	if received == 0 {
		received = time.Now().UnixMicro()
	}
	res, err := t.exec(ctx, `INSERT INTO inbox (sender, control_id, hash, payload, answer, received) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (sender, control_id) DO NOTHING`, in.Sender, in.ControlID, in.Hash, in.Payload, in.Answer, received)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "message %q from %q was already received", in.ControlID, in.Sender)
	}
	return nil
}
