package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// txn is one Update's view of the batch transaction.
type txn struct {
	reader
	tx      *sql.Tx
	batch   *batchState
	newPids []string // parameter ids this request created
}

func (t *txn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, query, args...)
}

// Put implements store.Tx.
func (t *txn) Put(ctx context.Context, w *store.Write) error {
	res := w.Resource
	var rid, cur int64
	err := t.tx.QueryRowContext(ctx, "SELECT rid, version FROM resources WHERE type = ? AND id = ?", res.Type, res.ID).Scan(&rid, &cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		cur = 0
	case err != nil:
		return err
	}
	if res.Version != cur+1 {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "%s/%s is at version %d, not %d", res.Type, res.ID, cur, res.Version-1)
	}
	var body any
	if !res.Deleted {
		body = res.JSON
	}
	updated := res.LastUpdated.UnixMicro()
	var seq int64
	err = t.tx.QueryRowContext(ctx, `INSERT INTO history (type, id, version, updated, deleted, body)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`, res.Type, res.ID, res.Version, updated, res.Deleted, body).Scan(&seq)
	if err != nil {
		return err
	}
	if cur == 0 {
		err = t.tx.QueryRowContext(ctx, `INSERT INTO resources (type, id, version, updated, deleted, seq)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING rid`, res.Type, res.ID, res.Version, updated, res.Deleted, seq).Scan(&rid)
	} else {
		_, err = t.exec(ctx, `UPDATE resources SET version = ?, updated = ?, deleted = ?, seq = ? WHERE rid = ?`,
			res.Version, updated, res.Deleted, seq, rid)
	}
	if err != nil {
		return err
	}
	if res.Deleted {
		return t.writeIndex(ctx, res.Type, rid, nil)
	}
	return t.writeIndex(ctx, res.Type, rid, w.Index)
}

var _ store.Tx = (*txn)(nil)
