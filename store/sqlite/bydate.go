package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

var _ store.DateOrderer = (*Store)(nil)

// SearchByDate implements store.DateOrderer.
func (s *Store) SearchByDate(ctx context.Context, q *search.Query, param string) (*store.Page, bool, error) {
	return reader{s: s, q: s.rdb}.SearchByDate(ctx, q, param)
}

// maxDateArms bounds the pair scans one SearchByDate merges (one per
// referenced resource); with more references it walks the date index.
const maxDateArms = 100

// dateCursorPrefix starts SearchByDate's cursors (Search's never contain
// a dot), so that each method knows the other's.
const dateCursorPrefix = "d."

// noDates is an empty source of (low, high, rid) rows.
var noDates = frag{sql: "SELECT NULL AS low, NULL AS high, NULL AS rid WHERE 0"}

// datePos is a position in SearchByDate's order: an index row's low,
// high and resource row.
type datePos struct{ low, high, rid int64 }

func (c datePos) encode() string {
	b := binary.AppendVarint(nil, c.low)
	b = binary.AppendVarint(b, c.high)
	b = binary.AppendVarint(b, c.rid)
	return dateCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeDatePos(s string) (*datePos, error) {
	bad := fhir.Errorf(fhir.Invalid, "invalid", search.CursorParam, "the paging cursor is not valid for this search")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, dateCursorPrefix))
	if err != nil {
		return nil, bad
	}
	var v [3]int64
	for i := range v {
		x, n := binary.Varint(raw)
		if n <= 0 {
			return nil, bad
		}
		v[i], raw = x, raw[n:]
	}
	if len(raw) != 0 {
		return nil, bad
	}
	return &datePos{v[0], v[1], v[2]}, nil
}

// SearchByDate implements store.DateOrderer for a single-valued date
// parameter that q has conditions on. The matches are read in the order
// of an index whose key starts with the date's low bound and stop after
// a page:
//
//   - when param is the date of a declared pair (Slot start with
//     schedule) and q names the pair's references (typed, local, the
//     reference parameter single-valued), one range scan of idx_pair per
//     reference, merged by (low, high, rid): the slots of three schedules
//     from a day on, in start order, read 21 rows for a page of 20;
//   - otherwise a walk of idx_date over the date conditions' range.
//
// Every other condition is probed per row, as Search probes what its
// driver leaves. Equal lows come in (high, resource row) order. It
// declines (ok false) when another condition is so selective that Search,
// driven by it and sorting what it finds, reads fewer rows.
func (r reader) SearchByDate(ctx context.Context, q *search.Query, param string) (*store.Page, bool, error) {
	query, count, ok, err := r.byDateQuery(ctx, q, param)
	if !ok || err != nil {
		return nil, false, err
	}
	if query.sql == "" {
		return &store.Page{Total: -1}, true, nil
	}
	page, err := r.datePage(ctx, query, count)
	if err != nil {
		return nil, false, fmt.Errorf("search %s by %s: %w", q.Type, param, err)
	}
	return page, true, nil
}

// byDateQuery renders SearchByDate's query for q (no SQL when nothing can
// match) and its page size; ok is false when SearchByDate declines.
func (r reader) byDateQuery(ctx context.Context, q *search.Query, param string) (query frag, count int, ok bool, err error) {
	var cur *datePos
	if q.Cursor != "" {
		if !strings.HasPrefix(q.Cursor, dateCursorPrefix) {
			return frag{}, 0, false, nil // Search's
		}
		c, err := decodeDatePos(q.Cursor)
		if err != nil {
			return frag{}, 0, false, err
		}
		cur = c
	}
	decline := func() (frag, int, bool, error) {
		if cur != nil {
			return frag{}, 0, false, fhir.Errorf(fhir.Invalid, "invalid", search.CursorParam,
				"the paging cursor is no longer valid for this search: %s of %s now has several values", param, q.Type)
		}
		return frag{}, 0, false, nil
	}
	if q.Type == "" || len(q.Sort) > 0 || q.Summary == search.SummaryCount {
		return decline()
	}
	var dateIdx []int
	var ms []search.DateMatch
	for i, e := range q.Filter {
		if d, ok := e.(search.DateMatch); ok && d.Param == param {
			dateIdx = append(dateIdx, i)
			ms = append(ms, d)
		}
	}
	if len(ms) == 0 {
		return decline()
	}
	dpid, ok := r.pid(q.Type, param)
	if !ok { // never indexed: nothing has a value to match
		return frag{}, 0, true, nil
	}
	if r.s.plan.shape(ctx, r.s.rdb, dpid).multi {
		return decline()
	}
	count = q.Count
	if count <= 0 {
		count = 50
	}
	b := &builder{r: r, ctx: ctx}
	src, est, covers := b.pairArms(q, param, dpid, ms, dateIdx, cur)
	if covers == nil {
		src, est = b.dateSet(dpid, ms, "", "SELECT low, high, rid FROM idx_date WHERE pid = ?", dpid)
		if cur != nil {
			src.add(" AND low >= ? AND (low, high, rid) > (?, ?, ?)", cur.low, cur.low, cur.high, cur.rid)
		}
		covers = dateIdx
	}
	if cur == nil {
		// Reading in order costs about (count+1)·est/matches rows;
		// Search reads its driver's rows and sorts the matches.
		p, err := b.plan(q, count)
		if err != nil {
			return frag{}, 0, false, err
		}
		if p.driver != nil && float64(count+1)*est/max(p.result, 1) > 4*p.driver.est+float64(count) {
			return frag{}, 0, false, nil
		}
	}
	query = frag{"SELECT r.type, r.id, r.version, r.updated, h.body, m.low, m.high, m.rid FROM (" + src.sql +
		") m CROSS JOIN resources r ON r.rid = m.rid CROSS JOIN history h ON h.seq = r.seq WHERE r.deleted = 0", src.args}
	for i, e := range q.Filter {
		if slices.Contains(covers, i) {
			continue
		}
		c, err := b.probe(e, q.Type, "r")
		if err != nil {
			return frag{}, 0, false, err
		}
		query.add(" AND "+c.sql, c.args...)
	}
	query.add(" ORDER BY m.low, m.high, m.rid LIMIT ?", count+1)
	return query, count, true, nil
}

// pairArms renders the merged pair scans for q when param is the date of
// a pair whose reference q names: one arm per distinct reference, each
// yielding (low, high, rid) in index order after cur. covers lists the
// conditions the arms answer exactly; nil when no pair applies.
func (b *builder) pairArms(q *search.Query, param string, dpid int64, ms []search.DateMatch, dateIdx []int, cur *datePos) (frag, float64, []int) {
	for _, pr := range pairsOf(q.Type) {
		if pr.Date != param {
			continue
		}
		refAt, codeAt := -1, -1
		for i, e := range q.Filter {
			switch e := e.(type) {
			case search.RefIn:
				if e.Param == pr.Ref && refAt < 0 {
					refAt = i
				}
			case search.TokenIn:
				if pr.Code != "" && e.Param == pr.Code && !e.HasSystem && len(e.Codes) > 0 && codeAt < 0 {
					codeAt = i
				}
			}
		}
		if refAt < 0 {
			continue
		}
		refs := q.Filter[refAt].(search.RefIn).Refs
		rpid, _ := b.r.pid(q.Type, pr.Ref)
		if len(refs) > maxDateArms || b.r.s.plan.shape(b.ctx, b.r.s.rdb, rpid).multi {
			continue // a resource could come from two arms
		}
		typed := true
		for _, ref := range refs {
			typed = typed && ref.Type != "" && ref.URL == ""
		}
		if !typed {
			continue
		}
		covers := append([]int{refAt}, dateIdx...)
		if codeAt >= 0 {
			covers = append(covers, codeAt)
		}
		cid, ok := b.r.pid(q.Type, pr.code())
		if !ok {
			return noDates, 0, covers
		}
		var f frag
		var parts []string
		seen := map[search.Ref]bool{}
		for _, ref := range refs {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			s, _ := b.dateSet(dpid, ms, "", "SELECT low, high, rid FROM idx_pair WHERE cid = ? AND ref_id = ? AND ref_type = ?", cid, ref.ID, ref.Type)
			if codeAt >= 0 {
				c := b.pairCodeCond(q.Type, q.Filter[codeAt].(search.TokenIn), "idx_pair")
				s.add(c.sql, c.args...)
			}
			if cur != nil {
				s.add(" AND low >= ? AND (low, high, rid) > (?, ?, ?)", cur.low, cur.low, cur.high, cur.rid)
			}
			parts = append(parts, s.sql)
			f.args = append(f.args, s.args...)
		}
		f.sql = strings.Join(parts, " UNION ALL ")
		// As pairCandidate estimates: the pair rows of the references
		// in the date window.
		_, dEst := b.dateSet(dpid, ms, "", "")
		frac := 1.0
		if n := b.entries(tDate, dpid); n > 0 {
			frac = min(1, dEst/n)
		}
		return f, float64(len(seen)) * b.avg(tPair, cid) * frac, covers
	}
	return frag{}, 0, nil
}

// datePage runs a SearchByDate query and cuts its page.
func (r reader) datePage(ctx context.Context, query frag, count int) (*store.Page, error) {
	var rows *sql.Rows
	var err error
	if db, ok := r.q.(*sql.DB); ok {
		var st *sql.Stmt
		var cached bool
		if st, cached, err = r.s.plan.prepared(ctx, db, query.sql); err == nil {
			if !cached {
				defer st.Close()
			}
			rows, err = st.QueryContext(ctx, query.args...)
		}
	} else {
		rows, err = r.q.QueryContext(ctx, query.sql, query.args...)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &store.Page{Total: -1}
	var last datePos
	for rows.Next() {
		if len(page.Resources) == count {
			page.Next = last.encode()
			break
		}
		res := &fhir.Resource{}
		var updated int64
		if err := rows.Scan(&res.Type, &res.ID, &res.Version, &updated, &res.JSON, &last.low, &last.high, &last.rid); err != nil {
			return nil, err
		}
		res.LastUpdated = time.UnixMicro(updated).UTC()
		page.Resources = append(page.Resources, res)
	}
	return page, rows.Err()
}
