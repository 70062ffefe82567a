package sqlite

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// orderBy renders the ORDER BY list; the first nk columns may be NULL,
// which sorts last in both directions.
func orderBy(cols []string, desc []bool, nk int, back bool) string {
	var parts []string
	for i, c := range cols {
		d := desc[i] != back
		if i < nk {
			if back {
				parts = append(parts, "("+c+" IS NULL) DESC")
			} else {
				parts = append(parts, "("+c+" IS NULL)")
			}
		}
		if d {
			parts = append(parts, c+" DESC")
		} else {
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, ", ")
}

// cursorCond selects the rows strictly after (or, back, before) the
// position vals in the order of cols.
func cursorCond(cols []string, desc []bool, nk int, vals []any, back bool) frag {
	var f frag
	var rec func(i int)
	rec = func(i int) {
		c, v := cols[i], vals[i]
		nullable := i < nk
		// beyond: strictly later in the scan direction.
		var beyond frag
		switch {
		case v == nil && !back:
			beyond.sql = "0"
		case v == nil:
			beyond.sql = c + " IS NOT NULL"
		default:
			op := ">"
			if desc[i] != back {
				op = "<"
			}
			beyond.add(c+" "+op+" ?", v)
			if nullable && !back {
				beyond.sql = "(" + beyond.sql + " OR " + c + " IS NULL)"
			}
		}
		if i == len(cols)-1 {
			f.add(beyond.sql, beyond.args...)
			return
		}
		f.add("(" + beyond.sql)
		f.args = append(f.args, beyond.args...)
		if v == nil {
			f.add(" OR (" + c + " IS NULL AND ")
		} else {
			f.add(" OR ("+c+" = ? AND ", v)
		}
		rec(i + 1)
		f.add("))")
	}
	rec(0)
	return f
}

// cursor is a position in a search's order: the sort values, last update,
// id and type of one row, and whether the page wanted lies before it.
type cursor struct {
	back    bool
	sort    string // the _sort it was made for
	keys    []any  // per sort key: nil, int64, float64 or string
	updated int64
	id, typ string
}

// sortSig renders sort keys as _sort writes them.
func sortSig(keys []search.SortKey) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if k.Desc {
			b.WriteByte('-')
		}
		b.WriteString(k.Param)
	}
	return b.String()
}

func (c *cursor) values() []any {
	return append(append([]any(nil), c.keys...), c.updated, c.id, c.typ)
}

func (c *cursor) encode() string {
	dir := "n"
	if c.back {
		dir = "p"
	}
	v := append([]any{dir, c.updated, c.id, c.typ, c.sort}, c.keys...)
	for i, k := range v {
		if b, ok := k.([]byte); ok {
			v[i] = string(b)
		}
	}
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor made by encode for the same sort keys; ""
// gives nil.
func decodeCursor(s string, keys []search.SortKey) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := fhir.Errorf(fhir.Invalid, "invalid", search.CursorParam, "the paging cursor is not valid for this search")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v []any
	if err := d.Decode(&v); err != nil || len(v) != 5+len(keys) || v[4] != sortSig(keys) {
		return nil, bad
	}
	c := &cursor{}
	dir, ok1 := v[0].(string)
	upd, ok2 := v[1].(json.Number)
	id, ok3 := v[2].(string)
	typ, ok4 := v[3].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 || (dir != "n" && dir != "p") {
		return nil, bad
	}
	c.back, c.id, c.typ, c.sort = dir == "p", id, typ, sortSig(keys)
	if c.updated, err = upd.Int64(); err != nil {
		return nil, bad
	}
	for i, k := range keys {
		switch x := v[5+i].(type) {
		case nil:
			c.keys = append(c.keys, nil)
		case string:
			c.keys = append(c.keys, x)
		case json.Number:
			if k.Param == "_lastUpdated" || k.Type == search.Date {
				n, err := x.Int64()
				if err != nil {
					return nil, bad
				}
				c.keys = append(c.keys, n)
			} else {
				f, err := x.Float64()
				if err != nil {
					return nil, bad
				}
				c.keys = append(c.keys, f)
			}
		default:
			return nil, bad
		}
	}
	return c, nil
}
