package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// querier is what reads need: the read pool or the write transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// reader implements store.Reader over a querier.
type reader struct {
	s     *Store
	q     querier
	batch *batchState // inside a write: parameter ids not yet committed
}

// pid returns the id of parameter code on typ, if it has ever been indexed.
func (r reader) pid(typ, code string) (int64, bool) {
	if pid, ok := r.s.pids.get(typ + "." + code); ok {
		return pid, true
	}
	if r.batch != nil {
		pid, ok := r.batch.pids[typ+"."+code]
		return pid, ok
	}
	return 0, false
}

// Read implements store.Reader. Outside a transaction it uses the
// statement Open prepared: parsing and planning the query anew took more
// time than running it.
func (s *Store) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	h, err := s.readHead(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	return reader{s: s, q: s.rdb}.withBody(ctx, h, typ, id)
}

// ReadVersion implements store.Reader.
func (s *Store) ReadVersion(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	return reader{s: s, q: s.rdb}.ReadVersion(ctx, typ, id, version)
}

// History implements store.Reader.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	return reader{s: s, q: s.rdb}.History(ctx, q)
}

// Search implements store.Reader.
func (s *Store) Search(ctx context.Context, q *search.Query) (*store.Page, error) {
	return reader{s: s, q: s.rdb}.Search(ctx, q)
}

// readSQL reads the current version's row of a resource; its body comes
// from the body cache or by seq (fillBodies).
const readSQL = `SELECT r.version, r.updated, r.deleted, r.seq FROM resources r WHERE r.type = ? AND r.id = ?`

func (r reader) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	h, err := scanHead(r.q.QueryRowContext(ctx, readSQL, typ, id), typ, id)
	if err != nil {
		return nil, err
	}
	return r.withBody(ctx, h, typ, id)
}

// withBody returns the resource whose current row is h, with its body; a
// deleted one comes with an error of kind fhir.Gone.
func (r reader) withBody(ctx context.Context, h head, typ, id string) (*fhir.Resource, error) {
	res := &fhir.Resource{Type: typ, ID: id, Version: h.version, LastUpdated: time.UnixMicro(h.updated).UTC(), Deleted: h.deleted}
	if h.deleted {
		return res, fhir.Errorf(fhir.Gone, "deleted", "", "%s/%s was deleted", typ, id)
	}
	if err := r.fillBodies(ctx, []*fhir.Resource{res}, []int64{h.seq}); err != nil {
		return nil, err
	}
	return res, nil
}

func (r reader) ReadVersion(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	row := r.q.QueryRowContext(ctx, `SELECT version, updated, deleted, body
		FROM history WHERE type = ? AND id = ? AND version = ?`, typ, id, version)
	return scanVersion(row, typ, id)
}

func scanVersion(row *sql.Row, typ, id string) (*fhir.Resource, error) {
	res := &fhir.Resource{Type: typ, ID: id}
	var updated int64
	err := row.Scan(&res.Version, &updated, &res.Deleted, &res.JSON)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
	}
	if err != nil {
		return nil, err
	}
	res.LastUpdated = time.UnixMicro(updated).UTC()
	if res.Deleted {
		return res, fhir.Errorf(fhir.Gone, "deleted", "", "%s/%s was deleted", typ, id)
	}
	return res, nil
}

func (r reader) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	query := "SELECT seq, type, id, version, updated, deleted, body FROM history WHERE 1=1"
	var args []any
	if q.Type != "" {
		query += " AND type = ?"
		args = append(args, q.Type)
	}
	if q.ID != "" {
		query += " AND id = ?"
		args = append(args, q.ID)
	}
	if !q.Since.IsZero() {
		query += " AND updated >= ?"
		args = append(args, q.Since.UnixMicro())
	}
	if !q.Before.IsZero() {
		query += " AND updated < ?"
		args = append(args, q.Before.UnixMicro())
	}
	if q.Cursor != "" {
		seq, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "invalid", "_cursor", "the paging cursor is not valid")
		}
		query += " AND seq < ?"
		args = append(args, seq)
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	query += " ORDER BY seq DESC" + limitParam
	args = append(args, count+1)
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &store.HistoryPage{}
	var lastSeq int64
	for rows.Next() {
		res := &fhir.Resource{}
		var seq, updated int64
		if err := rows.Scan(&seq, &res.Type, &res.ID, &res.Version, &updated, &res.Deleted, &res.JSON); err != nil {
			return nil, err
		}
		if len(page.Versions) == count {
			page.Next = strconv.FormatInt(lastSeq, 10)
			break
		}
		res.LastUpdated = time.UnixMicro(updated).UTC()
		page.Versions = append(page.Versions, res)
		lastSeq = seq
	}
	return page, rows.Err()
}

// queryRows runs one query, through the read pool's prepared statements
// when it runs on the pool (searches and reads repeat their shapes, and
// preparing costs as much as a small query); done closes what it opened.
func (r reader) queryRows(ctx context.Context, query frag) (*sql.Rows, func(), error) {
	db, ok := r.q.(*sql.DB)
	if !ok {
		rows, err := r.q.QueryContext(ctx, query.sql, query.args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	}
	st, cached, err := r.s.plan.prepared(ctx, db, query.sql)
	if err != nil {
		return nil, nil, err
	}
	rows, err := st.QueryContext(ctx, query.args...)
	if err != nil {
		if !cached {
			st.Close()
		}
		return nil, nil, err
	}
	return rows, func() {
		rows.Close()
		if !cached {
			st.Close()
		}
	}, nil
}
