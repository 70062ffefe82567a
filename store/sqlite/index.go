package sqlite

import (
	"context"
	"fmt"

	"github.com/signpost-fhir/signpost/fhir/search"
)

// indexSchema holds the per-type index tables. Every table is keyed for
// lookups by value (pid first) and for replacement by resource (rid).
const indexSchema = `
CREATE TABLE IF NOT EXISTS idx_string (pid INTEGER NOT NULL, text TEXT NOT NULL, value TEXT NOT NULL, rid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_string_value ON idx_string (pid, text, rid);
CREATE INDEX IF NOT EXISTS idx_string_rid ON idx_string (rid);

CREATE TABLE IF NOT EXISTS idx_token (pid INTEGER NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL, text TEXT NOT NULL, rid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_token_value ON idx_token (pid, value, system, rid);
CREATE INDEX IF NOT EXISTS idx_token_rid ON idx_token (rid, pid, value);

CREATE TABLE IF NOT EXISTS idx_date (pid INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, rid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_date_low ON idx_date (pid, low, high, rid);
CREATE INDEX IF NOT EXISTS idx_date_rid ON idx_date (rid, pid, low, high);

CREATE TABLE IF NOT EXISTS idx_number (pid INTEGER NOT NULL, low REAL NOT NULL, high REAL NOT NULL, system TEXT NOT NULL, unit TEXT NOT NULL, rid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_number_low ON idx_number (pid, low, rid);
CREATE INDEX IF NOT EXISTS idx_number_rid ON idx_number (rid);

CREATE TABLE IF NOT EXISTS idx_ref (pid INTEGER NOT NULL, ref_type TEXT NOT NULL, ref_id TEXT NOT NULL, url TEXT NOT NULL, rid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_ref_target ON idx_ref (pid, ref_id, ref_type, rid);
CREATE INDEX IF NOT EXISTS idx_ref_url ON idx_ref (pid, url, rid);
CREATE INDEX IF NOT EXISTS idx_ref_rid ON idx_ref (rid, pid);

CREATE TABLE IF NOT EXISTS idx_uri (pid INTEGER NOT NULL, value TEXT NOT NULL, rid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_uri_value ON idx_uri (pid, value, rid);
CREATE INDEX IF NOT EXISTS idx_uri_rid ON idx_uri (rid);
`

var indexTables = []string{"idx_string", "idx_token", "idx_date", "idx_number", "idx_ref", "idx_uri"}

// writeIndex replaces the index entries of resource row rid.
func (t *txn) writeIndex(ctx context.Context, typ string, rid int64, entries []search.Entry) error {
	for _, table := range indexTables {
		if _, err := t.exec(ctx, "DELETE FROM "+table+" WHERE rid = ?", rid); err != nil {
			return err
		}
	}
	for _, e := range entries {
		pid, err := t.pid(ctx, typ, e.Param)
		if err != nil {
			return err
		}
		switch e.Type {
		case search.String:
			_, err = t.exec(ctx, "INSERT INTO idx_string (pid, text, value, rid) VALUES (?, ?, ?, ?)", pid, e.Text, e.Value, rid)
		case search.Token:
			_, err = t.exec(ctx, "INSERT INTO idx_token (pid, system, value, text, rid) VALUES (?, ?, ?, ?, ?)", pid, e.System, e.Value, e.Text, rid)
		case search.Date:
			_, err = t.exec(ctx, "INSERT INTO idx_date (pid, low, high, rid) VALUES (?, ?, ?, ?)", pid, e.Low, e.High, rid)
		case search.Number, search.Quantity, search.Special: // near: latitude in low, longitude in high
			_, err = t.exec(ctx, "INSERT INTO idx_number (pid, low, high, system, unit, rid) VALUES (?, ?, ?, ?, ?, ?)", pid, e.NumLow, e.NumHigh, e.System, e.Value, rid)
		case search.Reference:
			_, err = t.exec(ctx, "INSERT INTO idx_ref (pid, ref_type, ref_id, url, rid) VALUES (?, ?, ?, ?, ?)", pid, e.RefType, e.RefID, e.Value, rid)
		case search.URI:
			_, err = t.exec(ctx, "INSERT INTO idx_uri (pid, value, rid) VALUES (?, ?, ?)", pid, e.Value, rid)
		default:
			err = fmt.Errorf("index entry %s of type %q cannot be stored", e.Param, e.Type)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// pid returns the id of parameter code on typ, creating it if new. A new
// pid is remembered by the batch, forgotten if the request's savepoint rolls
// back, and published to the store once the batch commits.
func (t *txn) pid(ctx context.Context, typ, code string) (int64, error) {
	key := typ + "." + code
	if pid, ok := t.s.pids.get(key); ok {
		return pid, nil
	}
	if pid, ok := t.batch.pids[key]; ok {
		return pid, nil
	}
	var pid int64
	err := t.tx.QueryRowContext(ctx, "INSERT INTO params (type, code) VALUES (?, ?) RETURNING pid", typ, code).Scan(&pid)
	if err != nil {
		return 0, err
	}
	t.batch.pids[key] = pid
	t.newPids = append(t.newPids, key)
	return pid, nil
}
