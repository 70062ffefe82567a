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
	batch   *batchState // the batch transaction and its prepared statements
	newPids []string    // parameter ids this request created
}

func (t *txn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.batch.ExecContext(ctx, query, args...)
}

// Put implements store.Tx.
func (t *txn) Put(ctx context.Context, w *store.Write) error {
	res := w.Resource
	var rid, cur int64
	err := t.batch.QueryRowContext(ctx, "SELECT rid, version FROM resources WHERE type = ? AND id = ?", res.Type, res.ID).Scan(&rid, &cur)
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
	// Exec and LastInsertId rather than RETURNING: no rows to allocate.
	hr, err := t.exec(ctx, `INSERT INTO history (type, id, version, updated, deleted, body)
		VALUES (?, ?, ?, ?, ?, ?)`, res.Type, res.ID, res.Version, updated, res.Deleted, body)
	if err != nil {
		return err
	}
	seq, err := hr.LastInsertId()
	if err != nil {
		return err
	}
	if cur == 0 {
		var rr sql.Result
		if rr, err = t.exec(ctx, `INSERT INTO resources (type, id, version, updated, deleted, seq)
			VALUES (?, ?, ?, ?, ?, ?)`, res.Type, res.ID, res.Version, updated, res.Deleted, seq); err == nil {
			rid, err = rr.LastInsertId()
		}
	} else {
		_, err = t.exec(ctx, `UPDATE resources SET version = ?, updated = ?, deleted = ?, seq = ? WHERE rid = ?`,
			res.Version, updated, res.Deleted, seq, rid)
	}
	if err != nil {
		return err
	}
	if res.Deleted {
		return t.writeIndex(ctx, res.Type, rid, nil, cur == 0)
	}
	return t.writeIndex(ctx, res.Type, rid, w.Index, cur == 0)
}

// PutAll stores ws in order with the effect of one Put each, for bulk
// loading: new resources (the common case) are written with multi-row
// INSERTs through statements prepared once per call, with row ids assigned
// here (the store has a single writer); a write that replaces, deletes or
// repeats a resource takes the ordinary Put path. Like Put, it fails with
// fhir.Conflict when a version is not the next one; the caller's Update
// then rolls everything back.
func (t *txn) PutAll(ctx context.Context, ws []*store.Write) error {
	in := &inserter{q: t.batch}
	exists := map[string]bool{}
	ids := map[string][]any{}
	for _, w := range ws {
		ids[w.Resource.Type] = append(ids[w.Resource.Type], w.Resource.ID)
	}
	for typ, list := range ids {
		for len(list) > 0 {
			n := min(len(list), 500)
			rows, err := t.batch.QueryContext(ctx, "SELECT id FROM resources WHERE type = ? AND id IN ("+placeholders(n)+")",
				append([]any{typ}, list[:n]...)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				exists[typ+"/"+id] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			list = list[n:]
		}
	}
	var seq, rid int64
	next := func() error {
		if err := t.batch.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM history").Scan(&seq); err != nil {
			return err
		}
		return t.batch.QueryRowContext(ctx, "SELECT coalesce(max(rid), 0) FROM resources").Scan(&rid)
	}
	if err := next(); err != nil {
		return err
	}
	var hist, cur []any
	var rs rowSet
	flush := func() error {
		if err := in.insert(ctx, "history", "seq, type, id, version, updated, deleted, body", 7, hist); err != nil {
			return err
		}
		if err := in.insert(ctx, "resources", "rid, type, id, version, updated, deleted, seq", 7, cur); err != nil {
			return err
		}
		hist, cur = hist[:0], cur[:0]
		return t.flush(ctx, in, &rs)
	}
	for _, w := range ws {
		res := w.Resource
		key := res.Reference()
		if exists[key] || res.Deleted || res.Version != 1 {
			if err := flush(); err != nil {
				return err
			}
			if err := t.Put(ctx, w); err != nil {
				return err
			}
			if err := next(); err != nil {
				return err
			}
			exists[key] = true
			continue
		}
		seq++
		rid++
		updated := res.LastUpdated.UnixMicro()
		hist = append(hist, seq, res.Type, res.ID, res.Version, updated, false, res.JSON)
		cur = append(cur, rid, res.Type, res.ID, res.Version, updated, false, seq)
		if err := t.addRows(ctx, res.Type, rid, w.Index, &rs); err != nil {
			return err
		}
		exists[key] = true
	}
	return flush()
}

var _ store.Tx = (*txn)(nil)
