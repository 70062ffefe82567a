package sqlite

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/signpost-fhir/signpost/fhir/search"
)

// candidate is a way to drive a query: a set of rids (possibly with
// duplicates) that contains every match, its estimated size, and the
// conjuncts it answers exactly.
type candidate struct {
	set    frag
	est    float64
	covers []int
	unique bool // set never yields a rid twice
	keyed  bool // set's rows also carry the resource's updated, id, version and seq
	// parts are the idx_pair partitions a pair set reads (pagecache.go);
	// nil when the set reads other tables too.
	parts []string
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
	for _, pr := range b.r.s.pairsOf(q.Type) {
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
func (b *builder) pairCandidate(q *search.Query, pr search.Pair) *candidate {
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
	cid, ok := b.r.pid(q.Type, pr.Key())
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
	var parts []string
	switch e := q.Filter[refAt].(type) {
	case search.RefIn:
		var sets []string
		seen := map[search.Ref]bool{}
		for _, ref := range e.Refs {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			parts = append(parts, pagePart(cid, ref.ID))
			if ref.Type == "" {
				unique = false // a bare id may match targets of several types
			}
			head := "SELECT rid, updated, id, version, seq FROM idx_pair WHERE cid = ? AND ref_id = ?"
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
			sets = append(sets, s.sql)
			f.args = append(f.args, s.args...)
		}
		f.sql = strings.Join(sets, " UNION ALL ")
		est = float64(len(e.Refs)) * fan * frac
	case search.Chain:
		inner, innerEst := b.matchSet(e.Filter, e.Target)
		t := b.next()
		s, _ := b.dateSet(dpid, ms, "p", "SELECT p.rid, p.updated, p.id, p.version, p.seq FROM (SELECT DISTINCT rid FROM ("+inner.sql+")) x CROSS JOIN resources "+t+" ON "+t+".rid = x.rid CROSS JOIN idx_pair p ON p.cid = ? AND p.ref_id = "+
			t+".id AND p.ref_type = "+t+".type AND "+t+".type = ? AND "+t+".deleted = 0", append(inner.args, cid, e.Target)...)
		if codeAt >= 0 {
			c := b.pairCodeCond(q.Type, q.Filter[codeAt].(search.TokenIn), "p")
			s.add(c.sql, c.args...)
		}
		f = s
		est = innerEst * fan * frac
	}
	return &candidate{set: f, est: est, covers: covers, unique: unique, keyed: true, parts: parts}
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
