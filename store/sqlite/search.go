package sqlite

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Search translates q's expression tree into one SQL query over the index
// tables: every leaf becomes "rid IN (SELECT rid FROM idx_… WHERE pid = ? AND
// …)" so SQLite drives from the index it estimates best, chains and _has
// become correlated subqueries over idx_ref joined to resources. Results
// are ordered by last update then id, paged by a keyset cursor over that
// order, which stays correct while data changes.
//
// Not done yet: _sort on index values (rejected as not supported).
func (r reader) Search(ctx context.Context, q *search.Query) (*store.Page, error) {
	for _, k := range q.Sort {
		if k.Param != "_lastUpdated" || k.Desc {
			return nil, fhir.Errorf(fhir.Invalid, "not-supported", "_sort", "sorting by %s is not supported yet", k.Param)
		}
	}
	b := &sqlBuilder{r: r}
	where := "r.deleted = 0"
	switch {
	case q.Type != "":
		where += " AND r.type = ?"
		b.args = append(b.args, q.Type)
	case len(q.Types) > 0:
		where += " AND r.type IN (" + placeholders(len(q.Types)) + ")"
		for _, t := range q.Types {
			b.args = append(b.args, t)
		}
	}
	for _, e := range q.Filter {
		c, err := b.cond(e, q.Type, "r")
		if err != nil {
			return nil, err
		}
		where += " AND " + c
	}
	filterArgs := append([]any(nil), b.args...)
	page := &store.Page{Total: -1}
	if q.Total == search.TotalAccurate || q.Total == search.TotalEstimate {
		if err := r.q.QueryRowContext(ctx, "SELECT count(*) FROM resources r WHERE "+where, filterArgs...).Scan(&page.Total); err != nil {
			return nil, err
		}
	}
	if q.Cursor != "" {
		upd, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		where += " AND (r.updated > ? OR (r.updated = ? AND r.id > ?))"
		b.args = append(b.args, upd, upd, id)
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	query := `SELECT r.type, r.id, h.version, h.updated, h.body FROM resources r JOIN history h ON h.seq = r.seq
		WHERE ` + where + ` ORDER BY r.updated, r.id LIMIT ?`
	b.args = append(b.args, count+1)
	rows, err := r.q.QueryContext(ctx, query, b.args...)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", q.Type, err)
	}
	defer rows.Close()
	for rows.Next() {
		res := &fhir.Resource{}
		var updated int64
		if err := rows.Scan(&res.Type, &res.ID, &res.Version, &updated, &res.JSON); err != nil {
			return nil, err
		}
		res.LastUpdated = time.UnixMicro(updated).UTC()
		page.Resources = append(page.Resources, res)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Resources) > count {
		page.Resources = page.Resources[:count]
		last := page.Resources[count-1]
		page.Next = encodeCursor(last.LastUpdated.UnixMicro(), last.ID)
	}
	return page, nil
}

// The cursor is the (updated, id) of the last resource of a page.
func encodeCursor(updated int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(updated, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		u, id, ok := strings.Cut(string(b), ":")
		if n, err := strconv.ParseInt(u, 10, 64); ok && err == nil {
			return n, id, nil
		}
	}
	return 0, "", fhir.Errorf(fhir.Invalid, "invalid", search.CursorParam, "the paging cursor is not valid")
}

// sqlBuilder accumulates the arguments of one query.
type sqlBuilder struct {
	r     reader
	args  []any
	alias int
}

func (b *sqlBuilder) next() string {
	b.alias++
	return "t" + strconv.Itoa(b.alias)
}

// in returns "<res>.rid IN (SELECT rid FROM table WHERE pid = ? AND where)",
// or a false condition when the parameter has never been indexed.
func (b *sqlBuilder) in(typ, param, res, table, where string, args ...any) string {
	pid, ok := b.r.pid(typ, param)
	if !ok {
		return "0"
	}
	b.args = append(b.args, pid)
	b.args = append(b.args, args...)
	if where != "" {
		where = " AND " + where
	}
	return res + ".rid IN (SELECT rid FROM " + table + " WHERE pid = ?" + where + ")"
}

// cond translates e, evaluated on resource alias res of type typ.
func (b *sqlBuilder) cond(e search.Expr, typ, res string) (string, error) {
	switch e := e.(type) {
	case search.IDIn:
		for _, id := range e.IDs {
			b.args = append(b.args, id)
		}
		return res + ".id IN (" + placeholders(len(e.IDs)) + ")", nil
	case search.TokenIn:
		var args []any
		for _, c := range e.Codes {
			args = append(args, c)
		}
		where := "value IN (" + placeholders(len(e.Codes)) + ")"
		if e.HasSystem {
			where += " AND system = ?"
			args = append(args, e.System)
		}
		return b.in(typ, e.Param, res, "idx_token", where, args...), nil
	case search.TokenText:
		return b.in(typ, e.Param, res, "idx_token", "(text LIKE ? ESCAPE '\\' OR text LIKE ? ESCAPE '\\')",
			likeEscape(e.Text)+"%", "% "+likeEscape(e.Text)+"%"), nil
	case search.StringMatch:
		switch e.Mode {
		case search.StringExact:
			return b.in(typ, e.Param, res, "idx_string", "value = ?", e.Value), nil
		case search.StringContains:
			return b.in(typ, e.Param, res, "idx_string", "text LIKE ? ESCAPE '\\'", "%"+likeEscape(e.Value)+"%"), nil
		}
		// A range scan on (pid, text): the prefix and everything after it.
		return b.in(typ, e.Param, res, "idx_string", "text >= ? AND text < ?", e.Value, e.Value+"\U0010FFFF"), nil
	case search.DateMatch:
		if e.Param == "_lastUpdated" {
			c, args := rangeCond(e.Prefix, res+".updated", res+".updated + 1", e.Low, e.High)
			b.args = append(b.args, args...)
			return "(" + c + ")", nil
		}
		if e.Prefix == search.Ap {
			// As search.DateMatches: widened by a tenth of the distance
			// from now, at least a day.
			d := time.Now().UnixMicro() - e.Low
			d = max(d, -d) / 10
			d = max(d, 86400e6)
			return b.in(typ, e.Param, res, "idx_date", "low < ? AND high > ?", e.High+d, e.Low-d), nil
		}
		c, args := rangeCond(e.Prefix, "low", "high", e.Low, e.High)
		return b.in(typ, e.Param, res, "idx_date", c, args...), nil
	case search.NumberMatch:
		c, args := numberCond(e)
		return b.in(typ, e.Param, res, "idx_number", c, args...), nil
	case search.RefIn:
		var parts []string
		var args []any
		for _, ref := range e.Refs {
			switch {
			case ref.URL != "":
				parts = append(parts, "url = ?")
				args = append(args, ref.URL)
			case ref.Type != "":
				parts = append(parts, "(ref_id = ? AND ref_type = ? AND url = '')")
				args = append(args, ref.ID, ref.Type)
			default:
				parts = append(parts, "(ref_id = ? AND url = '')")
				args = append(args, ref.ID)
			}
		}
		return b.in(typ, e.Param, res, "idx_ref", "("+strings.Join(parts, " OR ")+")", args...), nil
	case search.URIMatch:
		switch e.Mode {
		case search.URIAbove:
			return b.in(typ, e.Param, res, "idx_uri", "substr(?, 1, length(value)) = value", e.Value), nil
		case search.URIBelow:
			return b.in(typ, e.Param, res, "idx_uri", "value >= ? AND value < ?", e.Value, e.Value+"\U0010FFFF"), nil
		}
		return b.in(typ, e.Param, res, "idx_uri", "value = ?", e.Value), nil
	case search.Near:
		// A bounding box: latitude in low, longitude in high.
		dlat := e.KM / 111.2
		dlon := e.KM / (111.2 * math.Max(0.01, math.Cos(e.Lat*math.Pi/180)))
		return b.in(typ, e.Param, res, "idx_number", "low BETWEEN ? AND ? AND high BETWEEN ? AND ?",
			e.Lat-dlat, e.Lat+dlat, e.Lon-dlon, e.Lon+dlon), nil
	case search.Missing:
		pid, ok := b.r.pid(typ, e.Param)
		if !ok {
			if e.Missing {
				return "1", nil
			}
			return "0", nil
		}
		var sub []string
		for _, t := range indexTables {
			sub = append(sub, "SELECT rid FROM "+t+" WHERE pid = ?")
			b.args = append(b.args, pid)
		}
		op := " IN "
		if e.Missing {
			op = " NOT IN "
		}
		return res + ".rid" + op + "(" + strings.Join(sub, " UNION ALL ") + ")", nil
	case search.Or:
		if len(e) == 0 {
			return "0", nil
		}
		var parts []string
		for _, x := range e {
			c, err := b.cond(x, typ, res)
			if err != nil {
				return "", err
			}
			parts = append(parts, c)
		}
		return "(" + strings.Join(parts, " OR ") + ")", nil
	case search.Not:
		c, err := b.cond(e.Expr, typ, res)
		if err != nil {
			return "", err
		}
		return "NOT " + c, nil
	case search.Chain:
		pid, ok := b.r.pid(typ, e.Param)
		if !ok {
			return "0", nil
		}
		t := b.next()
		b.args = append(b.args, pid, e.Target, e.Target)
		inner, err := b.cond(e.Filter, e.Target, t)
		if err != nil {
			return "", err
		}
		return res + ".rid IN (SELECT f.rid FROM idx_ref f JOIN resources " + t + " ON " + t + ".type = f.ref_type AND " +
			t + ".id = f.ref_id AND " + t + ".deleted = 0 WHERE f.pid = ? AND f.ref_type = ? AND f.url = '' AND " +
			t + ".type = ? AND " + inner + ")", nil
	case search.Has:
		pid, ok := b.r.pid(e.Type, e.Param)
		if !ok {
			return "0", nil
		}
		t := b.next()
		b.args = append(b.args, pid)
		inner, err := b.cond(e.Filter, e.Type, t)
		if err != nil {
			return "", err
		}
		return "EXISTS (SELECT 1 FROM idx_ref f JOIN resources " + t + " ON " + t + ".rid = f.rid AND " + t +
			".deleted = 0 WHERE f.pid = ? AND f.url = '' AND f.ref_type = " + res + ".type AND f.ref_id = " + res +
			".id AND " + inner + ")", nil
	}
	return "", fhir.Errorf(fhir.NotSupported, "not-supported", "", "search expression %T is not supported", e)
}

// rangeCond is search.DateMatches as SQL over the columns lo and hi, for
// every prefix but ap, which callers handle.
func rangeCond[T int64 | float64](p search.Prefix, lo, hi string, ql, qh T) (string, []any) {
	eq := lo + " >= ? AND " + hi + " <= ?"
	switch p {
	case search.Ne:
		return "NOT (" + eq + ")", []any{ql, qh}
	case search.Gt:
		return hi + " > ?", []any{qh}
	case search.Lt:
		return lo + " < ?", []any{ql}
	case search.Ge:
		return "(" + hi + " > ? OR (" + eq + "))", []any{qh, ql, qh}
	case search.Le:
		return "(" + lo + " < ? OR (" + eq + "))", []any{ql, ql, qh}
	case search.Sa:
		return lo + " >= ?", []any{qh}
	case search.Eb:
		return hi + " <= ?", []any{ql}
	}
	return eq, []any{ql, qh}
}

func numberCond(e search.NumberMatch) (string, []any) {
	c, args := rangeCond(e.Prefix, "low", "high", e.Low, e.High)
	if e.Prefix == search.Ap {
		mid := (e.Low + e.High) / 2
		d := math.Abs(mid / 10)
		c, args = "low < ? AND high > ?", []any{e.High + d, e.Low - d}
	}
	if e.HasUnit {
		c += " AND unit = ?"
		args = append(args, e.Unit)
		if e.System != "" {
			c += " AND system = ?"
			args = append(args, e.System)
		}
	}
	return c, args
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
