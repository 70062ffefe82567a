package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// indexSchema holds the index tables. Each is a WITHOUT ROWID table whose
// primary key is the lookup order (pid and value first), so an index entry
// costs one B-tree insert for lookups by value and one for the (rid, pid)
// index that replaces a resource's entries and answers per-resource probes
// (it carries the primary key columns, so probes never touch the table).
// Identical entries of one resource are stored once (INSERT OR IGNORE):
// duplicates cannot change which resources match.
//
// idx_pair holds the declared pairs (see pairs): one row per reference
// value and date value of a resource, so "slots of these schedules in this
// window" is one range scan per schedule. Its code column carries the
// resource's value of the pair's token parameter (Slot status) so that the
// scan tests it in the row it reads: "" when the resource has none, the
// code when it has one, and pairCodeProbe when it has several (or the row
// predates the column): the search then probes idx_token as it would
// without the column. Its updated and id columns repeat the resource's
// (they change with every version, as every index row is rewritten), so a
// search answered by the pair scan alone orders and cuts its page on the
// pair rows, reading resources only for the page.
//
// idx_stats keeps the planner's statistics (see planner.stat), so that the
// first searches after a start do not wait for them.
//
// idx_date_shape records, per date parameter, the widest [low, high) range
// ever indexed, and per date or reference parameter whether any resource
// has several values: the planner turns "high > x" into a range on low
// (low > x - width), combines the date conditions of a single-valued
// parameter into one range, and knows when a pair scan cannot return a
// resource twice.
const indexSchema = `
CREATE TABLE IF NOT EXISTS idx_string (pid INTEGER NOT NULL, text TEXT NOT NULL, value TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, text, value, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_string_rid ON idx_string (rid, pid);

CREATE TABLE IF NOT EXISTS idx_token (pid INTEGER NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL, text TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, value, system, rid, text)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_token_rid ON idx_token (rid, pid);

CREATE TABLE IF NOT EXISTS idx_date (pid INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, low, high, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_date_rid ON idx_date (rid, pid);

CREATE TABLE IF NOT EXISTS idx_number (pid INTEGER NOT NULL, low REAL NOT NULL, high REAL NOT NULL, system TEXT NOT NULL, unit TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, low, high, system, unit, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_number_rid ON idx_number (rid, pid);

CREATE TABLE IF NOT EXISTS idx_ref (pid INTEGER NOT NULL, ref_type TEXT NOT NULL, ref_id TEXT NOT NULL, url TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, ref_id, ref_type, url, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_ref_rid ON idx_ref (rid, pid);

CREATE TABLE IF NOT EXISTS idx_uri (pid INTEGER NOT NULL, value TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, value, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_uri_rid ON idx_uri (rid, pid);

CREATE TABLE IF NOT EXISTS idx_pair (cid INTEGER NOT NULL, ref_type TEXT NOT NULL, ref_id TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, rid INTEGER NOT NULL,
	code TEXT NOT NULL DEFAULT ' ', updated INTEGER NOT NULL DEFAULT 0, id TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (cid, ref_id, ref_type, low, high, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_pair_rid ON idx_pair (rid);

CREATE TABLE IF NOT EXISTS idx_date_shape (pid INTEGER PRIMARY KEY, width INTEGER NOT NULL, multi INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS idx_stats (tbl INTEGER NOT NULL, pid INTEGER NOT NULL, typ TEXT NOT NULL,
	v0 REAL NOT NULL, v1 REAL NOT NULL, v2 REAL NOT NULL, PRIMARY KEY (tbl, pid, typ)) WITHOUT ROWID;
`

// shapesSince is the idx_date_shape row (pid 0 is never a parameter) that
// marks a database whose shapes and pair rows have been kept since it was
// created or migrated.
const shapesSince = 0

// migrateIndex brings a database written before the planner's metadata
// existed up to date, once: every date and reference parameter gets the
// most general shape (widest range seen, possibly several values), and the
// pair index is filled from the reference and date entries. A new database
// only gets the marker.
func migrateIndex(db *sql.DB) error {
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
			ON CONFLICT (type, code) DO UPDATE SET code = excluded.code RETURNING pid`, p.Type, p.code()).Scan(&cid); err != nil {
			return fmt.Errorf("sqlite: migrating pair index: %w", err)
		}
		if _, err := tx.Exec(`INSERT OR IGNORE INTO idx_pair (cid, ref_type, ref_id, low, high, rid, updated, id)
			SELECT ?, r.ref_type, r.ref_id, d.low, d.high, r.rid, x.updated, x.id FROM idx_ref r JOIN idx_date d ON d.rid = r.rid AND d.pid = ?
			JOIN resources x ON x.rid = r.rid WHERE r.pid = ? AND r.ref_type != ''`, cid, date, ref); err != nil {
			return fmt.Errorf("sqlite: migrating pair index: %w", err)
		}
	}
	if _, err := tx.Exec("INSERT INTO idx_date_shape (pid, width, multi) VALUES (?, 0, 0)", shapesSince); err != nil {
		return err
	}
	return tx.Commit()
}

// An index table and its columns, in the order rows are built. The first
// key columns are its primary key (the rest, where there are any, repeat
// the resource's own values: see idx_pair).
type indexTable struct {
	name string
	cols string
	n    int
	key  int
}

// The index tables, by kind.
const (
	tString = iota
	tToken
	tDate
	tNumber
	tRef
	tURI
	tPair
	tComposite // composite tuples: see composite.go
	numTables
)

var tables = [numTables]indexTable{
	tString: {"idx_string", "pid, text, value, rid", 4, 4},
	tToken:  {"idx_token", "pid, system, value, text, rid", 5, 5},
	tDate:   {"idx_date", "pid, low, high, rid", 4, 4},
	tNumber: {"idx_number", "pid, low, high, system, unit, rid", 6, 6},
	tRef:    {"idx_ref", "pid, ref_type, ref_id, url, rid", 5, 5},
	tURI:    {"idx_uri", "pid, value, rid", 3, 3},
	tPair:   {"idx_pair", "cid, ref_type, ref_id, low, high, rid, code, updated, id", 9, 6},

	tComposite: compositeTable,
}

// indexTables names the tables that hold search.Entry values.
var indexTables = []string{"idx_string", "idx_token", "idx_date", "idx_number", "idx_ref", "idx_uri", "idx_composite"}

// pair declares a compound index of one reference parameter and one date
// parameter of a resource type: the hot "free slots of this service in the
// next fortnight" search (Slot?schedule…&start=ge…&start=le…) becomes one
// range scan per schedule instead of an intersection of two large sets.
type pair struct {
	Type, Ref, Date string
	Code            string // a token parameter carried in the pair rows, or ""
}

// pairCodeProbe is the code of a pair row whose resource has several
// values of the pair's token parameter: the value is checked in idx_token.
// (No code starts with a space.)
const pairCodeProbe = " "

// pairs are the declared compound indexes.
var pairs = []pair{
	{Type: "Slot", Ref: "schedule", Date: "start", Code: "status"},
	{Type: "Appointment", Ref: "patient", Date: "date"},
}

// pairCode is the params code under which a pair's rows are keyed.
func (p pair) code() string { return p.Ref + "+" + p.Date }

// pairsOf returns the pairs declared for typ.
func pairsOf(typ string) []pair {
	var out []pair
	for _, p := range pairs {
		if p.Type == typ {
			out = append(out, p)
		}
	}
	return out
}

// rowSet accumulates index rows to insert, per table, as flat argument
// lists, plus the date shapes they widen.
type rowSet struct {
	args   [numTables][]any
	shapes map[int64]dateShape // shapes to persist
}

// width is the saturated length of [low, high).
func width(low, high int64) int64 {
	if low == search.MinTime || high == search.MaxTime || high-low < 0 {
		return math.MaxInt64
	}
	return high - low
}

// addRows appends the index rows of res, stored as resource row rid, to rs.
func (t *txn) addRows(ctx context.Context, res *fhir.Resource, rid int64, entries []search.Entry, rs *rowSet) error {
	typ := res.Type
	var dates map[int64]int // date entries per pid, to spot multi-valued parameters
	var refs map[int64]int  // likewise for references
	ps := pairsOf(typ)
	for i := range entries {
		e := &entries[i]
		pid, err := t.pid(ctx, typ, e.Param)
		if err != nil {
			return err
		}
		t.s.plan.wrote(pid)
		switch e.Type {
		case search.String:
			rs.args[tString] = append(rs.args[tString], pid, e.Text, e.Value, rid)
		case search.Token:
			rs.args[tToken] = append(rs.args[tToken], pid, e.System, e.Value, e.Text, rid)
		case search.Date:
			rs.args[tDate] = append(rs.args[tDate], pid, e.Low, e.High, rid)
			if dates == nil {
				dates = map[int64]int{}
			}
			dates[pid]++
			if sh, changed := t.s.plan.widen(ctx, t.s.rdb, pid, width(e.Low, e.High), dates[pid] > 1); changed {
				if rs.shapes == nil {
					rs.shapes = map[int64]dateShape{}
				}
				rs.shapes[pid] = sh
			}
		case search.Number, search.Quantity, search.Special: // near: latitude in low, longitude in high
			rs.args[tNumber] = append(rs.args[tNumber], pid, e.NumLow, e.NumHigh, e.System, e.Value, rid)
		case search.Reference:
			rs.args[tRef] = append(rs.args[tRef], pid, e.RefType, e.RefID, e.Value, rid)
			if refs == nil {
				refs = map[int64]int{}
			}
			if refs[pid]++; refs[pid] == 2 {
				if sh, changed := t.s.plan.widen(ctx, t.s.rdb, pid, 0, true); changed {
					if rs.shapes == nil {
						rs.shapes = map[int64]dateShape{}
					}
					rs.shapes[pid] = sh
				}
			}
		case search.URI:
			rs.args[tURI] = append(rs.args[tURI], pid, e.Value, rid)
		case search.Composite:
			if rs.args[tComposite], err = appendComposite(rs.args[tComposite], pid, e, rid); err != nil {
				return err
			}
		default:
			return fmt.Errorf("index entry %s of type %q cannot be stored", e.Param, e.Type)
		}
	}
	for _, p := range ps {
		var cid int64
		code := pairCodeProbe
		if p.Code != "" {
			code = pairCode(entries, p.Code)
		}
		for i := range entries {
			r := &entries[i]
			if r.Param != p.Ref || r.Type != search.Reference || r.RefType == "" {
				continue
			}
			for j := range entries {
				d := &entries[j]
				if d.Param != p.Date || d.Type != search.Date {
					continue
				}
				if cid == 0 {
					var err error
					if cid, err = t.pid(ctx, typ, p.code()); err != nil {
						return err
					}
				}
				rs.args[tPair] = append(rs.args[tPair], cid, r.RefType, r.RefID, d.Low, d.High, rid, code, res.LastUpdated.UnixMicro(), res.ID)
			}
		}
	}
	return nil
}

// pairCode is the code column of a pair row for token parameter param of a
// resource with entries: its one value, "" for none, pairCodeProbe for
// several.
func pairCode(entries []search.Entry, param string) string {
	code, n := "", 0
	for i := range entries {
		e := &entries[i]
		if e.Param != param || e.Type != search.Token {
			continue
		}
		if n > 0 && e.Value != code {
			return pairCodeProbe
		}
		code, n = e.Value, n+1
	}
	return code
}

// migratePairCode adds the code column to a pair index made before it,
// and fills it for the pairs that carry a code, once.
func migratePairCode(db *sql.DB) error {
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pragma_table_info('idx_pair') WHERE name = 'code'").Scan(&n); err != nil || n > 0 {
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
		err1 := tx.QueryRow("SELECT pid FROM params WHERE type = ? AND code = ?", p.Type, p.code()).Scan(&cid)
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
func migratePairOrder(db *sql.DB) error {
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pragma_table_info('idx_pair') WHERE name = 'updated'").Scan(&n); err != nil || n > 0 {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		"ALTER TABLE idx_pair ADD COLUMN updated INTEGER NOT NULL DEFAULT 0",
		"ALTER TABLE idx_pair ADD COLUMN id TEXT NOT NULL DEFAULT ''",
		"UPDATE idx_pair SET updated = r.updated, id = r.id FROM resources r WHERE r.rid = idx_pair.rid",
	} {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("sqlite: migrating pair index: %w", err)
		}
	}
	return tx.Commit()
}

// inserter runs multi-row INSERTs through the batch's prepared statements
// (one per table and row count).
type inserter struct {
	q querier
}

// rowsPerInsert bounds the rows of one INSERT (SQLite allows 32766
// parameters per statement).
const rowsPerInsert = 400

// insert writes rows (flattened, n columns each) into table, with INSERT
// OR IGNORE for index tables and plain INSERT otherwise, in statements of
// at most rowsPerInsert rows.
func (in *inserter) insert(ctx context.Context, table, cols string, n int, args []any) error {
	for len(args) > 0 {
		rows := min(len(args)/n, rowsPerInsert)
		chunk := args[:rows*n]
		args = args[rows*n:]
		if _, err := in.q.ExecContext(ctx, insertSQL(table, cols, n, rows), chunk...); err != nil {
			return fmt.Errorf("sqlite: insert into %s: %w", table, err)
		}
	}
	return nil
}

// insertSQLs memoizes insertSQL by table and row count.
var insertSQLs sync.Map

type insertKey struct {
	table string
	rows  int
}

func insertSQL(table, cols string, n, rows int) string {
	k := insertKey{table, rows}
	if q, ok := insertSQLs.Load(k); ok {
		return q.(string)
	}
	q := buildInsertSQL(table, cols, n, rows)
	insertSQLs.Store(k, q)
	return q
}

func buildInsertSQL(table, cols string, n, rows int) string {
	one := "(" + placeholders(n) + ")"
	verb := "INSERT"
	if strings.HasPrefix(table, "idx_") {
		verb = "INSERT OR IGNORE"
	}
	return verb + " INTO " + table + " (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(one+",", rows), ",")
}

// flush writes the rows of rs.
func (t *txn) flush(ctx context.Context, in *inserter, rs *rowSet) error {
	for i, tb := range tables {
		if len(rs.args[i]) == 0 {
			continue
		}
		if err := in.insert(ctx, tb.name, tb.cols, tb.n, rs.args[i]); err != nil {
			return err
		}
		rs.args[i] = rs.args[i][:0]
	}
	for pid, sh := range rs.shapes {
		if _, err := t.exec(ctx, `INSERT INTO idx_date_shape (pid, width, multi) VALUES (?, ?, ?)
			ON CONFLICT (pid) DO UPDATE SET width = max(width, excluded.width), multi = max(multi, excluded.multi)`,
			pid, sh.width, sh.multi); err != nil {
			return err
		}
	}
	rs.shapes = nil
	return nil
}

// deleteIndex removes the index entries of resource row rid.
func (t *txn) deleteIndex(ctx context.Context, rid int64) error {
	for _, tb := range tables {
		if _, err := t.exec(ctx, "DELETE FROM "+tb.name+" WHERE rid = ?", rid); err != nil {
			return err
		}
	}
	return nil
}

// writeIndex makes the index rows of res, stored as resource row rid,
// those of entries. A fresh resource (it has no rows yet) gets them
// inserted. Otherwise the rows there are are read and compared with the
// wanted ones, table by table: a new version usually changes few of them
// (a Slot's status: one token row), so only the rows no longer wanted are
// deleted and only the missing ones inserted, and the pair rows that stay
// get their code, updated and id columns rewritten in place (they change
// with every version). Deleting and inserting every row, as a fresh write
// does, cost the writer a third of a booking's time.
func (t *txn) writeIndex(ctx context.Context, res *fhir.Resource, rid int64, entries []search.Entry, fresh bool) error {
	if !fresh && len(entries) == 0 {
		return t.deleteIndex(ctx, rid)
	}
	var rs rowSet
	if err := t.addRows(ctx, res, rid, entries, &rs); err != nil {
		return err
	}
	if !fresh {
		old, err := t.indexRows(ctx, rid)
		if err != nil {
			return err
		}
		for i := range tables {
			if rs.args[i], err = t.reconcile(ctx, i, old[i], rs.args[i], rid); err != nil {
				return err
			}
		}
	}
	return t.flush(ctx, &inserter{q: t.batch}, &rs)
}

// maxKey is the most primary key columns of an index table (idx_composite).
const maxKey = 14

// indexRowsSQL reads the primary key columns of every index row of a
// resource row (?1), each row tagged with its table and padded with NULLs
// to maxKey columns, through the tables' (rid, …) indexes alone.
var indexRowsSQL = func() string {
	var parts []string
	for i, tb := range tables {
		cols := strings.Split(tb.cols, ", ")[:tb.key]
		for len(cols) < maxKey {
			cols = append(cols, "NULL")
		}
		parts = append(parts, fmt.Sprintf("SELECT %d, %s FROM %s WHERE rid = ?1", i, strings.Join(cols, ", "), tb.name))
	}
	return strings.Join(parts, " UNION ALL ")
}()

// indexRows returns the primary keys of the index rows of resource row
// rid, by table.
func (t *txn) indexRows(ctx context.Context, rid int64) ([numTables][][]any, error) {
	var out [numTables][][]any
	rows, err := t.batch.QueryContext(ctx, indexRowsSQL, rid)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	var tbl int
	var vals [maxKey]any
	dest := make([]any, 1+maxKey)
	dest[0] = &tbl
	for i := range vals {
		dest[1+i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return out, err
		}
		if tbl < 0 || tbl >= numTables {
			return out, fmt.Errorf("sqlite: reading index rows of %d: table %d", rid, tbl)
		}
		out[tbl] = append(out[tbl], slices.Clone(vals[:tables[tbl].key]))
	}
	return out, rows.Err()
}

// Statements of reconcile, by table: deleting a row by its primary key,
// setting every column of a row found by its key, and setting a row's
// columns past its key.
var deleteRowSQL, replaceRowSQL, setRowSQL = func() (del, repl, set [numTables]string) {
	for i, tb := range tables {
		cols := strings.Split(tb.cols, ", ")
		where := " WHERE " + strings.Join(cols[:tb.key], " = ? AND ") + " = ?"
		del[i] = "DELETE FROM " + tb.name + where
		repl[i] = "UPDATE " + tb.name + " SET " + strings.Join(cols, " = ?, ") + " = ?" + where
		if tb.key < tb.n {
			set[i] = "UPDATE " + tb.name + " SET " + strings.Join(cols[tb.key:], " = ?, ") + " = ?" + where
		}
	}
	return del, repl, set
}()

// reconcile brings the rows of index table i for resource row rid from
// old (their primary keys, as stored) to want (rows as addRows builds
// them, flattened), in as few statements as it can, and returns the
// wanted rows left to insert. A wanted row whose key an old row has stays
// (the columns past the key are set, when the table has such columns);
// the other old rows are each turned into one of the other wanted rows
// with one UPDATE (a Slot's status row from free to busy), and deleted
// when there are more of them. When no old row stays, it deletes them
// all at once and returns every wanted row.
//
// The keys of the rows a resource's rows are turned into cannot be taken:
// every key holds rid, and the other rows of rid are the old ones.
func (t *txn) reconcile(ctx context.Context, i int, old [][]any, want []any, rid int64) ([]any, error) {
	if len(old) == 0 {
		return want, nil
	}
	tb := tables[i]
	n := len(want) / tb.n
	// The first wanted row of each key.
	byKey := make(map[string]int, n)
	var buf []byte
	for j := range n {
		buf = appendKey(buf[:0], want[j*tb.n:j*tb.n+tb.key])
		if _, ok := byKey[string(buf)]; !ok {
			byKey[string(buf)] = j
		}
	}
	var removed [][]any
	kept := 0
	for _, o := range old {
		buf = appendKey(buf[:0], o)
		j, ok := byKey[string(buf)]
		if !ok {
			removed = append(removed, o)
			continue
		}
		delete(byKey, string(buf)) // kept: no insert
		kept++
		if tb.key < tb.n {
			args := append(slices.Clone(want[j*tb.n+tb.key:(j+1)*tb.n]), o...)
			if _, err := t.exec(ctx, setRowSQL[i], args...); err != nil {
				return nil, fmt.Errorf("sqlite: update %s: %w", tb.name, err)
			}
		}
	}
	if kept == 0 && len(old) > 1 {
		_, err := t.exec(ctx, "DELETE FROM "+tb.name+" WHERE rid = ?", rid)
		return want, err
	}
	// The first rows of the keys left are added, in order.
	out := want[:0]
	for j := range n {
		buf = appendKey(buf[:0], want[j*tb.n:j*tb.n+tb.key])
		if k, ok := byKey[string(buf)]; ok && k == j {
			out = append(out, want[j*tb.n:(j+1)*tb.n]...)
		}
	}
	for _, o := range removed {
		if len(out) > 0 {
			args := append(slices.Clone(out[:tb.n]), o...)
			if _, err := t.exec(ctx, replaceRowSQL[i], args...); err != nil {
				return nil, fmt.Errorf("sqlite: update %s: %w", tb.name, err)
			}
			out = out[tb.n:]
			continue
		}
		if _, err := t.exec(ctx, deleteRowSQL[i], o...); err != nil {
			return nil, fmt.Errorf("sqlite: delete from %s: %w", tb.name, err)
		}
	}
	return out, nil
}

// appendKey appends to b an encoding of vals in which two lists encode
// alike only if they hold the same values of the same types, so that a
// row read back from SQLite and a row built from entries compare equal
// only when inserting the second would change nothing.
func appendKey(b []byte, vals []any) []byte {
	for _, v := range vals {
		switch v := v.(type) {
		case int64:
			b = binary.AppendVarint(append(b, 'i'), v)
		case float64:
			b = binary.LittleEndian.AppendUint64(append(b, 'f'), math.Float64bits(v))
		case string:
			b = append(binary.AppendUvarint(append(b, 's'), uint64(len(v))), v...)
		case nil:
			b = append(b, 'n')
		default: // not built by addRows: a value no stored one equals
			s := fmt.Sprintf("%T %v", v, v)
			b = append(binary.AppendUvarint(append(b, '?'), uint64(len(s))), s...)
		}
	}
	return b
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
	err := t.batch.QueryRowContext(ctx, "INSERT INTO params (type, code) VALUES (?, ?) RETURNING pid", typ, code).Scan(&pid)
	if err != nil {
		return 0, err
	}
	t.batch.pids[key] = pid
	t.newPids = append(t.newPids, key)
	return pid, nil
}
