package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// txn is one Update's view of the batch transaction.
type txn struct {
	reader
	batch   *batchState // the batch transaction and its prepared statements
	newPids []string    // parameter ids this request created
	// memo holds the current version of each resource this request read
	// or wrote, by "Type/id": rules often read what another rule read
	// (a booking's Slot, Schedule, HealthcareService), and Put needs the
	// row id and version that the read before it found. Every write of a
	// resource goes through Put or PutAll, which keep it exact.
	memo map[string]memoEntry
}

// memoEntry is a resource's current row as the transaction sees it.
type memoEntry struct {
	exists  bool
	rid     int64
	version int64
	updated int64
	deleted bool
	body    []byte
	digest  []byte // the index digest (see digestVersion)
}

// txReadSQL is readSQL with the resource's row id.
const txReadSQL = `SELECT r.rid, h.version, h.updated, h.deleted, h.body, r.digest
	FROM resources r JOIN history h ON h.seq = r.seq WHERE r.type = ? AND r.id = ?`

// Read implements store.Reader inside the transaction, through the memo.
// The caller gets its own copy of the body.
func (t *txn) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	key := typ + "/" + id
	m, ok := t.memo[key]
	if !ok {
		var body []byte
		err := t.batch.QueryRowContext(ctx, txReadSQL, typ, id).Scan(&m.rid, &m.version, &m.updated, &m.deleted, &body, &m.digest)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, err
		default:
			m.exists, m.body = true, body
		}
		t.remember(key, m)
	}
	if !m.exists {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
	}
	res := &fhir.Resource{Type: typ, ID: id, Version: m.version, LastUpdated: time.UnixMicro(m.updated).UTC(), Deleted: m.deleted}
	if m.deleted {
		return res, fhir.Errorf(fhir.Gone, "deleted", "", "%s/%s was deleted", typ, id)
	}
	res.JSON = append([]byte(nil), m.body...)
	return res, nil
}

func (t *txn) remember(key string, m memoEntry) {
	if t.memo == nil {
		t.memo = map[string]memoEntry{}
	}
	t.memo[key] = m
}

func (t *txn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.batch.ExecContext(ctx, query, args...)
}

// Put implements store.Tx.
func (t *txn) Put(ctx context.Context, w *store.Write) error {
	res := w.Resource
	key := res.Type + "/" + res.ID
	var rid, cur int64
	var digest []byte
	if m, ok := t.memo[key]; ok {
		rid, cur, digest = m.rid, m.version, m.digest // 0, 0, nil when it does not exist
	} else {
		err := t.batch.QueryRowContext(ctx, "SELECT rid, version, digest FROM resources WHERE type = ? AND id = ?", res.Type, res.ID).Scan(&rid, &cur, &digest)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			cur = 0
		case err != nil:
			return err
		}
	}
	if res.Version != cur+1 {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "%s/%s is at version %d, not %d", res.Type, res.ID, cur, res.Version-1)
	}
	// The index rows, for the row id it has or will have, and their digest:
	// the version's entries and those of the resource's derived values.
	index := w.Index
	if cur != 0 {
		var err error
		if index, err = t.withDerived(ctx, res.Type, rid, res.Deleted, index); err != nil {
			return err
		}
	}
	var rs rowSet
	if !res.Deleted {
		if err := t.addRows(ctx, res, rid, 0, index, &rs); err != nil {
			return err
		}
	}
	d := rs.digest()
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
	rs.setSeq(seq)
	if cur == 0 {
		var rr sql.Result
		if rr, err = t.exec(ctx, `INSERT INTO resources (type, id, version, updated, deleted, seq, digest)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, res.Type, res.ID, res.Version, updated, res.Deleted, seq, d); err == nil {
			rid, err = rr.LastInsertId()
			rs.setRid(rid)
		}
	} else {
		_, err = t.exec(ctx, `UPDATE resources SET version = ?, updated = ?, deleted = ?, seq = ?, digest = ? WHERE rid = ?`,
			res.Version, updated, res.Deleted, seq, d, rid)
	}
	if err != nil {
		return err
	}
	t.batch.wrote = append(t.batch.wrote, key)
	t.remember(key, memoEntry{exists: true, rid: rid, version: res.Version, updated: updated, deleted: res.Deleted,
		body: append([]byte(nil), res.JSON...), digest: d})
	return t.updateIndex(ctx, rid, &rs, d, digest, cur == 0, true /* a new version */)
}

// PutAll stores ws in order with the effect of one Put each, for bulk
// loading: new resources (the common case) are written with multi-row
// INSERTs through statements prepared once per call, with row ids assigned
// here (the store has a single writer); a write that replaces, deletes or
// repeats a resource takes the ordinary Put path. Like Put, it fails with
// fhir.Conflict when a version is not the next one; the caller's Update
// then rolls everything back.
func (t *txn) PutAll(ctx context.Context, ws []*store.Write) error {
	t.memo = nil // the bulk path writes rows without it
	defer func() { t.memo = nil }()
	in := &inserter{q: t.batch}
	exists := map[string]bool{}
	ids := map[string][]any{}
	for _, w := range ws {
		ids[w.Resource.Type] = append(ids[w.Resource.Type], w.Resource.ID)
		t.batch.wrote = append(t.batch.wrote, w.Resource.Type+"/"+w.Resource.ID)
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
		if err := in.insert(ctx, "resources", "rid, type, id, version, updated, deleted, seq, digest", 8, cur); err != nil {
			return err
		}
		hist, cur = hist[:0], cur[:0]
		if err := t.touchPairs(ctx, 0, &rs, false); err != nil {
			return err
		}
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
		var before [numTables]int
		for i := range before {
			before[i] = len(rs.args[i])
		}
		if err := t.addRows(ctx, res, rid, seq, w.Index, &rs); err != nil {
			return err
		}
		var mine [numTables][]any
		for i := range mine {
			mine[i] = rs.args[i][before[i]:]
		}
		hist = append(hist, seq, res.Type, res.ID, res.Version, updated, false, res.JSON)
		cur = append(cur, rid, res.Type, res.ID, res.Version, updated, false, seq, digestOf(&mine))
		exists[key] = true
	}
	return flush()
}

// The transaction contract and the optional capabilities of a transaction.
var (
	_ store.Tx         = (*txn)(nil)
	_ store.BulkPutter = (*txn)(nil)
	_ store.RecordTx   = (*txn)(nil)
	_ store.DeriverTx  = (*txn)(nil)
	_ store.OutboxTx   = (*txn)(nil)
	_ store.InboxTx    = (*txn)(nil)
)
