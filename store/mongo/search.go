package mongo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// column is one key of a search's order.
type column struct {
	field string // the value compared
	has   string // for a parameter's sort value: the field present when it is ("" = always)
	desc  bool
}

// columns returns q's order: its _sort keys (a parameter's values from
// resDoc.SK; resources without one after all others in both directions),
// then lastUpdated, id and, on a system-level search, type.
func columns(q *search.Query) []column {
	var cols []column
	seen := map[string]bool{}
	add := func(c column) {
		if !seen[c.field] {
			seen[c.field] = true
			cols = append(cols, c)
		}
	}
	for _, k := range q.Sort {
		switch k.Param {
		case "_id":
			add(column{field: "id", desc: k.Desc})
		case "_lastUpdated":
			add(column{field: "lu", desc: k.Desc})
		default:
			which := "a"
			if k.Desc {
				which = "d"
			}
			f := "sk." + skField(k.Param)
			add(column{field: f + "." + which, has: f + ".h", desc: k.Desc})
		}
	}
	add(column{field: "lu"})
	add(column{field: "id"})
	if q.Type == "" {
		add(column{field: "type"})
	}
	return cols
}

// sortDoc is the MongoDB sort of cols, reversed when back.
func sortDoc(cols []column, back bool) bson.D {
	dir := func(desc bool) int {
		if desc != back {
			return -1
		}
		return 1
	}
	var d bson.D
	for _, c := range cols {
		if c.has != "" {
			// true (present) sorts after null (absent): descending puts it first.
			d = append(d, bson.E{Key: c.has, Value: dir(true)})
		}
		d = append(d, bson.E{Key: c.field, Value: dir(c.desc)})
	}
	return d
}

// cursor is a position in a search's order: the column values of one
// row (nil for a sort value the row has none of), and whether the page
// wanted lies before it.
type cursor struct {
	Vals bson.A `bson:"v"`
	Back bool   `bson:"b,omitempty"`
}

func (c *cursor) encode() string {
	b, err := bson.Marshal(c)
	if err != nil {
		panic(err) // values read from BSON always marshal
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, n int) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := fhir.Errorf(fhir.Invalid, "invalid", "_cursor", "the paging cursor is not valid for this search")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var c cursor
	if err := bson.Unmarshal(b, &c); err != nil || len(c.Vals) != n {
		return nil, bad
	}
	return &c, nil
}

// rowValues reads the column values of a row.
func rowValues(cols []column, raw bson.Raw) bson.A {
	out := make(bson.A, len(cols))
	for i, c := range cols {
		v, err := raw.LookupErr(splitPath(c.field)...)
		if err != nil {
			continue
		}
		var x any
		if err := v.Unmarshal(&x); err == nil {
			out[i] = x
		}
	}
	return out
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}

// after is the filter of the rows strictly after (back: before) the
// position vals in the order of cols.
func after(cols []column, vals bson.A, back bool) bson.D {
	var rec func(i int) bson.D
	rec = func(i int) bson.D {
		c, v := cols[i], vals[i]
		op := "$gt"
		if c.desc != back {
			op = "$lt"
		}
		var beyond, equal bson.D
		switch {
		case c.has != "" && v == nil:
			if back {
				beyond = bson.D{{Key: c.has, Value: true}}
			}
			equal = bson.D{{Key: c.has, Value: bson.D{{Key: "$exists", Value: false}}}}
		case c.has != "":
			beyond = bson.D{{Key: c.field, Value: bson.D{{Key: op, Value: v}}}}
			if !back {
				beyond = or([]bson.D{beyond, {{Key: c.has, Value: bson.D{{Key: "$exists", Value: false}}}}})
			}
			equal = bson.D{{Key: c.field, Value: v}}
		default:
			beyond = bson.D{{Key: c.field, Value: bson.D{{Key: op, Value: v}}}}
			equal = bson.D{{Key: c.field, Value: v}}
		}
		if i == len(cols)-1 {
			if beyond == nil {
				return matchNothing
			}
			return beyond
		}
		var alts []bson.D
		if beyond != nil {
			alts = append(alts, beyond)
		}
		return or(append(alts, and(equal, rec(i+1))))
	}
	return rec(0)
}

// filter returns the filter of q's matches.
func (r reader) filter(q *search.Query) (bson.D, error) {
	base := bson.D{{Key: "del", Value: false}}
	switch {
	case q.Type != "":
		base = bson.D{{Key: "type", Value: q.Type}, {Key: "del", Value: false}}
	case len(q.Types) > 0:
		base = bson.D{{Key: "type", Value: bson.D{{Key: "$in", Value: strIn(q.Types)}}}, {Key: "del", Value: false}}
	}
	t := &translator{r: r, typ: q.Type, now: nowMicros()}
	conds := []bson.D{base}
	for _, e := range q.Filter {
		conds = append(conds, search.Visit[bson.D](e, t))
	}
	if t.err != nil {
		return nil, t.err
	}
	return and(conds...), nil
}

// Search implements store.Reader.
func (r reader) Search(_ context.Context, q *search.Query) (*store.Page, error) {
	cols := columns(q)
	cur, err := decodeCursor(q.Cursor, len(cols))
	if err != nil {
		return nil, err
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	f, err := r.filter(q)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", q.Type, err)
	}
	page := &store.Page{Total: -1}
	if q.Summary != search.SummaryCount {
		if err := r.rows(f, cols, cur, count, page); err != nil {
			return nil, fmt.Errorf("search %s: %w", q.Type, err)
		}
	}
	switch q.Total {
	case search.TotalAccurate, search.TotalEstimate:
		if q.Total == search.TotalEstimate && cur == nil && page.Next == "" && q.Summary != search.SummaryCount {
			page.Total = len(page.Resources)
			break
		}
		n, err := r.c(colResources).CountDocuments(r.ctx, f)
		if err != nil {
			return nil, fmt.Errorf("search %s: counting: %w", q.Type, err)
		}
		page.Total = int(n)
	}
	return page, nil
}

// rows reads one page of the matches of f after (or before) cur.
func (r reader) rows(f bson.D, cols []column, cur *cursor, count int, page *store.Page) error {
	back := cur != nil && cur.Back
	if cur != nil {
		f = and(f, after(cols, cur.Vals, back))
	}
	c, err := r.c(colResources).Find(r.ctx, f, options.Find().SetSort(sortDoc(cols, back)).SetLimit(int64(count+1)).
		SetProjection(bson.D{{Key: "ix", Value: 0}, {Key: "dv", Value: 0}}))
	if err != nil {
		return err
	}
	var raws []bson.Raw
	if err := c.All(r.ctx, &raws); err != nil {
		return err
	}
	more := len(raws) > count
	if more {
		raws = raws[:count]
	}
	if back {
		slices.Reverse(raws)
	}
	for _, raw := range raws {
		var d resDoc
		if err := bson.Unmarshal(raw, &d); err != nil {
			return err
		}
		res, err := d.resource()
		if err != nil {
			return err
		}
		page.Resources = append(page.Resources, res)
	}
	if len(raws) == 0 {
		if cur != nil && !back {
			page.Prev = (&cursor{Vals: cur.Vals, Back: true}).encode()
		}
		if back {
			page.Next = (&cursor{Vals: cur.Vals}).encode()
		}
		return nil
	}
	first, last := rowValues(cols, raws[0]), rowValues(cols, raws[len(raws)-1])
	if back {
		page.Next = (&cursor{Vals: last}).encode()
		if more {
			page.Prev = (&cursor{Vals: first, Back: true}).encode()
		}
		return nil
	}
	if more {
		page.Next = (&cursor{Vals: last}).encode()
	}
	if cur != nil {
		page.Prev = (&cursor{Vals: first, Back: true}).encode()
	}
	return nil
}

// guardKey names the guard document of a search run in a transaction: the
// same search (type and filter) gives the same key.
func guardKey(q *search.Query) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%v|%#v", q.Type, q.Types, q.Filter))
	return "search:" + hex.EncodeToString(h[:16])
}
