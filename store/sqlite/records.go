package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// recordSchema holds store.Records: internal records by (kind, key),
// with an expiry in unix microseconds, pruned as new records are written.
const recordSchema = `
CREATE TABLE IF NOT EXISTS records (
	kind    TEXT    NOT NULL,
	key     TEXT    NOT NULL,
	value   BLOB    NOT NULL,
	expires INTEGER NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS records_expires ON records (expires);
`

var (
	_ store.Records  = (*Store)(nil)
	_ store.RecordTx = (*txn)(nil)
)

// GetRecord implements store.Records.
func (s *Store) GetRecord(ctx context.Context, kind, key string) ([]byte, error) {
	return reader{s: s, q: s.rdb}.GetRecord(ctx, kind, key)
}

// GetRecord implements store.Records over the reader's connection.
func (r reader) GetRecord(ctx context.Context, kind, key string) ([]byte, error) {
	var value []byte
	err := r.q.QueryRowContext(ctx, "SELECT value FROM records WHERE kind = ? AND key = ? AND expires > ?",
		kind, key, time.Now().UnixMicro()).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "no %s record %q", kind, key)
	}
	return value, err
}

// PutRecord implements store.RecordTx. It also deletes a few expired
// records, so the table stays as small as what is live.
func (t *txn) PutRecord(ctx context.Context, kind, key string, value []byte, expires time.Time) error {
	now := time.Now().UnixMicro()
	if _, err := t.exec(ctx, "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records WHERE expires <= ? LIMIT 16)", now); err != nil {
		return err
	}
	res, err := t.exec(ctx, `INSERT INTO records (kind, key, value, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires = excluded.expires WHERE records.expires <= ?`,
		kind, key, value, expires.UnixMicro(), now)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "a %s record %q already exists", kind, key)
	}
	return nil
}
