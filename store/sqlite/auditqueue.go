package sqlite

import (
	"context"
	"encoding/json"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// auditQueueSchema holds store.AuditQueue: one row per queued record,
// appended by the transaction of the write it records, in seq order (the
// rowid: the store's one writer gives a new row a greater one than every
// row there, so in commit order; once the queue is empty it may start
// again from 1, as store.QueuedAudit allows). No index but
// the rowid, no history, no index entries: a queued record costs its
// write one row, and its search index is built once, where the mover
// stores it.
const auditQueueSchema = `
CREATE TABLE IF NOT EXISTS audit_queue (
	seq     INTEGER PRIMARY KEY,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	updated INTEGER NOT NULL, -- unix microseconds
	body    BLOB    NOT NULL
);
`

var (
	_ store.AuditQueue   = (*Store)(nil)
	_ store.AuditQueueTx = (*txn)(nil)
)

// QueueAudit implements store.AuditQueueTx.
func (t *txn) QueueAudit(ctx context.Context, res *fhir.Resource) error {
	if res.Type == "" || res.ID == "" || len(res.JSON) == 0 {
		return fhir.Errorf(fhir.Invalid, "required", "", "a queued audit record needs a type, an id and a body (got %q, %q, %d bytes)",
			res.Type, res.ID, len(res.JSON))
	}
	_, err := t.exec(ctx, "INSERT INTO audit_queue (type, id, updated, body) VALUES (?, ?, ?, ?)",
		res.Type, res.ID, res.LastUpdated.UnixMicro(), res.JSON)
	return err
}

// queuedAuditsSQL reads the queue on from a seq.
const queuedAuditsSQL = "SELECT seq, type, id, updated, body FROM audit_queue WHERE seq > ? ORDER BY seq" + limitParam

// QueuedAudits implements store.AuditQueue, from a read connection: it
// sees every committed transaction, and an empty queue costs one probe of
// the rowid.
func (s *Store) QueuedAudits(ctx context.Context, after int64, limit int) ([]store.QueuedAudit, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.rdb.QueryContext(ctx, queuedAuditsSQL, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QueuedAudit
	for rows.Next() {
		var q store.QueuedAudit
		var updated int64
		res := &fhir.Resource{Version: 1}
		if err := rows.Scan(&q.Seq, &res.Type, &res.ID, &updated, &res.JSON); err != nil {
			return nil, err
		}
		res.LastUpdated = time.UnixMicro(updated).UTC()
		q.Resource = res
		out = append(out, q)
	}
	return out, rows.Err()
}

// DropAudits implements store.AuditQueue, through the writer.
func (s *Store) DropAudits(ctx context.Context, seqs []int64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	list, err := json.Marshal(seqs)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		res, err := tx.(*txn).exec(ctx, "DELETE FROM audit_queue WHERE seq IN (SELECT value FROM json_each(?))", string(list))
		if err != nil {
			return err
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
