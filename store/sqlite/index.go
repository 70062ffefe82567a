package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
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
// idx_pair holds the declared pairs (Store.pairs, search.Pair): one row per reference
// value and date value of a resource, so "slots of these schedules in this
// window" is one range scan per schedule. Its code column carries the
// resource's value of the pair's token parameter (Slot status) so that the
// scan tests it in the row it reads: "" when the resource has none, the
// code when it has one, and pairCodeProbe when it has several (or the row
// predates the column): the search then probes idx_token as it would
// without the column. Its updated, id, version and seq columns repeat the
// resource's (they change with every version, as every index row is
// rewritten), so a search answered by the pair scan alone orders, cuts and
// answers its page on the pair rows without reading resources (whose rows
// of one schedule's slots lie all over its B-tree): a deleted resource has
// no index rows, its tombstone removes them in the same transaction
// (updateIndex), and the page's bodies come by seq (fillBodies).
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
	version INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
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
	tPair:   {"idx_pair", "cid, ref_type, ref_id, low, high, rid, code, updated, id, version, seq", 11, 6},

	tComposite: compositeTable,
}

// indexTables names the tables that hold search.Entry values.
var indexTables = []string{"idx_string", "idx_token", "idx_date", "idx_number", "idx_ref", "idx_uri", "idx_composite"}

// pairCodeProbe is the code of a pair row whose resource has several
// values of the pair's token parameter: the value is checked in idx_token.
// (No code starts with a space.)
const pairCodeProbe = " "

// pairsOf returns the pairs declared for typ: a pair (search.Pair) is a
// compound index of one reference parameter and one date parameter of a
// resource type, its rows keyed under the params code Pair.Key.
func (s *Store) pairsOf(typ string) []search.Pair {
	var out []search.Pair
	for _, p := range s.pairs {
		if p.Type == typ {
			out = append(out, p)
		}
	}
	return out
}

// rowSet accumulates index rows to insert, per table, as flat argument
// lists.
type rowSet struct {
	args [numTables][]any
}

// width is the saturated length of [low, high).
func width(low, high int64) int64 {
	if low == search.MinTime || high == search.MaxTime || high-low < 0 {
		return math.MaxInt64
	}
	return high - low
}

// addRows appends the index rows of res, stored as resource row rid with
// history row seq (0 when not yet known: see setSeq), to rs.
func (t *txn) addRows(ctx context.Context, res *fhir.Resource, rid, seq int64, entries []search.Entry, rs *rowSet) error {
	typ := res.Type
	var dates map[int64]int // date entries per pid, to spot multi-valued parameters
	var refs map[int64]int  // likewise for references
	ps := t.s.pairsOf(typ)
	for i := range entries {
		e := &entries[i]
		if columnParam(e.Param) {
			continue
		}
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
			t.s.plan.widen(ctx, t.s.rdb, pid, width(e.Low, e.High), dates[pid] > 1)
		case search.Number, search.Quantity, search.Special: // near: latitude in low, longitude in high
			rs.args[tNumber] = append(rs.args[tNumber], pid, e.NumLow, e.NumHigh, e.System, e.Value, rid)
		case search.Reference:
			rs.args[tRef] = append(rs.args[tRef], pid, e.RefType, e.RefID, e.Value, rid)
			if refs == nil {
				refs = map[int64]int{}
			}
			if refs[pid]++; refs[pid] == 2 {
				t.s.plan.widen(ctx, t.s.rdb, pid, 0, true)
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
					if cid, err = t.pid(ctx, typ, p.Key()); err != nil {
						return err
					}
				}
				rs.args[tPair] = append(rs.args[tPair], cid, r.RefType, r.RefID, d.Low, d.High, rid, code, res.LastUpdated.UnixMicro(), res.ID, res.Version, seq)
			}
		}
	}
	return nil
}

// columnParam reports whether param is one the store answers from the
// resources row's own columns (id, updated) rather than from index rows:
// _id and _lastUpdated. Their entries are not stored. Every search by
// them (IDIn, a _lastUpdated DateMatch, :missing, sorting) reads the
// columns, and a new version of a resource no longer rewrites its date
// rows only because its lastUpdated moved.
func columnParam(param string) bool { return param == "_id" || param == "_lastUpdated" }

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

// inserter runs multi-row INSERTs through the batch's prepared statements
// (one per table and row count).
type inserter struct {
	q querier
}

// rowsPerInsert bounds the rows of one INSERT (SQLite allows 32766
// parameters per statement).
const rowsPerInsert = 256

// insert writes rows (flattened, n columns each) into table, with INSERT
// OR IGNORE for index tables and plain INSERT otherwise, in statements of
// a power of two rows, at most rowsPerInsert: 300 rows are 256, 32, 8
// and 4. So a table has at most nine statements, which the writer keeps
// prepared; one per row count grew the writer's SQLite memory with every
// new count (hundreds of large programs) in the soak.
func (in *inserter) insert(ctx context.Context, table, cols string, n int, args []any) error {
	for len(args) > 0 {
		rows := 1 << (bits.Len(uint(min(len(args)/n, rowsPerInsert))) - 1)
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

// reindexIndex brings the index rows of res, the current version of
// resource row rid (history row seq), to those of entries, where index digest old describes
// the rows it has: the rows are built and their digest computed as for a
// new version (Put), and updateIndex rewrites only the tables whose digest
// changes, nothing at all when none does. The digest is recorded when it
// changes. A reindex rewrites a resource's rows this way.
func (t *txn) reindexIndex(ctx context.Context, res *fhir.Resource, rid, seq int64, entries []search.Entry, old []byte) error {
	var rs rowSet
	if err := t.addRows(ctx, res, rid, seq, entries, &rs); err != nil {
		return err
	}
	d := rs.digest()
	if err := t.updateIndex(ctx, rid, &rs, d, old, false, false /* the same version */); err != nil {
		return err
	}
	if bytes.Equal(d, old) {
		return nil
	}
	if _, err := t.exec(ctx, "UPDATE resources SET digest = ? WHERE rid = ?", d, rid); err != nil {
		return err
	}
	if m, ok := t.memo[res.Type+"/"+res.ID]; ok && m.rid == rid {
		m.digest = d
		t.memo[res.Type+"/"+res.ID] = m
	}
	return nil
}

// The index digest of a resource (resources.digest) describes the index
// rows written for its current version, so that the next version rewrites
// only the tables whose rows change without reading any: a booking changes
// a Slot's status token and its _lastUpdated date, and its pair row's
// code, updated, version and seq columns, and nothing else. It is digestVersion, then,
// for each table in which the resource has rows, the table's number and
// digestHash bytes of SHA-256 over its rows (their primary key columns
// but rid, encoded by appendKey, sorted, repeats once). NULL, or a digest
// of another version, says nothing: the rows are all rewritten. The rows of
// a table sharing their first column (the parameter) must share their
// columns past the key (idx_pair's code, updated, id, version and seq):
// those are set
// on every version, and again when a reindex changes the entries of a
// version. Whatever changes index rows other than through updateIndex
// must clear the digests of the resources whose rows it changes.
const (
	digestVersion = 1
	digestHash    = 16
)

// ridCol is the position of the rid column in each table's rows.
var ridCol = func() (c [numTables]int) {
	for i, tb := range tables {
		c[i] = slices.Index(strings.Split(tb.cols, ", "), "rid")
	}
	return c
}()

// digest returns the index digest of the rows of rs (one resource's).
func (rs *rowSet) digest() []byte {
	return digestOf(&rs.args)
}

// digestOf returns the index digest of rows, one resource's rows by table.
func digestOf(rows *[numTables][]any) []byte {
	d := []byte{digestVersion}
	var keys [][]byte
	for i, tb := range tables {
		args := rows[i]
		if len(args) == 0 {
			continue
		}
		keys = keys[:0]
		for j := 0; j < len(args); j += tb.n {
			var k []byte
			for c := range tb.key {
				if c != ridCol[i] {
					k = appendKey(k, args[j+c])
				}
			}
			keys = append(keys, k)
		}
		slices.SortFunc(keys, bytes.Compare)
		keys = slices.CompactFunc(keys, bytes.Equal)
		h := sha256.New()
		for _, k := range keys {
			h.Write(k)
		}
		d = append(d, byte(i))
		d = append(d, h.Sum(nil)[:digestHash]...)
	}
	return d
}

// digestTables splits an index digest by table: nil where the resource
// has no rows. ok is false when d says nothing of the rows.
func digestTables(d []byte) (hs [numTables][]byte, ok bool) {
	if len(d) == 0 || d[0] != digestVersion || (len(d)-1)%(1+digestHash) != 0 {
		return hs, false
	}
	for p := 1; p < len(d); p += 1 + digestHash {
		i := int(d[p])
		if i >= numTables {
			return hs, false
		}
		hs[i] = d[p+1 : p+1+digestHash]
	}
	return hs, true
}

// setRowSQL sets, for the index tables with columns past the key, those
// columns in the rows of a resource row and parameter.
var setRowSQL = func() (set [numTables]string) {
	for i, tb := range tables {
		if tb.key < tb.n {
			cols := strings.Split(tb.cols, ", ")
			set[i] = "UPDATE " + tb.name + " SET " + strings.Join(cols[tb.key:], " = ?, ") + " = ? WHERE rid = ? AND " + cols[0] + " = ?"
		}
	}
	return set
}()

// updateIndex brings the index rows of resource row rid from those that
// index digest old describes to rs (built for rid, with digest d): a fresh
// resource (no rows yet) gets rs inserted; otherwise a table whose rows
// keep their digest is left as it is, and one whose rows change has them
// deleted and rs's inserted. When old says nothing of the rows, they are
// all rewritten. The columns past the key of rows kept (idx_pair's code,
// updated, id, version and seq) follow the resource's version and its entries: they are
// set when rs is for a new version (newVersion) or when d is not old; so
// rs for the same version and the same digest (a reindex that changes
// nothing) writes nothing.
func (t *txn) updateIndex(ctx context.Context, rid int64, rs *rowSet, d, old []byte, fresh, newVersion bool) error {
	in := &inserter{q: t.batch}
	was, ok := digestTables(old)
	if err := t.touchPairs(ctx, rid, rs, !fresh && (!ok || was[tPair] != nil)); err != nil {
		return err
	}
	if fresh {
		return t.flush(ctx, in, rs)
	}
	if !ok {
		if err := t.deleteIndex(ctx, rid); err != nil {
			return err
		}
		return t.flush(ctx, in, rs)
	}
	now, _ := digestTables(d)
	same := !newVersion && bytes.Equal(d, old)
	for i, tb := range tables {
		switch {
		case !bytes.Equal(was[i], now[i]):
			if was[i] != nil {
				if _, err := t.exec(ctx, "DELETE FROM "+tb.name+" WHERE rid = ?", rid); err != nil {
					return err
				}
			}
		case was[i] != nil && tb.key < tb.n && !same:
			args := rs.args[i]
			for j := 0; j < len(args); j += tb.n {
				if j > 0 && args[j] == args[j-tb.n] {
					continue // the parameter's rows share these columns
				}
				set := append(slices.Clone(args[j+tb.key:j+tb.n]), rid, args[j])
				if _, err := t.exec(ctx, setRowSQL[i], set...); err != nil {
					return fmt.Errorf("sqlite: update %s: %w", tb.name, err)
				}
			}
			rs.args[i] = args[:0]
		default:
			rs.args[i] = rs.args[i][:0]
		}
	}
	return t.flush(ctx, in, rs)
}

// pairSeqCol is the position of idx_pair's seq column in its rows.
var pairSeqCol = slices.Index(strings.Split(tables[tPair].cols, ", "), "seq")

// setSeq makes the pair rows of rs carry history row seq, the version's
// (known once its history row is written).
func (rs *rowSet) setSeq(seq int64) {
	for j := pairSeqCol; j < len(rs.args[tPair]); j += tables[tPair].n {
		rs.args[tPair][j] = seq
	}
}

// setRid makes the rows of rs those of resource row rid.
func (rs *rowSet) setRid(rid int64) {
	for i, tb := range tables {
		for j := ridCol[i]; j < len(rs.args[i]); j += tb.n {
			rs.args[i][j] = rid
		}
	}
}

// appendKey appends to b a self-delimiting encoding of v, in which two
// values encode alike only if they are equal and of the same type.
func appendKey(b []byte, v any) []byte {
	switch v := v.(type) {
	case int64:
		return binary.AppendVarint(append(b, 'i'), v)
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, 'f'), math.Float64bits(v))
	case string:
		return append(binary.AppendUvarint(append(b, 's'), uint64(len(v))), v...)
	default: // not built by addRows
		s := fmt.Sprintf("%T %v", v, v)
		return append(binary.AppendUvarint(append(b, '?'), uint64(len(s))), s...)
	}
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
