package sqlite

import (
	"database/sql"
	"fmt"

	"github.com/signpost-fhir/signpost/fhir/search"
)

// migrate brings a database made by an earlier release up to the current
// schema, once: every step checks whether it is needed. Open runs it after
// creating any missing tables.
func migrate(db *sql.DB, pairs []search.Pair) error {
	for _, step := range []func(*sql.DB, []search.Pair) error{migratePairCode, migrateStatSeq, migratePairOrder, migratePairVersion, migrateIndex, migrateColumnParams} {
		if err := step(db, pairs); err != nil {
			return err
		}
	}
	return nil
}

// migrateColumnParams deletes the index rows of _id and _lastUpdated that
// releases before columnParam wrote: searches answer both from the
// resources row, so the rows were dead weight a resource's next version
// would drop anyway. Each table's key starts with pid, so on a database
// without such rows this is one probe per table.
func migrateColumnParams(db *sql.DB, _ []search.Pair) error {
	for _, tb := range indexTables {
		if _, err := db.Exec("DELETE FROM " + tb + " WHERE pid IN (SELECT pid FROM params WHERE code IN ('_id', '_lastUpdated'))"); err != nil {
			return fmt.Errorf("sqlite: migrating %s: %w", tb, err)
		}
	}
	return nil
}

// hasColumn reports whether table has column.
func hasColumn(db *sql.DB, table, column string) (bool, error) {
	var n int
	err := db.QueryRow("SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", table, column).Scan(&n)
	return n > 0, err
}

// migrateIndex brings a database written before the planner's metadata
// existed up to date, once: every date and reference parameter gets the
// most general shape (widest range seen, possibly several values), and the
// pair index is filled from the reference and date entries. A new database
// only gets the marker. It first adds the index digest (migrateDigest),
// so that the resources whose pair rows it fills have none.
func migrateIndex(db *sql.DB, pairs []search.Pair) error {
	if err := migrateDigest(db); err != nil {
		return err
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM idx_date_shape WHERE pid = ?", shapesSince).Scan(&n); err != nil || n > 0 {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	steps := []string{
		`INSERT OR REPLACE INTO idx_date_shape (pid, width, multi)
			SELECT pid, max(CASE WHEN low = -9223372036854775808 OR high = 9223372036854775807 OR high < low
				THEN 9223372036854775807 ELSE high - low END), 1 FROM idx_date GROUP BY pid`,
		`INSERT OR IGNORE INTO idx_date_shape (pid, width, multi) SELECT DISTINCT pid, 0, 1 FROM idx_ref`,
	}
	for _, q := range steps {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("sqlite: migrating index metadata: %w", err)
		}
	}
	for _, p := range pairs {
		var ref, date int64
		err1 := tx.QueryRow("SELECT pid FROM params WHERE type = ? AND code = ?", p.Type, p.Ref).Scan(&ref)
		err2 := tx.QueryRow("SELECT pid FROM params WHERE type = ? AND code = ?", p.Type, p.Date).Scan(&date)
		if err1 != nil || err2 != nil {
			continue // no entries for one of them: no pair rows to make
		}
		var cid int64
		if err := tx.QueryRow(`INSERT INTO params (type, code) VALUES (?, ?)
			ON CONFLICT (type, code) DO UPDATE SET code = excluded.code RETURNING pid`, p.Type, p.Key()).Scan(&cid); err != nil {
			return fmt.Errorf("sqlite: migrating pair index: %w", err)
		}
		if _, err := tx.Exec(`INSERT OR IGNORE INTO idx_pair (cid, ref_type, ref_id, low, high, rid, updated, id, version, seq)
			SELECT ?, r.ref_type, r.ref_id, d.low, d.high, r.rid, x.updated, x.id, x.version, x.seq FROM idx_ref r JOIN idx_date d ON d.rid = r.rid AND d.pid = ?
			JOIN resources x ON x.rid = r.rid AND x.deleted = 0 WHERE r.pid = ? AND r.ref_type != ''`, cid, date, ref); err != nil {
			return fmt.Errorf("sqlite: migrating pair index: %w", err)
		}
	}
	if _, err := tx.Exec("INSERT INTO idx_date_shape (pid, width, multi) VALUES (?, 0, 0)", shapesSince); err != nil {
		return err
	}
	return tx.Commit()
}

// migratePairCode adds the code column to a pair index made before it,
// and fills it for the pairs that carry a code, once.
func migratePairCode(db *sql.DB, pairs []search.Pair) error {
	if has, err := hasColumn(db, "idx_pair", "code"); err != nil || has {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec("ALTER TABLE idx_pair ADD COLUMN code TEXT NOT NULL DEFAULT ' '"); err != nil {
		return fmt.Errorf("sqlite: migrating pair index: %w", err)
	}
	for _, p := range pairs {
		var cid, tok int64
		err1 := tx.QueryRow("SELECT pid FROM params WHERE type = ? AND code = ?", p.Type, p.Key()).Scan(&cid)
		err2 := tx.QueryRow("SELECT pid FROM params WHERE type = ? AND code = ?", p.Type, p.Code).Scan(&tok)
		if p.Code == "" || err1 != nil || err2 != nil {
			continue // no pair rows, or no token entries: the default stays correct
		}
		if _, err := tx.Exec(`UPDATE idx_pair SET code = (SELECT CASE count(DISTINCT value) WHEN 0 THEN '' WHEN 1 THEN min(value) ELSE ' ' END
			FROM idx_token t WHERE t.rid = idx_pair.rid AND t.pid = ?) WHERE cid = ?`, tok, cid); err != nil {
			return fmt.Errorf("sqlite: migrating pair index: %w", err)
		}
	}
	return tx.Commit()
}

// migratePairOrder adds the updated and id columns to a pair index made
// before them, and fills them from the resources, once.
func migratePairOrder(db *sql.DB, _ []search.Pair) error {
	return addColumns(db, "idx_pair", "updated",
		"ALTER TABLE idx_pair ADD COLUMN updated INTEGER NOT NULL DEFAULT 0",
		"ALTER TABLE idx_pair ADD COLUMN id TEXT NOT NULL DEFAULT ''",
		"UPDATE idx_pair SET updated = r.updated, id = r.id FROM resources r WHERE r.rid = idx_pair.rid")
}

// migratePairVersion adds the version and seq columns to a pair index
// made before them and fills them from the resources, once. A keyed page
// (keyedRowsSQL) then never reads resources, so pair rows of a resource
// that is deleted or gone, which a delete always removed, are removed
// here too rather than trusted.
func migratePairVersion(db *sql.DB, _ []search.Pair) error {
	return addColumns(db, "idx_pair", "seq",
		"ALTER TABLE idx_pair ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
		"ALTER TABLE idx_pair ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
		"DELETE FROM idx_pair WHERE rid NOT IN (SELECT rid FROM resources WHERE deleted = 0)",
		"UPDATE idx_pair SET version = r.version, seq = r.seq FROM resources r WHERE r.rid = idx_pair.rid")
}

// addColumns runs stmts, which add columns to table and fill them, in one
// transaction, unless table already has column (one of those they add).
func addColumns(db *sql.DB, table, column string, stmts ...string) error {
	if has, err := hasColumn(db, table, column); err != nil || has {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range stmts {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("sqlite: migrating %s: %w", table, err)
		}
	}
	return tx.Commit()
}

// migrateDigest adds the digest column to a resources table made before
// it. Rows written before have none, and are rewritten whole once.
func migrateDigest(db *sql.DB) error {
	if has, err := hasColumn(db, "resources", "digest"); err != nil || has {
		return err
	}
	if _, err := db.Exec("ALTER TABLE resources ADD COLUMN digest BLOB"); err != nil {
		return fmt.Errorf("sqlite: adding the index digest: %w", err)
	}
	return nil
}

// migrateStatSeq adds the seq column to the saved statistics of a database
// made before it; rows saved without it count as computed at seq 0.
func migrateStatSeq(db *sql.DB, _ []search.Pair) error {
	if has, err := hasColumn(db, "idx_stats", "seq"); err != nil || has {
		return err
	}
	if _, err := db.Exec("ALTER TABLE idx_stats ADD COLUMN seq INTEGER NOT NULL DEFAULT 0"); err != nil {
		return fmt.Errorf("sqlite: adding seq to idx_stats: %w", err)
	}
	return nil
}
