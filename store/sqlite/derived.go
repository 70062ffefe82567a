package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// derivedSchema holds store.Deriver's values: one row per resource row
// and name, with the value's JSON and its index entries (JSON of
// []search.Entry). The entries' rows live in the index tables beside the
// resource's own, under the same resource row: Put adds them to every new
// version's rows, a reindex to the rows it rebuilds, and PutDerived
// replaces the rows of the value's parameters alone (and clears the
// resource's index digest, so that the next version rewrites every
// table). A delete removes them with the resource's rows.
const derivedSchema = `
CREATE TABLE IF NOT EXISTS derived (rid INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, entries BLOB NOT NULL,
	PRIMARY KEY (rid, name)) WITHOUT ROWID;
`

var (
	_ store.Deriver   = (*Store)(nil)
	_ store.DeriverTx = (*txn)(nil)
)

// typeSet is the set of resource types that have, or may have, derived
// values: reads and writes of other types (slots, appointments) never
// look for them. It only grows (a type whose values were all removed
// stays in it until the store is opened again), which costs a query, never
// a wrong answer.
type typeSet struct {
	mu sync.RWMutex
	m  map[string]bool
}

func (s *typeSet) has(typ string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[typ]
}

func (s *typeSet) add(typ string) {
	if s.has(typ) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bool{}
	}
	s.m[typ] = true
}

// load reads the types that have derived values.
func (s *typeSet) load(db *sql.DB) error {
	rows, err := db.Query("SELECT DISTINCT r.type FROM derived d JOIN resources r ON r.rid = d.rid")
	if err != nil {
		return fmt.Errorf("sqlite: loading derived value types: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			return err
		}
		s.add(typ)
	}
	return rows.Err()
}

// Derived implements store.Deriver, through the heads cache's derived
// values (heads.go) for those it holds.
func (s *Store) Derived(ctx context.Context, typ string, ids []string) (map[string][]store.DerivedValue, error) {
	if s.heads == nil || !s.derivedTypes.has(typ) {
		return reader{s: s, q: s.rdb}.Derived(ctx, typ, ids)
	}
	out := map[string][]store.DerivedValue{}
	var missing []string
	since := map[string]uint64{}
	for _, id := range ids {
		key := typ + "/" + id
		if vs, ok := s.heads.derived.Get(key); ok {
			if len(vs) > 0 {
				out[id] = vs
			}
			continue
		}
		missing = append(missing, id)
		since[id] = s.heads.derived.Epoch(key)
	}
	if len(missing) == 0 {
		return out, nil
	}
	read, err := reader{s: s, q: s.rdb}.Derived(ctx, typ, missing)
	if err != nil {
		return nil, err
	}
	for _, id := range missing {
		vs := read[id]
		if len(vs) > 0 {
			out[id] = vs
		}
		e := since[id]
		s.heads.derived.PutIf(typ+"/"+id, slices.Clip(append([]store.DerivedValue{}, vs...)), &e)
	}
	return out, nil
}

// derivedChunk bounds the ids of one query.
const derivedChunk = 500

// Derived implements store.Deriver over the reader's connection.
func (r reader) Derived(ctx context.Context, typ string, ids []string) (map[string][]store.DerivedValue, error) {
	if len(ids) == 0 || !r.s.derivedTypes.has(typ) {
		return nil, nil
	}
	out := map[string][]store.DerivedValue{}
	for len(ids) > 0 {
		n := min(len(ids), derivedChunk)
		args := make([]any, 0, n+1)
		args = append(args, typ)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		ids = ids[n:]
		rows, done, err := r.queryRows(ctx, frag{`SELECT r.id, d.name, d.value FROM resources r JOIN derived d ON d.rid = r.rid
			WHERE r.type = ? AND r.deleted = 0 AND r.id IN (` + placeholders(n) + `) ORDER BY r.id, d.name`, args})
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var v store.DerivedValue
			if err := rows.Scan(&id, &v.Name, &v.Value); err != nil {
				done()
				return nil, err
			}
			if !slices.ContainsFunc(out[id], func(x store.DerivedValue) bool { return x.Name == v.Name }) {
				out[id] = append(out[id], v)
			}
		}
		err = rows.Err()
		done()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Derived implements store.Deriver inside the transaction. The values of
// one resource the transaction has read (the directory's Slot rule reads
// the service's wait after reading the service) are read by its row id.
func (t *txn) Derived(ctx context.Context, typ string, ids []string) (map[string][]store.DerivedValue, error) {
	if len(ids) != 1 || !t.s.derivedTypes.has(typ) {
		return t.reader.Derived(ctx, typ, ids)
	}
	m, ok := t.memo[typ+"/"+ids[0]]
	if !ok {
		return t.reader.Derived(ctx, typ, ids)
	}
	if !m.exists || m.deleted {
		return nil, nil
	}
	rows, err := t.batch.QueryContext(ctx, "SELECT name, value FROM derived WHERE rid = ? ORDER BY name", m.rid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[string][]store.DerivedValue
	for rows.Next() {
		var v store.DerivedValue
		if err := rows.Scan(&v.Name, &v.Value); err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string][]store.DerivedValue{}
		}
		out[ids[0]] = append(out[ids[0]], v)
	}
	return out, rows.Err()
}

// PutDerived implements store.DeriverTx.
func (t *txn) PutDerived(ctx context.Context, typ, id string, v store.DerivedValue) error {
	if v.Name == "" {
		return fmt.Errorf("sqlite: a derived value of %s/%s has no name", typ, id)
	}
	key := typ + "/" + id
	t.batch.wrote = append(t.batch.wrote, key) // for the derived values' cache (heads.go)
	m, ok := t.memo[key]
	if !ok {
		err := t.batch.QueryRowContext(ctx, "SELECT rid, deleted FROM resources WHERE type = ? AND id = ?", typ, id).Scan(&m.rid, &m.deleted)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			m.exists = true
		}
	}
	switch {
	case !m.exists:
		return fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
	case m.deleted:
		return fhir.Errorf(fhir.Gone, "deleted", "", "%s/%s was deleted", typ, id)
	}
	for _, p := range t.s.pairsOf(typ) {
		for _, e := range v.Index {
			if e.Param == p.Ref || e.Param == p.Date || e.Param == p.Code {
				return fmt.Errorf("sqlite: derived value %s of %s/%s: parameter %s is part of a pair index", v.Name, typ, id, e.Param)
			}
		}
	}
	var oldRaw []byte
	err := t.batch.QueryRowContext(ctx, "SELECT entries FROM derived WHERE rid = ? AND name = ?", m.rid, v.Name).Scan(&oldRaw)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	var old []search.Entry
	if oldRaw != nil {
		if err := json.Unmarshal(oldRaw, &old); err != nil {
			return fmt.Errorf("sqlite: derived value %s of %s/%s: %w", v.Name, typ, id, err)
		}
	}
	t.s.derivedTypes.add(typ)
	if v.Value == nil {
		if oldRaw == nil {
			return nil // nothing to remove
		}
		if _, err := t.exec(ctx, "DELETE FROM derived WHERE rid = ? AND name = ?", m.rid, v.Name); err != nil {
			return err
		}
	} else {
		entries, err := json.Marshal(v.Index)
		if err != nil {
			return fmt.Errorf("sqlite: derived value %s of %s/%s: %w", v.Name, typ, id, err)
		}
		if _, err := t.exec(ctx, `INSERT INTO derived (rid, name, value, entries) VALUES (?, ?, ?, ?)
			ON CONFLICT (rid, name) DO UPDATE SET value = excluded.value, entries = excluded.entries`,
			m.rid, v.Name, []byte(v.Value), entries); err != nil {
			return err
		}
		if string(entries) == string(oldRaw) {
			return nil // the same index rows
		}
	}
	// The rows of the value's parameters, old and new, are replaced.
	type tablePid struct {
		table int
		pid   int64
	}
	var gone []tablePid
	for _, list := range [][]search.Entry{old, v.Index} {
		for i := range list {
			tb, ok := tableOf(list[i].Type)
			if !ok {
				return fmt.Errorf("sqlite: index entry %s of type %q cannot be stored", list[i].Param, list[i].Type)
			}
			pid, err := t.pid(ctx, typ, list[i].Param)
			if err != nil {
				return err
			}
			if tp := (tablePid{tb, pid}); !slices.Contains(gone, tp) {
				gone = append(gone, tp)
			}
		}
	}
	for _, tp := range gone {
		if _, err := t.exec(ctx, "DELETE FROM "+tables[tp.table].name+" WHERE rid = ? AND pid = ?", m.rid, tp.pid); err != nil {
			return err
		}
	}
	if v.Value != nil && len(v.Index) > 0 {
		var rs rowSet
		res := &fhir.Resource{Type: typ, ID: id}
		if err := t.addRows(ctx, res, m.rid, 0, v.Index, &rs); err != nil { // never pair rows: see above
			return err
		}
		if err := t.flush(ctx, &inserter{q: t.batch}, &rs); err != nil {
			return err
		}
	}
	// The digest no longer describes the rows: the next version rewrites
	// them all.
	if _, err := t.exec(ctx, "UPDATE resources SET digest = NULL WHERE rid = ?", m.rid); err != nil {
		return err
	}
	if ok {
		m.digest = nil
		t.memo[key] = m
	}
	return nil
}

// tableOf returns the index table that holds entries of type typ.
func tableOf(typ search.ParamType) (int, bool) {
	switch typ {
	case search.String:
		return tString, true
	case search.Token:
		return tToken, true
	case search.Date:
		return tDate, true
	case search.Number, search.Quantity, search.Special:
		return tNumber, true
	case search.Reference:
		return tRef, true
	case search.URI:
		return tURI, true
	case search.Composite:
		return tComposite, true
	}
	return 0, false
}

// derivedEntries returns the index entries of the derived values of the
// resource rows from lo to hi, by row.
func (t *txn) derivedEntries(ctx context.Context, lo, hi int64) (map[int64][]search.Entry, error) {
	rows, err := t.batch.QueryContext(ctx, "SELECT rid, name, entries FROM derived WHERE rid >= ? AND rid <= ? ORDER BY rid, name", lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[int64][]search.Entry
	for rows.Next() {
		var rid int64
		var name string
		var raw []byte
		if err := rows.Scan(&rid, &name, &raw); err != nil {
			return nil, err
		}
		var es []search.Entry
		if err := json.Unmarshal(raw, &es); err != nil {
			return nil, fmt.Errorf("sqlite: derived value %s of resource row %d: %w", name, rid, err)
		}
		if out == nil {
			out = map[int64][]search.Entry{}
		}
		out[rid] = append(out[rid], es...)
	}
	return out, rows.Err()
}

// withDerived returns index with the entries of the derived values of
// resource row rid (an existing row of type typ) added, for a new version
// of it; a tombstone drops the values instead.
func (t *txn) withDerived(ctx context.Context, typ string, rid int64, deleted bool, index []search.Entry) ([]search.Entry, error) {
	if !t.s.derivedTypes.has(typ) {
		return index, nil
	}
	if deleted {
		_, err := t.exec(ctx, "DELETE FROM derived WHERE rid = ?", rid)
		return index, err
	}
	extra, err := t.derivedEntries(ctx, rid, rid)
	if err != nil || len(extra[rid]) == 0 {
		return index, err
	}
	return append(index[:len(index):len(index)], extra[rid]...), nil
}
