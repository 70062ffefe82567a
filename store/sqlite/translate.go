package sqlite

import (
	"math"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir/search"
)

// none is a set with no rows.
var none = frag{sql: "SELECT NULL AS rid WHERE 0"}

// set renders e as a set of rids of typ answered from an index's leading
// columns, with its estimated size; ok is false when e has no such form.
// Kinds of node without a case here have none: they are tested by probe,
// which handles every kind (a search.Visitor), so a kind missing here
// costs speed, never results.
func (b *builder) set(e search.Expr, typ string) (f frag, est float64, ok bool) {
	pidOf := func(param string) (int64, bool) { return b.r.pid(typ, param) }
	switch e := e.(type) {
	case search.CompositeMatch:
		return b.compositeSet(e, typ)
	case search.IDIn:
		// Not "deleted = 0": SQLite would then prefer the (type, deleted)
		// index over the (type, id) key; the join to resources checks it.
		return frag{"SELECT rid FROM resources WHERE type = ? AND id IN (" + placeholders(len(e.IDs)) + ")",
			append([]any{typ}, anys(e.IDs)...)}, float64(len(e.IDs)), true
	case search.TokenIn:
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		f.add("SELECT rid FROM idx_token WHERE pid = ? AND value IN ("+placeholders(len(e.Codes))+")", append([]any{pid}, anys(e.Codes)...)...)
		if e.HasSystem {
			f.add(" AND system = ?", e.System)
		}
		return f, b.avg(tToken, pid) * float64(len(e.Codes)), true
	case search.StringMatch:
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		switch e.Mode {
		case search.StringExact:
			return frag{"SELECT rid FROM idx_string WHERE pid = ? AND text = ? AND value = ?", []any{pid, search.Normalize(e.Value), e.Value}}, b.avg(tString, pid), true
		case search.StringPrefix:
			est := min(b.avg(tString, pid)*5, b.entries(tString, pid))
			return frag{"SELECT rid FROM idx_string WHERE pid = ? AND text >= ? AND text < ?", []any{pid, e.Value, e.Value + "\U0010FFFF"}}, est, true
		}
	case search.URIMatch:
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		switch e.Mode {
		case search.URIExact:
			return frag{"SELECT rid FROM idx_uri WHERE pid = ? AND value = ?", []any{pid, e.Value}}, b.avg(tURI, pid), true
		case search.URIBelow:
			return frag{"SELECT rid FROM idx_uri WHERE pid = ? AND value >= ? AND value < ?", []any{pid, e.Value, e.Value + "\U0010FFFF"}},
				min(b.avg(tURI, pid)*5, b.entries(tURI, pid)), true
		}
	case search.NumberMatch:
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		c, args := numberCond(e, "low", "high")
		est := b.entries(tNumber, pid) / 3
		if e.Prefix == search.Eq {
			est = b.avg(tNumber, pid)
		}
		return frag{"SELECT rid FROM idx_number WHERE pid = ? AND " + c, append([]any{pid}, args...)}, est, true
	case search.Near:
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		c := nearCond(e, "low", "high")
		return frag{"SELECT rid FROM idx_number WHERE pid = ? AND " + c.sql, append([]any{pid}, c.args...)}, b.entries(tNumber, pid) / 10, true
	case search.DateMatch:
		if e.Param == "_lastUpdated" {
			return frag{}, 0, false
		}
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		f, est := b.dateSet(pid, []search.DateMatch{e}, "", "SELECT rid FROM idx_date WHERE pid = ?")
		return f, est, true
	case search.RefIn:
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		var parts []string
		for _, ref := range e.Refs {
			switch {
			case ref.URL != "":
				parts = append(parts, "SELECT rid FROM idx_ref WHERE pid = ? AND ref_id = '' AND ref_type = '' AND url = ?")
				f.args = append(f.args, pid, ref.URL)
			case ref.Type != "":
				parts = append(parts, "SELECT rid FROM idx_ref WHERE pid = ? AND ref_id = ? AND ref_type = ? AND url = ''")
				f.args = append(f.args, pid, ref.ID, ref.Type)
			default:
				parts = append(parts, "SELECT rid FROM idx_ref WHERE pid = ? AND ref_id = ? AND url = ''")
				f.args = append(f.args, pid, ref.ID)
			}
		}
		f.sql = strings.Join(parts, " UNION ALL ")
		return f, b.avg(tRef, pid) * float64(len(e.Refs)), true
	case search.Chain:
		pid, ok := pidOf(e.Param)
		if !ok {
			return none, 0, true
		}
		inner, innerEst := b.matchSet(e.Filter, e.Target)
		t := b.next()
		f.add("SELECT f.rid FROM ("+inner.sql+") x CROSS JOIN resources "+t+" ON "+t+".rid = x.rid CROSS JOIN idx_ref f ON f.pid = ? AND f.ref_id = "+
			t+".id AND f.ref_type = "+t+".type AND f.url = '' WHERE "+t+".type = ? AND "+t+".deleted = 0", append(inner.args, pid, e.Target)...)
		return f, innerEst * b.avg(tRef, pid), true
	case search.Has:
		pid, ok := b.r.pid(e.Type, e.Param)
		if !ok {
			return none, 0, true
		}
		inner, innerEst := b.matchSet(e.Filter, e.Type)
		t := b.next()
		f.add("SELECT "+t+".rid FROM ("+inner.sql+") x CROSS JOIN idx_ref f ON f.rid = x.rid AND f.pid = ? AND f.url = '' CROSS JOIN resources "+t+
			" ON "+t+".type = f.ref_type AND "+t+".id = f.ref_id WHERE "+t+".type = ? AND "+t+".deleted = 0", append(inner.args, pid, typ)...)
		return f, innerEst, true
	case search.Or:
		if len(e) == 0 {
			return none, 0, true
		}
		var parts []string
		for _, x := range e {
			s, n, ok := b.set(x, typ)
			if !ok {
				return frag{}, 0, false
			}
			parts = append(parts, "SELECT rid FROM ("+s.sql+")")
			f.args = append(f.args, s.args...)
			est += n
		}
		f.sql = strings.Join(parts, " UNION ")
		return f, est, true
	}
	return frag{}, 0, false
}

// matchSet is the set of live resources of typ matching e: e's set when it
// has one, else a scan of typ probing e.
func (b *builder) matchSet(e search.Expr, typ string) (frag, float64) {
	if f, est, ok := b.set(e, typ); ok {
		return f, est
	}
	a := b.next()
	c, err := b.probe(e, typ, a)
	if err != nil {
		return none, 0
	}
	return frag{"SELECT " + a + ".rid FROM resources " + a + " WHERE " + a + ".type = ? AND " + a + ".deleted = 0 AND " + c.sql,
		append([]any{typ}, c.args...)}, b.typeCount(typ) / 2
}

// lowBounds is the range [lb, ub) of entry lows that can satisfy m when no
// entry of the parameter is wider than w (MinTime / MaxTime: unbounded).
func lowBounds(m search.DateMatch, w, now int64) (lb, ub int64) {
	lb, ub = search.MinTime, search.MaxTime
	// after returns x - w + 1: the lowest low whose high can exceed x.
	after := func(x int64) int64 {
		if w == math.MaxInt64 || x < search.MinTime+w {
			return search.MinTime
		}
		return x - w + 1
	}
	switch m.Prefix {
	case search.Eq, "":
		lb, ub = m.Low, m.High
	case search.Gt:
		lb = after(m.High)
	case search.Ge:
		lb = after(m.Low)
	case search.Lt, search.Eb:
		ub = m.Low
	case search.Le:
		ub = m.High
	case search.Sa:
		lb = m.High
	case search.Ap:
		d := apWidth(m.Low, now)
		lb, ub = after(satAdd(m.Low, -d)), satAdd(m.High, d)
	}
	return lb, ub
}

// apWidth is how far ap widens a search range, as search.DateMatches does.
func apWidth(low, now int64) int64 {
	d := now - low
	d = max(d, -d) / 10
	return max(d, 86400e6)
}

func satAdd(a, d int64) int64 {
	switch {
	case d > 0 && a > math.MaxInt64-d:
		return math.MaxInt64
	case d < 0 && a < math.MinInt64-d:
		return math.MinInt64
	}
	return a + d
}

// dateConds renders the exact conditions of ms on the columns lo and hi
// (prefixed by alias when not "").
func dateConds(ms []search.DateMatch, alias string, now int64) frag {
	lo, hi := "low", "high"
	if alias != "" {
		lo, hi = alias+".low", alias+".high"
	}
	var f frag
	for _, m := range ms {
		var c string
		var args []any
		if m.Prefix == search.Ap {
			d := apWidth(m.Low, now)
			c, args = lo+" < ? AND "+hi+" > ?", []any{satAdd(m.High, d), satAdd(m.Low, -d)}
		} else {
			c, args = rangeCond(m.Prefix, lo, hi, m.Low, m.High)
		}
		f.add(" AND ("+c+")", args...)
	}
	return f
}

// dateSet renders head (which selects from an index with a low column)
// narrowed to the ms conditions of date parameter pid, which must all be
// met by one entry, with its estimated size. alias prefixes the columns.
func (b *builder) dateSet(pid int64, ms []search.DateMatch, alias, head string, args ...any) (frag, float64) {
	now := time.Now().UnixMicro()
	sh := b.r.s.plan.shape(b.ctx, b.r.s.rdb, pid)
	lb, ub := search.MinTime, search.MaxTime
	for _, m := range ms {
		l, u := lowBounds(m, sh.width, now)
		lb, ub = max(lb, l), min(ub, u)
	}
	lo := "low"
	if alias != "" {
		lo = alias + ".low"
	}
	f := frag{head, append([]any(nil), args...)}
	if lb != search.MinTime {
		f.add(" AND "+lo+" >= ?", lb)
	}
	if ub != search.MaxTime {
		f.add(" AND "+lo+" < ?", ub)
	}
	c := dateConds(ms, alias, now)
	f.add(c.sql, c.args...)
	n, minLow, maxLow := b.dateStats(pid)
	est := n
	if n > 0 && maxLow >= minLow {
		span := float64(maxLow) - float64(minLow) + 1
		l, u := max(float64(lb), float64(minLow)), min(float64(ub), float64(maxLow)+1)
		est = n * max(0, u-l) / span
		if u > l {
			est = max(est, 1)
		}
	}
	return f, est
}

// probe renders e as a condition on resource alias a of type typ, checked
// per row through the (rid, pid) indexes.
func (b *builder) probe(e search.Expr, typ, a string) (frag, error) {
	r := search.Visit[probed](e, prober{b, typ, a})
	return r.f, r.err
}

// probed is what prober returns for one expression.
type probed struct {
	f   frag
	err error
}

// ret makes a probed of probe's results.
func ret(f frag, err error) probed { return probed{f, err} }

// prober is probe over each kind of node.
type prober struct {
	b      *builder
	typ, a string
}

var _ search.Visitor[probed] = prober{}

// exists renders EXISTS over table for parameter param of p.typ.
func (p prober) exists(table, param, where string, args ...any) (frag, error) {
	a := p.a
	if p.typ == "" {
		return frag{"EXISTS (SELECT 1 FROM " + table + " WHERE rid = " + a + ".rid AND pid = (SELECT pid FROM params WHERE type = " + a +
			".type AND code = ?) AND " + where + ")", append([]any{param}, args...)}, nil
	}
	pid, ok := p.b.r.pid(p.typ, param)
	if !ok {
		return frag{sql: "0"}, nil
	}
	return frag{"EXISTS (SELECT 1 FROM " + table + " WHERE rid = " + a + ".rid AND pid = ? AND " + where + ")", append([]any{pid}, args...)}, nil
}

func (p prober) CompositeMatch(e search.CompositeMatch) probed {
	return ret(p.b.compositeProbe(e, p.typ, p.a))
}

func (p prober) IDIn(e search.IDIn) probed {
	a := p.a
	return ret(frag{a + ".id IN (" + placeholders(len(e.IDs)) + ")", anys(e.IDs)}, nil)
}

func (p prober) TokenIn(e search.TokenIn) probed {
	where := "value IN (" + placeholders(len(e.Codes)) + ")"
	args := anys(e.Codes)
	if e.HasSystem {
		where += " AND system = ?"
		args = append(args, e.System)
	}
	return ret(p.exists("idx_token", e.Param, where, args...))
}

func (p prober) TokenText(e search.TokenText) probed {
	return ret(p.exists("idx_token", e.Param, "(text LIKE ? ESCAPE '\\' OR text LIKE ? ESCAPE '\\')",
		likeEscape(e.Text)+"%", "% "+likeEscape(e.Text)+"%"))
}

func (p prober) StringMatch(e search.StringMatch) probed {
	switch e.Mode {
	case search.StringExact:
		return ret(p.exists("idx_string", e.Param, "value = ?", e.Value))
	case search.StringContains:
		return ret(p.exists("idx_string", e.Param, "text LIKE ? ESCAPE '\\'", "%"+likeEscape(e.Value)+"%"))
	}
	return ret(p.exists("idx_string", e.Param, "text >= ? AND text < ?", e.Value, e.Value+"\U0010FFFF"))
}

func (p prober) DateMatch(e search.DateMatch) probed {
	a := p.a
	if e.Param == "_lastUpdated" {
		c, args := rangeCond(e.Prefix, a+".updated", a+".updated + 1", e.Low, e.High)
		if e.Prefix == search.Ap {
			d := apWidth(e.Low, time.Now().UnixMicro())
			c, args = a+".updated < ? AND "+a+".updated + 1 > ?", []any{satAdd(e.High, d), satAdd(e.Low, -d)}
		}
		return ret(frag{"(" + c + ")", args}, nil)
	}
	c := dateConds([]search.DateMatch{e}, "", time.Now().UnixMicro())
	return ret(p.exists("idx_date", e.Param, "1"+c.sql, c.args...))
}

func (p prober) NumberMatch(e search.NumberMatch) probed {
	c, args := numberCond(e, "low", "high")
	return ret(p.exists("idx_number", e.Param, c, args...))
}

func (p prober) RefIn(e search.RefIn) probed {
	var parts []string
	var args []any
	for _, ref := range e.Refs {
		switch {
		case ref.URL != "":
			parts = append(parts, "(ref_id = '' AND url = ?)")
			args = append(args, ref.URL)
		case ref.Type != "":
			parts = append(parts, "(ref_id = ? AND ref_type = ? AND url = '')")
			args = append(args, ref.ID, ref.Type)
		default:
			parts = append(parts, "(ref_id = ? AND url = '')")
			args = append(args, ref.ID)
		}
	}
	return ret(p.exists("idx_ref", e.Param, "("+strings.Join(parts, " OR ")+")", args...))
}

func (p prober) URIMatch(e search.URIMatch) probed {
	switch e.Mode {
	case search.URIAbove:
		return ret(p.exists("idx_uri", e.Param, "substr(?, 1, length(value)) = value", e.Value))
	case search.URIBelow:
		return ret(p.exists("idx_uri", e.Param, "value >= ? AND value < ?", e.Value, e.Value+"\U0010FFFF"))
	}
	return ret(p.exists("idx_uri", e.Param, "value = ?", e.Value))
}

func (p prober) Near(e search.Near) probed {
	c := nearCond(e, "low", "high")
	return ret(p.exists("idx_number", e.Param, c.sql, c.args...))
}

func (p prober) Missing(e search.Missing) probed {
	if columnParam(e.Param) {
		// Every resource has an id and a lastUpdated (columnParam).
		if e.Missing {
			return ret(frag{sql: "0"}, nil)
		}
		return ret(frag{sql: "1"}, nil)
	}
	var parts []string
	var args []any
	for _, t := range indexTables {
		x, err := p.exists(t, e.Param, "1")
		if err != nil {
			return ret(frag{}, err)
		}
		parts = append(parts, x.sql)
		args = append(args, x.args...)
	}
	c := "(" + strings.Join(parts, " OR ") + ")"
	if e.Missing {
		c = "NOT " + c
	}
	return ret(frag{c, args}, nil)
}

func (p prober) Or(e search.Or) probed {
	var f frag
	if len(e) == 0 {
		return ret(frag{sql: "0"}, nil)
	}
	var parts []string
	for _, x := range e {
		c, err := p.b.probe(x, p.typ, p.a)
		if err != nil {
			return ret(frag{}, err)
		}
		parts = append(parts, c.sql)
		f.args = append(f.args, c.args...)
	}
	f.sql = "(" + strings.Join(parts, " OR ") + ")"
	return ret(f, nil)
}

func (p prober) Not(e search.Not) probed {
	c, err := p.b.probe(e.Expr, p.typ, p.a)
	if err != nil {
		return ret(frag{}, err)
	}
	return ret(frag{"NOT " + c.sql, c.args}, nil)
}

func (p prober) Chain(e search.Chain) probed {
	t := p.b.next()
	inner, err := p.b.probe(e.Filter, e.Target, t)
	if err != nil {
		return ret(frag{}, err)
	}
	c, err := p.exists("idx_ref f", e.Param, "f.url = '' AND f.ref_type = ? AND EXISTS (SELECT 1 FROM resources "+t+" WHERE "+t+
		".type = f.ref_type AND "+t+".id = f.ref_id AND "+t+".deleted = 0 AND "+inner.sql+")", append([]any{e.Target}, inner.args...)...)
	c.sql = strings.Replace(c.sql, "WHERE rid = ", "WHERE f.rid = ", 1)
	return ret(c, err)
}

func (p prober) Has(e search.Has) probed {
	pid, ok := p.b.r.pid(e.Type, e.Param)
	if !ok {
		return ret(frag{sql: "0"}, nil)
	}
	t := p.b.next()
	inner, err := p.b.probe(e.Filter, e.Type, t)
	if err != nil {
		return ret(frag{}, err)
	}
	return ret(frag{"EXISTS (SELECT 1 FROM idx_ref f JOIN resources " + t + " ON " + t + ".rid = f.rid WHERE f.pid = ? AND f.ref_id = " + p.a +
		".id AND f.ref_type = " + p.a + ".type AND f.url = '' AND " + t + ".deleted = 0 AND " + inner.sql + ")", append([]any{pid}, inner.args...)}, nil)
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

func numberCond(e search.NumberMatch, lo, hi string) (string, []any) {
	c, args := rangeCond(e.Prefix, lo, hi, e.Low, e.High)
	if e.Prefix == search.Ap {
		mid := (e.Low + e.High) / 2
		d := math.Abs(mid / 10)
		c, args = lo+" < ? AND "+hi+" > ?", []any{e.High + d, e.Low - d}
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

// nearCond is a bounding box on latitude (lat) and longitude (lon) that
// the index can range over, then the great-circle distance as
// search.Distance computes it.
func nearCond(e search.Near, lat, lon string) frag {
	dlat := e.KM / 111.0
	// A margin over the cap's true longitude extent, which exceeds km /
	// (111 cos lat) away from the equator.
	dlon := 1.2 * e.KM / (111.0 * math.Max(0.01, math.Cos(e.Lat*math.Pi/180)))
	rad := math.Pi / 180
	return frag{lat + " BETWEEN ? AND ? AND " + lon + " BETWEEN ? AND ? AND " +
		"2 * 6371.0088 * asin(min(1, sqrt(pow(sin((" + lat + " * ? - ?) / 2), 2) + cos(?) * cos(" + lat + " * ?) * pow(sin((" + lon + " * ? - ?) / 2), 2)))) <= ?",
		[]any{e.Lat - dlat, e.Lat + dlat, e.Lon - dlon, e.Lon + dlon, rad, e.Lat * rad, e.Lat * rad, rad, rad, e.Lon * rad, e.KM}}
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
