package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Search translates q's expression tree into one SQL query.
//
// A small planner picks how the query is driven. Every conjunct of the
// filter that can be answered from an index's leading columns is a
// candidate driver (a "set": SELECT rid FROM idx_… WHERE pid = ? AND …);
// the date conditions of a single-valued date parameter are combined into
// one range, and a reference condition (or chain) together with date
// conditions on a declared pair (Slot schedule+start) becomes a range scan
// of idx_pair per referenced resource. Candidates are costed from
// per-parameter statistics (entries, distinct values, date span) kept in
// memory and refreshed as writes accumulate. The cheapest candidate drives
// the query (CROSS JOIN keeps SQLite from reordering it); every other
// conjunct becomes a correlated EXISTS probe through the (rid, pid)
// indexes. When no candidate is selective and there is no _sort, the query
// walks resources in result order (_lastUpdated, id) and stops after one
// page, which is what dense conditions such as status=free want.
//
// Results are ordered by the _sort keys (each resource's smallest value
// ascending, largest descending, resources without a value last in both
// directions, as the oracle does), then _lastUpdated, id and type. Pages are
// cut by keyset cursors holding the last (or, for Prev, the first) row's
// sort values, so paging stays correct while data changes.
func (r reader) Search(ctx context.Context, q *search.Query) (*store.Page, error) {
	cur, err := decodeCursor(q.Cursor, q.Sort)
	if err != nil {
		return nil, err
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	b := &builder{r: r, ctx: ctx}
	p, err := b.plan(q, count)
	if err != nil {
		return nil, err
	}
	page := &store.Page{Total: -1}
	if q.Summary != search.SummaryCount {
		if err := b.rows(ctx, q, p, cur, count, page); err != nil {
			return nil, fmt.Errorf("search %s: %w", q.Type, err)
		}
	}
	switch q.Total {
	case search.TotalAccurate:
		page.Total, err = b.count(ctx, p)
	case search.TotalEstimate:
		switch {
		case cur == nil && page.Next == "" && q.Summary != search.SummaryCount:
			page.Total = len(page.Resources)
		case p.driver != nil && p.driver.est <= 10000:
			page.Total, err = b.count(ctx, p)
		default:
			page.Total = int(math.Round(p.result))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("search %s: counting: %w", q.Type, err)
	}
	return page, nil
}

// explain returns SQLite's query plan for the first page of q, one line
// per step, indented by depth.
func (r reader) explain(ctx context.Context, q *search.Query) ([]string, error) {
	b := &builder{r: r, ctx: ctx}
	count := max(q.Count, 1)
	p, err := b.plan(q, count)
	if err != nil {
		return nil, err
	}
	f := b.rowsSQL(q, p, nil, count)
	if p.keyedPage(q) {
		f = keyedRowsSQL(q, p, nil, count)
	}
	return explainSQL(ctx, r.q, f)
}

// explainSQL returns SQLite's query plan for f, one line per step,
// indented by depth.
func explainSQL(ctx context.Context, q querier, f frag) ([]string, error) {
	rows, err := q.QueryContext(ctx, "EXPLAIN QUERY PLAN "+f.sql, f.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	depth := map[int]int{}
	var out []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return nil, err
		}
		depth[id] = depth[parent] + 1
		out = append(out, strings.Repeat("  ", depth[id]-1)+detail)
	}
	return out, rows.Err()
}

// frag is a piece of SQL and its arguments.
type frag struct {
	sql  string
	args []any
}

func (f *frag) add(sql string, args ...any) {
	f.sql += sql
	f.args = append(f.args, args...)
}

// numbered gives f's parameters numbers (?1, ?2…), one per distinct
// value, so that the arms of a query share theirs. SQLite marks some of a
// statement's parameters as able to change its plan, and prepares it
// again whenever one of them is bound; all parameters past the 31st share
// one mark. A three-schedule query had 44 parameters and was prepared
// again on every run (0.38 ms against 0.09 ms with 15 numbered ones).
func numbered(f frag) frag {
	var b strings.Builder
	var args []any
	num := map[any]int{}
	a, quoted := 0, false
	for i := 0; i < len(f.sql); i++ {
		c := f.sql[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			v := f.args[a]
			a++
			n, ok := 0, false
			switch v.(type) {
			case int64, int, float64, string:
				n, ok = num[v]
			}
			if !ok {
				args = append(args, v)
				n = len(args)
				switch v.(type) {
				case int64, int, float64, string:
					num[v] = n
				}
			}
			b.WriteString("?" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return frag{b.String(), args}
}

// candidate is a way to drive a query: a set of rids (possibly with
// duplicates) that contains every match, its estimated size, and the
// conjuncts it answers exactly.
type candidate struct {
	set    frag
	est    float64
	covers []int
	unique bool // set never yields a rid twice
	keyed  bool // set's rows also carry the resource's updated and id
}

// planMode overrides the planner's choice, for tests that check every way
// of answering gives the same result. It is set before any search runs.
var planMode = costBased

// The plan modes.
const (
	costBased   = iota
	walkAlways  // walk resources in order whenever the query allows
	driveAlways // drive from the cheapest candidate whenever there is one
)

// queryPlan is the chosen driver and the probes for the rest.
type queryPlan struct {
	typ    string
	driver *candidate // nil: walk resources in order
	where  frag       // conditions on r (type, not deleted, probes)
	result float64    // estimated number of matches
	n      float64    // resources of the type
}

// builder translates one search.
type builder struct {
	r     reader
	ctx   context.Context
	alias int
}

func (b *builder) next() string {
	b.alias++
	return "t" + strconv.Itoa(b.alias)
}

// plan chooses the driver of q and renders the probes.
func (b *builder) plan(q *search.Query, count int) (*queryPlan, error) {
	p := &queryPlan{typ: q.Type}
	p.n = b.typeCount(q.Type)
	var cands []*candidate
	dates := map[string][]int{} // date parameter → conjunct indexes
	for i, e := range q.Filter {
		if d, ok := e.(search.DateMatch); ok && d.Param != "_lastUpdated" && q.Type != "" {
			dates[d.Param] = append(dates[d.Param], i)
			continue
		}
		if q.Type == "" {
			continue
		}
		if f, est, ok := b.set(e, q.Type); ok {
			cands = append(cands, &candidate{set: f, est: est, covers: []int{i}})
		}
	}
	for param, idx := range dates {
		cands = append(cands, b.dateCandidates(q, param, idx)...)
	}
	for _, pr := range pairsOf(q.Type) {
		if c := b.pairCandidate(q, pr); c != nil {
			cands = append(cands, c)
		}
	}
	slices.SortStableFunc(cands, func(x, y *candidate) int {
		switch {
		case x.est < y.est:
			return -1
		case x.est > y.est:
			return 1
		}
		return len(y.covers) - len(x.covers)
	})
	// Estimated matches: the best candidate, narrowed by what it leaves.
	p.result = p.n
	if len(cands) > 0 {
		best := cands[0]
		p.result = best.est
		for i := range q.Filter {
			if slices.Contains(best.covers, i) {
				continue
			}
			sel := 0.5
			for _, c := range cands {
				if len(c.covers) == 1 && c.covers[0] == i && p.n > 0 {
					sel = min(sel, c.est/p.n)
				}
			}
			p.result *= sel
		}
		// Walking resources in order reads about count·n/result rows.
		walk := p.n
		if p.result >= 1 {
			walk = min(p.n, float64(count+1)*p.n/p.result)
		}
		if len(q.Sort) > 0 || q.Type == "" || best.est <= walk {
			p.driver = best
		}
		switch planMode {
		case walkAlways:
			if len(q.Sort) == 0 && q.Type != "" {
				p.driver = nil
			}
		case driveAlways:
			p.driver = best
		}
	}
	w := &p.where
	w.add("r.deleted = 0")
	switch {
	case q.Type != "":
		w.add(" AND r.type = ?", q.Type)
	case len(q.Types) > 0:
		w.add(" AND r.type IN ("+placeholders(len(q.Types))+")", anys(q.Types)...)
	}
	for i, e := range q.Filter {
		if p.driver != nil && slices.Contains(p.driver.covers, i) {
			continue
		}
		c, err := b.probe(e, q.Type, "r")
		if err != nil {
			return nil, err
		}
		w.add(" AND ")
		w.add(c.sql, c.args...)
	}
	return p, nil
}

// from renders the FROM clause: the driver's distinct rids joined to
// resources, or resources itself.
func (p *queryPlan) from(ordered bool) frag {
	if p.driver != nil {
		distinct := "DISTINCT "
		if p.driver.unique {
			distinct = ""
		}
		return frag{"(SELECT " + distinct + "rid FROM (" + p.driver.set.sql + ")) d CROSS JOIN resources r ON r.rid = d.rid", p.driver.set.args}
	}
	if ordered && p.typ != "" {
		return frag{sql: "resources r INDEXED BY resources_type_updated"}
	}
	return frag{sql: "resources r"}
}

func (b *builder) count(ctx context.Context, p *queryPlan) (int, error) {
	f := frag{sql: "SELECT count(*) FROM "}
	from := p.from(false)
	f.add(from.sql, from.args...)
	f.add(" WHERE "+p.where.sql, p.where.args...)
	f = numbered(f)
	var n int
	err := b.r.q.QueryRowContext(ctx, f.sql, f.args...).Scan(&n)
	return n, err
}

// rowsSQL renders the query for one page. The page is chosen and ordered
// on narrow rows (ids, times, sort keys) first; only its rows then read
// their bodies from history, so candidates that do not make the page are
// never loaded or sorted with their JSON.
func (b *builder) rowsSQL(q *search.Query, p *queryPlan, cur *cursor, count int) frag {
	back := cur != nil && cur.back
	nk := len(q.Sort)
	var names []string // the page's order, as column names
	desc := make([]bool, 0, nk+3)
	var inner frag
	inner.add("SELECT r.rid, r.type, r.id, r.version, r.updated, r.seq")
	for i, k := range q.Sort {
		e := b.sortExpr(k, q.Type, "r")
		inner.add(", "+e.sql+" AS k"+strconv.Itoa(i), e.args...)
		names = append(names, "k"+strconv.Itoa(i))
		desc = append(desc, k.Desc)
	}
	names = append(names, "updated", "id", "type")
	desc = append(desc, false, false, false)
	from := p.from(nk == 0)
	inner.add(" FROM "+from.sql, from.args...)
	inner.add(" WHERE "+p.where.sql, p.where.args...)
	prefixed := func(alias string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = alias + "." + n
		}
		return out
	}

	// The page: flat over r when there are no sort keys, so that walking
	// resources in order stops after a page.
	var page frag
	cols := prefixed("m")
	if nk == 0 {
		cols = prefixed("r")
		page = inner
	} else {
		page.add("SELECT * FROM ("+inner.sql+") m WHERE 1", inner.args...)
	}
	if cur != nil {
		c := cursorCond(cols, desc, nk, cur.values(), back)
		page.add(" AND ")
		page.add(c.sql, c.args...)
	}
	page.add(" ORDER BY " + orderBy(cols, desc, nk, back) + " LIMIT ?")
	page.args = append(page.args, count+1)

	var keyCols string
	for i := range nk {
		keyCols += ", g.k" + strconv.Itoa(i)
	}
	var query frag
	query.add("SELECT g.type, g.id, g.version, g.updated, h.body"+keyCols+" FROM ("+page.sql+") g JOIN history h ON h.seq = g.seq ORDER BY "+
		orderBy(prefixed("g"), desc, nk, back), page.args...)
	return query
}

// keyedPage reports whether q's page can be chosen on the driver's own
// rows: the driver answers every condition exactly, never repeats a
// resource and carries the default order's keys (updated, id), and q has
// no _sort. Then only the page's rows read resources.
func (p *queryPlan) keyedPage(q *search.Query) bool {
	d := p.driver
	return d != nil && d.keyed && d.unique && len(q.Sort) == 0 && q.Type != "" && len(d.covers) == len(q.Filter)
}

// keyedRowsSQL is rowsSQL for a keyed page.
func keyedRowsSQL(q *search.Query, p *queryPlan, cur *cursor, count int) frag {
	back := cur != nil && cur.back
	cols := []string{"m.updated", "m.id", "m.type"}
	desc := []bool{false, false, false}
	page := frag{"SELECT * FROM (SELECT rid, updated, id, ? AS type FROM (" + p.driver.set.sql + ")) m WHERE 1", append([]any{q.Type}, p.driver.set.args...)}
	if cur != nil {
		c := cursorCond(cols, desc, 0, cur.values(), back)
		page.add(" AND ")
		page.add(c.sql, c.args...)
	}
	page.add(" ORDER BY "+orderBy(cols, desc, 0, back)+" LIMIT ?", count+1)
	var query frag
	query.add("SELECT r.type, r.id, r.version, r.updated, h.body FROM ("+page.sql+") g CROSS JOIN resources r ON r.rid = g.rid JOIN history h ON h.seq = r.seq"+
		" WHERE r.deleted = 0 ORDER BY "+orderBy([]string{"g.updated", "g.id", "g.type"}, desc, 0, back), page.args...)
	return query
}

// rows reads one page.
func (b *builder) rows(ctx context.Context, q *search.Query, p *queryPlan, cur *cursor, count int, page *store.Page) error {
	back := cur != nil && cur.back
	nk := len(q.Sort)
	var query frag
	if p.keyedPage(q) {
		query = keyedRowsSQL(q, p, cur, count)
	} else {
		query = b.rowsSQL(q, p, cur, count)
	}
	query = numbered(query)
	var rows *sql.Rows
	var err error
	if db, ok := b.r.q.(*sql.DB); ok {
		// Searches repeat their shapes: reuse the prepared statement.
		var st *sql.Stmt
		var cached bool
		if st, cached, err = b.r.s.plan.prepared(ctx, db, query.sql); err == nil {
			if !cached {
				defer st.Close()
			}
			rows, err = st.QueryContext(ctx, query.args...)
		}
	} else {
		rows, err = b.r.q.QueryContext(ctx, query.sql, query.args...)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	var keys [][]any
	for rows.Next() {
		res := &fhir.Resource{}
		var updated int64
		k := make([]any, nk)
		dest := []any{&res.Type, &res.ID, &res.Version, &updated, &res.JSON}
		for i := range k {
			dest = append(dest, &k[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		res.LastUpdated = time.UnixMicro(updated).UTC()
		page.Resources = append(page.Resources, res)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	more := len(page.Resources) > count
	if more {
		page.Resources, keys = page.Resources[:count], keys[:count]
	}
	if back {
		slices.Reverse(page.Resources)
		slices.Reverse(keys)
	}
	at := func(i int, back bool) string {
		res := page.Resources[i]
		return (&cursor{back: back, sort: sortSig(q.Sort), keys: keys[i], updated: res.LastUpdated.UnixMicro(), id: res.ID, typ: res.Type}).encode()
	}
	n := len(page.Resources)
	switch {
	case n == 0:
	case back:
		page.Next = at(n-1, false)
		if more {
			page.Prev = at(0, true)
		}
	default:
		if more {
			page.Next = at(n-1, false)
		}
		if cur != nil {
			page.Prev = at(0, true)
		}
	}
	return nil
}

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

// sortExpr is resource alias a's value for sort key k: the smallest (or,
// descending, largest) of its values, NULL when it has none.
func (b *builder) sortExpr(k search.SortKey, typ, a string) frag {
	switch k.Param {
	case "_id":
		return frag{sql: a + ".id"}
	case "_lastUpdated":
		return frag{sql: a + ".updated"}
	}
	agg := "min"
	if k.Desc {
		agg = "max"
	}
	var table, col string
	switch k.Type {
	case search.String:
		table, col = "idx_string", "text"
	case search.Date:
		table, col = "idx_date", "low"
		if k.Desc {
			col = "high"
		}
	case search.Number, search.Quantity:
		table, col = "idx_number", "low"
		if k.Desc {
			col = "high"
		}
	case search.Reference:
		table, col = "idx_ref", "CASE url WHEN '' THEN ref_type || '/' || ref_id ELSE url END"
	case search.URI:
		table, col = "idx_uri", "value"
	default:
		table, col = "idx_token", "value"
	}
	if typ == "" {
		return frag{"(SELECT " + agg + "(" + col + ") FROM " + table + " WHERE rid = " + a + ".rid AND pid = (SELECT pid FROM params WHERE type = " + a + ".type AND code = ?))", []any{k.Param}}
	}
	pid, ok := b.r.pid(typ, k.Param)
	if !ok {
		return frag{sql: "NULL"}
	}
	return frag{"(SELECT " + agg + "(" + col + ") FROM " + table + " WHERE rid = " + a + ".rid AND pid = ?)", []any{pid}}
}

// none is a set with no rows.
var none = frag{sql: "SELECT NULL AS rid WHERE 0"}

// set renders e as a set of rids of typ answered from an index's leading
// columns, with its estimated size; ok is false when e has no such form.
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

// dateCandidates are the drivers for the date conditions idx of q on param:
// one combined range when the parameter is single-valued, else one per
// condition.
func (b *builder) dateCandidates(q *search.Query, param string, idx []int) []*candidate {
	pid, ok := b.r.pid(q.Type, param)
	if !ok {
		return []*candidate{{set: none, est: 0, covers: idx}}
	}
	head := "SELECT rid FROM idx_date WHERE pid = ?"
	if !b.r.s.plan.shape(b.ctx, b.r.s.rdb, pid).multi {
		var ms []search.DateMatch
		for _, i := range idx {
			ms = append(ms, q.Filter[i].(search.DateMatch))
		}
		f, est := b.dateSet(pid, ms, "", head, pid)
		return []*candidate{{set: f, est: est, covers: idx}}
	}
	var out []*candidate
	for _, i := range idx {
		f, est := b.dateSet(pid, []search.DateMatch{q.Filter[i].(search.DateMatch)}, "", head, pid)
		out = append(out, &candidate{set: f, est: est, covers: []int{i}})
	}
	return out
}

// pairCandidate drives q from the pair index pr when q has a reference
// condition (or a chain) on pr.Ref and conditions on pr.Date, a
// single-valued date parameter.
func (b *builder) pairCandidate(q *search.Query, pr pair) *candidate {
	refAt, codeAt := -1, -1
	var dateIdx []int
	var ms []search.DateMatch
	for i, e := range q.Filter {
		switch e := e.(type) {
		case search.TokenIn:
			// Codes without a system: the pair rows carry the code alone.
			if pr.Code != "" && e.Param == pr.Code && !e.HasSystem && len(e.Codes) > 0 && codeAt < 0 {
				codeAt = i
			}
		case search.RefIn:
			if e.Param == pr.Ref && refAt < 0 && !slices.ContainsFunc(e.Refs, func(r search.Ref) bool { return r.URL != "" }) {
				refAt = i
			}
		case search.Chain:
			if e.Param == pr.Ref && refAt < 0 {
				refAt = i
			}
		case search.DateMatch:
			if e.Param == pr.Date {
				dateIdx = append(dateIdx, i)
				ms = append(ms, e)
			}
		}
	}
	if refAt < 0 || len(ms) == 0 {
		return nil
	}
	dpid, ok := b.r.pid(q.Type, pr.Date)
	if !ok || b.r.s.plan.shape(b.ctx, b.r.s.rdb, dpid).multi {
		return nil
	}
	covers := append([]int{refAt}, dateIdx...)
	if codeAt >= 0 {
		covers = append(covers, codeAt)
	}
	cid, ok := b.r.pid(q.Type, pr.code())
	if !ok {
		return &candidate{set: none, est: 0, covers: covers}
	}
	// The fraction of the pair's rows in the date window, from the date
	// parameter's statistics.
	_, dEst := b.dateSet(dpid, ms, "", "")
	frac := 1.0
	if n := b.entries(tDate, dpid); n > 0 {
		frac = min(1, dEst/n)
	}
	fan := b.avg(tPair, cid)
	// With a single-valued reference and date, a resource has one pair row
	// per distinct target.
	rpid, _ := b.r.pid(q.Type, pr.Ref)
	unique := !b.r.s.plan.shape(b.ctx, b.r.s.rdb, rpid).multi
	var f frag
	var est float64
	switch e := q.Filter[refAt].(type) {
	case search.RefIn:
		var parts []string
		seen := map[search.Ref]bool{}
		for _, ref := range e.Refs {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			if ref.Type == "" {
				unique = false // a bare id may match targets of several types
			}
			head := "SELECT rid, updated, id FROM idx_pair WHERE cid = ? AND ref_id = ?"
			args := []any{cid, ref.ID}
			if ref.Type != "" {
				head += " AND ref_type = ?"
				args = append(args, ref.Type)
			}
			s, _ := b.dateSet(dpid, ms, "", head, args...)
			if codeAt >= 0 {
				c := b.pairCodeCond(q.Type, q.Filter[codeAt].(search.TokenIn), "idx_pair")
				s.add(c.sql, c.args...)
			}
			parts = append(parts, s.sql)
			f.args = append(f.args, s.args...)
		}
		f.sql = strings.Join(parts, " UNION ALL ")
		est = float64(len(e.Refs)) * fan * frac
	case search.Chain:
		inner, innerEst := b.matchSet(e.Filter, e.Target)
		t := b.next()
		s, _ := b.dateSet(dpid, ms, "p", "SELECT p.rid, p.updated, p.id FROM (SELECT DISTINCT rid FROM ("+inner.sql+")) x CROSS JOIN resources "+t+" ON "+t+".rid = x.rid CROSS JOIN idx_pair p ON p.cid = ? AND p.ref_id = "+
			t+".id AND p.ref_type = "+t+".type AND "+t+".type = ? AND "+t+".deleted = 0", append(inner.args, cid, e.Target)...)
		if codeAt >= 0 {
			c := b.pairCodeCond(q.Type, q.Filter[codeAt].(search.TokenIn), "p")
			s.add(c.sql, c.args...)
		}
		f = s
		est = innerEst * fan * frac
	}
	return &candidate{set: f, est: est, covers: covers, unique: unique, keyed: true}
}

// pairCodeCond renders the token condition e on the code column of pair
// rows (table or alias a): the row's code, or for a row marked
// pairCodeProbe, the resource's token entries.
func (b *builder) pairCodeCond(typ string, e search.TokenIn, a string) frag {
	in := placeholders(len(e.Codes))
	f := frag{" AND (" + a + ".code IN (" + in + ")", anys(e.Codes)}
	if pid, ok := b.r.pid(typ, e.Param); ok {
		f.add(" OR ("+a+".code = ? AND EXISTS (SELECT 1 FROM idx_token tk WHERE tk.rid = "+a+".rid AND tk.pid = ? AND tk.value IN ("+in+")))",
			append([]any{pairCodeProbe, pid}, anys(e.Codes)...)...)
	}
	f.add(")")
	return f
}

// probe renders e as a condition on resource alias a of type typ, checked
// per row through the (rid, pid) indexes.
func (b *builder) probe(e search.Expr, typ, a string) (frag, error) {
	var f frag
	// exists renders EXISTS over table for parameter param of typ.
	exists := func(table, param, where string, args ...any) (frag, error) {
		if typ == "" {
			return frag{"EXISTS (SELECT 1 FROM " + table + " WHERE rid = " + a + ".rid AND pid = (SELECT pid FROM params WHERE type = " + a +
				".type AND code = ?) AND " + where + ")", append([]any{param}, args...)}, nil
		}
		pid, ok := b.r.pid(typ, param)
		if !ok {
			return frag{sql: "0"}, nil
		}
		return frag{"EXISTS (SELECT 1 FROM " + table + " WHERE rid = " + a + ".rid AND pid = ? AND " + where + ")", append([]any{pid}, args...)}, nil
	}
	switch e := e.(type) {
	case search.CompositeMatch:
		return b.compositeProbe(e, typ, a)
	case search.IDIn:
		return frag{a + ".id IN (" + placeholders(len(e.IDs)) + ")", anys(e.IDs)}, nil
	case search.TokenIn:
		where := "value IN (" + placeholders(len(e.Codes)) + ")"
		args := anys(e.Codes)
		if e.HasSystem {
			where += " AND system = ?"
			args = append(args, e.System)
		}
		return exists("idx_token", e.Param, where, args...)
	case search.TokenText:
		return exists("idx_token", e.Param, "(text LIKE ? ESCAPE '\\' OR text LIKE ? ESCAPE '\\')",
			likeEscape(e.Text)+"%", "% "+likeEscape(e.Text)+"%")
	case search.StringMatch:
		switch e.Mode {
		case search.StringExact:
			return exists("idx_string", e.Param, "value = ?", e.Value)
		case search.StringContains:
			return exists("idx_string", e.Param, "text LIKE ? ESCAPE '\\'", "%"+likeEscape(e.Value)+"%")
		}
		return exists("idx_string", e.Param, "text >= ? AND text < ?", e.Value, e.Value+"\U0010FFFF")
	case search.DateMatch:
		if e.Param == "_lastUpdated" {
			c, args := rangeCond(e.Prefix, a+".updated", a+".updated + 1", e.Low, e.High)
			if e.Prefix == search.Ap {
				d := apWidth(e.Low, time.Now().UnixMicro())
				c, args = a+".updated < ? AND "+a+".updated + 1 > ?", []any{satAdd(e.High, d), satAdd(e.Low, -d)}
			}
			return frag{"(" + c + ")", args}, nil
		}
		c := dateConds([]search.DateMatch{e}, "", time.Now().UnixMicro())
		return exists("idx_date", e.Param, "1"+c.sql, c.args...)
	case search.NumberMatch:
		c, args := numberCond(e, "low", "high")
		return exists("idx_number", e.Param, c, args...)
	case search.RefIn:
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
		return exists("idx_ref", e.Param, "("+strings.Join(parts, " OR ")+")", args...)
	case search.URIMatch:
		switch e.Mode {
		case search.URIAbove:
			return exists("idx_uri", e.Param, "substr(?, 1, length(value)) = value", e.Value)
		case search.URIBelow:
			return exists("idx_uri", e.Param, "value >= ? AND value < ?", e.Value, e.Value+"\U0010FFFF")
		}
		return exists("idx_uri", e.Param, "value = ?", e.Value)
	case search.Near:
		c := nearCond(e, "low", "high")
		return exists("idx_number", e.Param, c.sql, c.args...)
	case search.Missing:
		var parts []string
		var args []any
		for _, t := range indexTables {
			x, err := exists(t, e.Param, "1")
			if err != nil {
				return f, err
			}
			parts = append(parts, x.sql)
			args = append(args, x.args...)
		}
		c := "(" + strings.Join(parts, " OR ") + ")"
		if e.Missing {
			c = "NOT " + c
		}
		return frag{c, args}, nil
	case search.Or:
		if len(e) == 0 {
			return frag{sql: "0"}, nil
		}
		var parts []string
		for _, x := range e {
			c, err := b.probe(x, typ, a)
			if err != nil {
				return f, err
			}
			parts = append(parts, c.sql)
			f.args = append(f.args, c.args...)
		}
		f.sql = "(" + strings.Join(parts, " OR ") + ")"
		return f, nil
	case search.Not:
		c, err := b.probe(e.Expr, typ, a)
		if err != nil {
			return f, err
		}
		return frag{"NOT " + c.sql, c.args}, nil
	case search.Chain:
		t := b.next()
		inner, err := b.probe(e.Filter, e.Target, t)
		if err != nil {
			return f, err
		}
		c, err := exists("idx_ref f", e.Param, "f.url = '' AND f.ref_type = ? AND EXISTS (SELECT 1 FROM resources "+t+" WHERE "+t+
			".type = f.ref_type AND "+t+".id = f.ref_id AND "+t+".deleted = 0 AND "+inner.sql+")", append([]any{e.Target}, inner.args...)...)
		c.sql = strings.Replace(c.sql, "WHERE rid = ", "WHERE f.rid = ", 1)
		return c, err
	case search.Has:
		pid, ok := b.r.pid(e.Type, e.Param)
		if !ok {
			return frag{sql: "0"}, nil
		}
		t := b.next()
		inner, err := b.probe(e.Filter, e.Type, t)
		if err != nil {
			return f, err
		}
		return frag{"EXISTS (SELECT 1 FROM idx_ref f JOIN resources " + t + " ON " + t + ".rid = f.rid WHERE f.pid = ? AND f.ref_id = " + a +
			".id AND f.ref_type = " + a + ".type AND f.url = '' AND " + t + ".deleted = 0 AND " + inner.sql + ")", append([]any{pid}, inner.args...)}, nil
	}
	return f, fhir.Errorf(fhir.NotSupported, "not-supported", "", "search expression %T is not supported", e)
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

// planner holds what the search planner knows about the data: the shape of
// each date parameter (kept exact: the planner relies on it for
// correctness) and statistics per parameter (estimates, refreshed as
// writes accumulate).
type planner struct {
	mu     sync.Mutex
	loaded bool
	shapes map[int64]dateShape
	dirty  map[int64]bool  // shapes widened in memory and not yet saved
	writes map[int64]int64 // index entries written per pid since start
	stats  map[statKey]*stat
	stmts  map[string]*sql.Stmt // prepared search statements on the read pool

	// save persists a statistic once computed (Open sets it), so that
	// the first searches after a restart need not compute it again. seq
	// is the last history row when it was computed.
	save func(k statKey, v [3]float64, seq int64)
}

// maxStmts bounds the prepared statements kept. Search shapes are few;
// once that many are cached, other shapes are prepared per search, as
// without a cache. (Nothing is evicted: closing a statement another search
// is about to use would fail that search.)
const maxStmts = 512

// prepared returns a statement for query on the read pool, prepared once.
// When it is not cached (the cache is full) the caller must close it.
func (p *planner) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, bool, error) {
	p.mu.Lock()
	st := p.stmts[query]
	p.mu.Unlock()
	if st != nil {
		return st, true, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.stmts[query]; old != nil {
		st.Close()
		return old, true, nil
	}
	if p.stmts == nil {
		p.stmts = map[string]*sql.Stmt{}
	}
	if len(p.stmts) >= maxStmts {
		return st, false, nil
	}
	p.stmts[query] = st
	return st, true, nil
}

// dateShape is the widest range of a date parameter and whether any
// resource has several values.
type dateShape struct {
	width int64
	multi bool
}

type statKey struct {
	table int // a t… constant, or -1 for the resource count of typ
	pid   int64
	typ   string
}

// stat is one statistic: v[0] entries, v[1] distinct values (or the
// smallest low of a date parameter), v[2] the largest low.
type stat struct {
	v          [3]float64
	writes     int64
	refreshing bool
}

// load reads the date shapes once.
func (p *planner) load(ctx context.Context, db querier) {
	if p.loaded {
		return
	}
	p.shapes = map[int64]dateShape{}
	p.writes = map[int64]int64{}
	p.stats = map[statKey]*stat{}
	rows, err := db.QueryContext(ctx, "SELECT pid, width, multi FROM idx_date_shape")
	if err != nil {
		return // not loaded: tried again next time
	}
	defer rows.Close()
	for rows.Next() {
		var pid int64
		var sh dateShape
		if rows.Scan(&pid, &sh.width, &sh.multi) == nil {
			p.shapes[pid] = sh
		}
	}
	if p.loaded = rows.Err() == nil; !p.loaded {
		return
	}
	// Statistics saved before: estimates, refreshed like the others once
	// the writes since this start exceed a quarter of them. A statistic
	// computed more versions ago than that (by history seq: versions
	// written by another process, such as a bulk import, or before a
	// crash) is left out, to be computed afresh when first needed.
	var last int64
	if err := db.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM history").Scan(&last); err != nil {
		return
	}
	srows, err := db.QueryContext(ctx, "SELECT tbl, pid, typ, v0, v1, v2, seq FROM idx_stats")
	if err != nil {
		return
	}
	defer srows.Close()
	for srows.Next() {
		var k statKey
		var v [3]float64
		var seq int64
		if srows.Scan(&k.table, &k.pid, &k.typ, &v[0], &v[1], &v[2], &seq) == nil && !staleAfter(last-seq, v[0]) {
			p.stats[k] = &stat{v: v}
		}
	}
}

// staleAfter reports whether a statistic counting n entries is out of date
// after writes more writes.
func staleAfter(writes int64, n float64) bool {
	return writes > max(500, int64(n/4))
}

// lastSeq is the history row of the latest version, for saved statistics.
func lastSeq(db *sql.DB) int64 {
	var seq int64
	_ = db.QueryRowContext(context.Background(), "SELECT coalesce(max(seq), 0) FROM history").Scan(&seq)
	return seq
}

// shape returns the shape of date parameter pid. While the shapes cannot
// be read it answers the most general shape, which is always correct.
func (p *planner) shape(ctx context.Context, db querier, pid int64) dateShape {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.load(ctx, db)
	if !p.loaded {
		return dateShape{width: math.MaxInt64, multi: true}
	}
	return p.shapes[pid]
}

// widen records a date entry of width w (multi: its resource has several
// values of pid) before it is committed. A shape it changes is marked
// dirty, to be saved by the next batch that commits (takeDirty), whether
// or not the request that widened it commits: a wider shape than the rows
// need is always correct, a narrower one is not, and another request of
// the batch may have relied on the widening.
func (p *planner) widen(ctx context.Context, db querier, pid, w int64, multi bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.load(ctx, db)
	sh := p.shapes[pid]
	if w <= sh.width && (!multi || sh.multi) {
		return
	}
	sh.width, sh.multi = max(sh.width, w), sh.multi || multi
	if p.shapes == nil {
		p.shapes = map[int64]dateShape{}
	}
	p.shapes[pid] = sh
	if p.dirty == nil {
		p.dirty = map[int64]bool{}
	}
	p.dirty[pid] = true
}

// takeDirty returns the shapes widened since they were last taken, to be
// saved in the batch about to commit; markDirty puts them back when it
// does not.
func (p *planner) takeDirty() map[int64]dateShape {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dirty) == 0 {
		return nil
	}
	out := make(map[int64]dateShape, len(p.dirty))
	for pid := range p.dirty {
		out[pid] = p.shapes[pid]
	}
	clear(p.dirty)
	return out
}

func (p *planner) markDirty(shapes map[int64]dateShape) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty == nil {
		p.dirty = map[int64]bool{}
	}
	for pid := range shapes {
		p.dirty[pid] = true
	}
}

// wrote counts one index entry written for pid.
func (p *planner) wrote(pid int64) {
	p.mu.Lock()
	if p.writes == nil {
		p.writes = map[int64]int64{}
	}
	p.writes[pid]++
	p.writes[-1]++ // all entries: the staleness of resource counts
	p.mu.Unlock()
}

// stat returns a statistic, computing it with query the first time and
// again, in the background, once the writes since exceed a quarter of it.
func (p *planner) stat(db *sql.DB, k statKey, query string, args ...any) [3]float64 {
	p.mu.Lock()
	p.load(context.Background(), db)
	if p.stats == nil {
		p.stats = map[statKey]*stat{}
	}
	if p.writes == nil {
		p.writes = map[int64]int64{}
	}
	s := p.stats[k]
	w := p.writes[k.pid]
	if s != nil {
		if staleAfter(w-s.writes, s.v[0]) && !s.refreshing {
			s.refreshing = true
			go func() {
				seq := lastSeq(db)
				v := compute(db, query, args...)
				p.mu.Lock()
				s.v, s.writes, s.refreshing = v, w, false
				save := p.save
				p.mu.Unlock()
				if save != nil {
					save(k, v, seq)
				}
			}()
		}
		v := s.v
		p.mu.Unlock()
		return v
	}
	p.mu.Unlock()
	seq := lastSeq(db)
	v := compute(db, query, args...)
	p.mu.Lock()
	p.stats[k] = &stat{v: v, writes: w}
	save := p.save
	p.mu.Unlock()
	if save != nil {
		go save(k, v, seq)
	}
	return v
}

func compute(db *sql.DB, query string, args ...any) [3]float64 {
	var v [3]sql.NullFloat64
	_ = db.QueryRowContext(context.Background(), query, args...).Scan(&v[0], &v[1], &v[2])
	return [3]float64{v[0].Float64, v[1].Float64, v[2].Float64}
}

var distinctCol = [numTables]string{tString: "text", tToken: "value", tNumber: "low", tRef: "ref_id", tURI: "value", tPair: "ref_id", tDate: "low", tComposite: "v1"}

// entries estimates the index entries of pid in table t.
func (b *builder) entries(t int, pid int64) float64 {
	return b.tableStat(t, pid)[0]
}

// avg estimates the entries per distinct value of pid in table t.
func (b *builder) avg(t int, pid int64) float64 {
	v := b.tableStat(t, pid)
	if v[1] < 1 {
		return v[0]
	}
	return max(1, v[0]/v[1])
}

func (b *builder) tableStat(t int, pid int64) [3]float64 {
	col := "pid"
	if t == tPair {
		col = "cid"
	}
	return b.r.s.plan.stat(b.r.s.rdb, statKey{table: t, pid: pid},
		"SELECT count(*), count(DISTINCT "+distinctCol[t]+"), 0 FROM "+tables[t].name+" WHERE "+col+" = ?", pid)
}

// dateStats returns the entries of date parameter pid and the range of
// their lows.
func (b *builder) dateStats(pid int64) (n float64, minLow, maxLow int64) {
	v := b.r.s.plan.stat(b.r.s.rdb, statKey{table: tDate, pid: pid}, "SELECT count(*), min(low), max(low) FROM idx_date WHERE pid = ?", pid)
	return v[0], int64(v[1]), int64(v[2])
}

// typeCount estimates the live resources of typ ("" for all).
func (b *builder) typeCount(typ string) float64 {
	if typ == "" {
		return b.r.s.plan.stat(b.r.s.rdb, statKey{table: -1, pid: -1}, "SELECT count(*), 0, 0 FROM resources WHERE deleted = 0")[0]
	}
	return b.r.s.plan.stat(b.r.s.rdb, statKey{table: -1, pid: -1, typ: typ}, "SELECT count(*), 0, 0 FROM resources WHERE type = ? AND deleted = 0", typ)[0]
}
