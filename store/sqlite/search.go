package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
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

// limitParam is the LIMIT of a statement whose row count is bound as a
// parameter. SQLite (3.54 here) reads the value bound to a bare "LIMIT ?"
// when it plans the statement, and plans it again whenever a different
// value is bound: the lookups of the PAS adapter, one search shape asked
// in turn for pages of 3 and of 101, prepared it again on every run
// (BenchmarkLimitShapes: 26–29 µs a run against 12–13). Bound into an
// expression, the count is not read at planning, and one plan serves
// every count. Every LIMIT the store binds uses it; TestLimitKeepsPlans
// checks searches in writes and on the read pool.
const limitParam = " LIMIT ?+0"

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
// on narrow rows (ids, times, sort keys, history seq); rows then takes
// the page's bodies from the body cache or by seq (fillBodies), so
// candidates that do not make the page are never loaded or sorted with
// their JSON.
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
	page.add(" ORDER BY " + orderBy(cols, desc, nk, back) + limitParam)
	page.args = append(page.args, count+1)

	var keyCols string
	for i := range nk {
		keyCols += ", g.k" + strconv.Itoa(i)
	}
	var query frag
	query.add("SELECT g.type, g.id, g.version, g.updated, g.seq"+keyCols+" FROM ("+page.sql+") g ORDER BY "+
		orderBy(prefixed("g"), desc, nk, back), page.args...)
	return query
}

// keyedPage reports whether q's page can be answered from the driver's own
// rows: the driver answers every condition exactly, never repeats a
// resource and carries what the page needs of it (updated, id, version,
// seq), and q has no _sort. Then the page never reads resources.
func (p *queryPlan) keyedPage(q *search.Query) bool {
	d := p.driver
	return d != nil && d.keyed && d.unique && len(q.Sort) == 0 && q.Type != "" && len(d.covers) == len(q.Filter)
}

// keyedRowsSQL is rowsSQL for a keyed page: the driver's rows are the
// page's, in its order. A deleted resource has no index rows (its
// tombstone removes them in the same transaction), so none is checked.
func keyedRowsSQL(q *search.Query, p *queryPlan, cur *cursor, count int) frag {
	back := cur != nil && cur.back
	cols := []string{"m.updated", "m.id", "m.type"}
	desc := []bool{false, false, false}
	page := frag{"SELECT m.type, m.id, m.version, m.updated, m.seq FROM (SELECT updated, id, version, seq, ? AS type FROM (" +
		p.driver.set.sql + ")) m WHERE 1", append([]any{q.Type}, p.driver.set.args...)}
	if cur != nil {
		c := cursorCond(cols, desc, 0, cur.values(), back)
		page.add(" AND ")
		page.add(c.sql, c.args...)
	}
	page.add(" ORDER BY "+orderBy(cols, desc, 0, back)+limitParam, count+1)
	return page
}

// rows reads one page.
func (b *builder) rows(ctx context.Context, q *search.Query, p *queryPlan, cur *cursor, count int, page *store.Page) error {
	nk := len(q.Sort)
	var query frag
	if p.keyedPage(q) {
		query = keyedRowsSQL(q, p, cur, count)
	} else {
		query = b.rowsSQL(q, p, cur, count)
	}
	query = numbered(query)
	var keys [][]any
	var seqs []int64
	add := func(r pageRow, k []any) {
		page.Resources = append(page.Resources, &fhir.Resource{Type: r.typ, ID: r.id, Version: r.version, LastUpdated: time.UnixMicro(r.updated).UTC()})
		keys = append(keys, k)
		seqs = append(seqs, r.seq)
	}
	pages := b.r.s.pages
	if _, pool := b.r.q.(*sql.DB); !pool || !p.keyedPage(q) || p.driver.parts == nil {
		pages = nil // not a page the cache may keep: see pagecache.go
	}
	var key string
	var since cachedPage
	if pages != nil {
		key = pageKey(query)
		if rs, ok := pages.get(key); ok {
			for _, r := range rs {
				add(r, make([]any, nk))
			}
			return b.finish(ctx, q, cur, count, page, keys, seqs)
		}
		since = pages.since(p.driver.parts)
	}
	rows, done, err := b.r.queryRows(ctx, query)
	if err != nil {
		return err
	}
	defer done()
	var cached []pageRow
	for rows.Next() {
		var r pageRow
		k := make([]any, nk)
		dest := []any{&r.typ, &r.id, &r.version, &r.updated, &r.seq}
		for i := range k {
			dest = append(dest, &k[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		add(r, k)
		if pages != nil {
			cached = append(cached, r)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	done()
	if pages != nil {
		pages.put(key, since, cached)
	}
	return b.finish(ctx, q, cur, count, page, keys, seqs)
}

// finish completes the page of rows: it cuts it to count, fills the
// bodies and sets the paging cursors.
func (b *builder) finish(ctx context.Context, q *search.Query, cur *cursor, count int, page *store.Page, keys [][]any, seqs []int64) error {
	back := cur != nil && cur.back
	more := len(page.Resources) > count
	if more {
		page.Resources, keys, seqs = page.Resources[:count], keys[:count], seqs[:count]
	}
	if err := b.r.fillBodies(ctx, page.Resources, seqs); err != nil {
		return err
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
