package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Base is the server base the suite's registry treats as local.
const Base = "https://signpost.test/fhir"

var (
	regOnce sync.Once
	reg     *search.Registry
	regErr  error
)

// Registry returns the search registry the suite indexes with: the
// embedded R4 and Signpost definitions, Europe/London, base Base.
func Registry(t testing.TB) *search.Registry {
	t.Helper()
	regOnce.Do(func() {
		reg, regErr = search.NewRegistry(conformance.SearchParameters(), search.Options{
			StructureDefinitions: conformance.StructureDefinitions(),
			Terminology:          conformance.Terminology(),
			ResourceTypes:        conformance.Types().Writable,
			Base:                 Base,
		})
	})
	if regErr != nil {
		t.Fatalf("search registry: %v", regErr)
	}
	return reg
}

// loader writes resources with their index entries, several per Update,
// and keeps the current versions for the oracle.
type loader struct {
	t    testing.TB
	s    store.Store
	reg  *search.Registry
	cur  map[string]*fhir.Resource // "Type/id" → current version
	keys []string                  // first-write order
}

func newLoader(t testing.TB, s store.Store) *loader {
	return &loader{t: t, s: s, reg: Registry(t), cur: map[string]*fhir.Resource{}}
}

// write stores the next version of each resource (body nil: a delete),
// all in one Update. A resource's JSON is as served: the extensions its
// type's parameters are derived from (search.Param.Derived, as synth's
// services carry waiting times) are stored as derived values
// (store.DeriverTx) beside a body without them; a store without derived
// values gets neither, and the oracle's copy loses them too.
func (l *loader) write(at time.Time, rs ...*fhir.Resource) {
	l.t.Helper()
	var ws []*store.Write
	derived := map[*store.Write][]store.DerivedValue{}
	_, canDerive := l.s.(store.Deriver)
	for _, r := range rs {
		key := r.Reference()
		r.Version = 1
		if old := l.cur[key]; old != nil {
			r.Version = old.Version + 1
		} else {
			l.keys = append(l.keys, key)
		}
		if r.LastUpdated.IsZero() {
			r.LastUpdated = at
		}
		w := &store.Write{Resource: r}
		if r.JSON == nil {
			r.Deleted = true
		} else {
			body, vals := splitDerived(l.t, l.reg, r)
			if !canDerive {
				r.JSON, vals = body, nil
			}
			stored := *r
			stored.JSON = body
			w.Resource = &stored
			idx, err := l.reg.Extract(r.Type, body)
			if err != nil {
				l.t.Fatalf("extract %s: %v", key, err)
			}
			w.Index = idx
			derived[w] = vals
		}
		ws = append(ws, w)
	}
	err := l.s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, w := range ws {
			if err := tx.Put(ctx, w); err != nil {
				return fmt.Errorf("put %s v%d: %w", w.Resource.Reference(), w.Resource.Version, err)
			}
			for _, v := range derived[w] {
				if err := tx.(store.DeriverTx).PutDerived(ctx, w.Resource.Type, w.Resource.ID, v); err != nil {
					return fmt.Errorf("derived %s of %s: %w", v.Name, w.Resource.Reference(), err)
				}
			}
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	for _, r := range rs {
		l.cur[r.Reference()] = r
	}
}

// splitDerived splits the JSON of r, as served, into the body to store
// and the derived values to keep beside it (with their index entries).
func splitDerived(t testing.TB, reg *search.Registry, r *fhir.Resource) ([]byte, []store.DerivedValue) {
	t.Helper()
	names := reg.DerivedExtensions(r.Type)
	if len(names) == 0 {
		return r.JSON, nil
	}
	var v struct {
		Extension []json.RawMessage `json:"extension"`
	}
	if err := json.Unmarshal(r.JSON, &v); err != nil {
		t.Fatalf("%s: %v", r.Reference(), err)
	}
	var vals []store.DerivedValue
	for _, e := range v.Extension {
		var head struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(e, &head)
		if !slices.Contains(names, head.URL) || slices.ContainsFunc(vals, func(x store.DerivedValue) bool { return x.Name == head.URL }) {
			continue
		}
		idx, err := reg.ExtractDerived(r.Type, e)
		if err != nil {
			t.Fatalf("%s: %v", r.Reference(), err)
		}
		vals = append(vals, store.DerivedValue{Name: head.URL, Value: e, Index: idx})
	}
	body, err := fhir.ReplaceExtensions(r.JSON, names, nil)
	if err != nil {
		t.Fatalf("%s: %v", r.Reference(), err)
	}
	return body, vals
}

// current lists the current versions in first-write order.
func (l *loader) current() []*fhir.Resource {
	var out []*fhir.Resource
	for _, k := range l.keys {
		out = append(out, l.cur[k])
	}
	return out
}

// parse parses a "Type?query" search strictly.
func parse(t testing.TB, reg *search.Registry, qs string) *search.Query {
	t.Helper()
	typ, raw, _ := strings.Cut(qs, "?")
	params, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	q, err := reg.Parse(typ, params, search.ParseOptions{Strict: true, MaxCount: 1000})
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	return q
}

// pages runs q page by page (following Next) and returns every id in the
// order seen, calling between after each page but the last.
func pages(t testing.TB, s store.Reader, q *search.Query, between func(page int)) []string {
	t.Helper()
	var got []string
	q.Cursor = ""
	for n := 0; ; n++ {
		if n > 10000 {
			t.Fatalf("paging does not end")
		}
		page, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("page %d: %v", n, err)
		}
		got = append(got, ids(page.Resources)...)
		if page.Next == "" {
			return got
		}
		if between != nil {
			between(n)
		}
		q.Cursor = page.Next
	}
}

func patient(id, family string) *fhir.Resource {
	return &fhir.Resource{Type: "Patient", ID: id,
		JSON: []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":%q}]}`, id, family))}
}

// testSearchPagingWhileChanging pages through Patients while other writes
// insert, update and delete between pages: every resource that was not
// touched appears exactly once and in order. (A resource updated after it
// was seen may be seen again where its new values sort.)
func testSearchPagingWhileChanging(t *testing.T, s store.Store) {
	for _, sortBy := range []string{"", "_id", "family", "-family,_id"} {
		t.Run("sort="+sortBy, func(t *testing.T) {
			l := newLoader(t, s)
			t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
			var rs []*fhir.Resource
			for i := range 40 {
				rs = append(rs, patient(fmt.Sprintf("%s-%02d", strings.ReplaceAll(sortBy, ",", ""), i), fmt.Sprintf("fam%02d", i%13)))
				rs[i].LastUpdated = t0.Add(time.Duration(i/3) * time.Second)
			}
			prefix := strings.ReplaceAll(sortBy, ",", "")
			l.write(t0, rs...)
			qs := "Patient?_count=7&family=fam"
			if sortBy != "" {
				qs += "&_sort=" + sortBy
			}
			q := parse(t, l.reg, qs)
			touched := map[string]bool{}
			now := t0.Add(time.Hour)
			got := pages(t, s, q, func(page int) {
				now = now.Add(time.Second)
				a, b := fmt.Sprintf("%s-%02d", prefix, page*5), fmt.Sprintf("%s-%02d", prefix, 39-page*4)
				if page%2 == 0 {
					l.write(now, patient(a, "fam05"), patient(b, "fam99"))
				} else {
					l.write(now, &fhir.Resource{Type: "Patient", ID: a}, patient(fmt.Sprintf("%s-new%d", prefix, page), "fam00"))
				}
				touched[a], touched[b] = true, true
			})
			// Unchanged resources, in the order the search had them.
			o, err := search.NewOracle(l.reg, l.current())
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, r := range o.Search(q) {
				if !touched[r.ID] && !strings.Contains(r.ID, "new") {
					want = append(want, r.ID)
				}
			}
			var gotUnchanged []string
			for _, id := range got {
				if !touched[id] && !strings.Contains(id, "new") {
					gotUnchanged = append(gotUnchanged, id)
				}
			}
			if !slices.Equal(gotUnchanged, want) {
				t.Errorf("unchanged resources seen\n%v\nwant\n%v", gotUnchanged, want)
			}
			// Clean up for the next sort order.
			var dels []*fhir.Resource
			for _, r := range l.current() {
				if !r.Deleted {
					dels = append(dels, &fhir.Resource{Type: r.Type, ID: r.ID})
				}
			}
			l.write(now.Add(time.Minute), dels...)
		})
	}
}

// testSearchPrevPages walks to the last page and back through Prev: the
// pages backwards are the pages forwards, reversed.
func testSearchPrevPages(t *testing.T, s store.Store) {
	l := newLoader(t, s)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var rs []*fhir.Resource
	for i := range 23 {
		rs = append(rs, patient(fmt.Sprintf("p%02d", i), fmt.Sprintf("fam%d", i%4)))
		rs[i].LastUpdated = t0.Add(time.Duration(i/2) * time.Second)
	}
	rs = append(rs, &fhir.Resource{Type: "Patient", ID: "nofamily", JSON: []byte(`{"resourceType":"Patient","id":"nofamily"}`)})
	l.write(t0, rs...)
	for _, qs := range []string{"Patient?_count=5", "Patient?_count=4&_sort=family", "Patient?_count=5&_sort=-family,-_id", "Patient?_count=1&_sort=-_lastUpdated"} {
		q := parse(t, l.reg, qs)
		ctx := context.Background()
		var forward [][]string
		var last *store.Page
		for {
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", qs, err)
			}
			if len(forward) == 0 && page.Prev != "" {
				t.Errorf("%s: first page has a previous link", qs)
			}
			forward = append(forward, ids(page.Resources))
			last = page
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		var backward [][]string
		for page := last; page.Prev != ""; {
			q.Cursor = page.Prev
			var err error
			if page, err = s.Search(ctx, q); err != nil {
				t.Fatalf("%s: %v", qs, err)
			}
			backward = append(backward, ids(page.Resources))
		}
		slices.Reverse(backward)
		if fmt.Sprint(backward) != fmt.Sprint(forward[:len(forward)-1]) {
			t.Errorf("%s: pages backwards %v, forwards %v", qs, backward, forward[:len(forward)-1])
		}
	}
}

// testSearchTotal checks _total: none gives -1, accurate the number of
// matches on every page, estimate a non-negative number (exact when all
// matches fit on the page).
func testSearchTotal(t *testing.T, s store.Store) {
	l := newLoader(t, s)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var rs []*fhir.Resource
	for i := range 12 {
		rs = append(rs, patient(fmt.Sprintf("p%02d", i), fmt.Sprintf("fam%d", i%3)))
	}
	l.write(t0, rs...)
	ctx := context.Background()
	tests := []struct {
		qs      string
		want    int
		atLeast bool
	}{
		{"Patient?_total=none&_count=5", -1, false},
		{"Patient?_total=accurate&_count=5", 12, false},
		{"Patient?_total=accurate&family=fam1&_count=2", 4, false},
		{"Patient?_total=accurate&family=nobody", 0, false},
		{"Patient?_total=estimate&family=fam2", 4, false},
		{"Patient?_total=estimate&_count=3", 0, true},
	}
	for _, tt := range tests {
		q := parse(t, l.reg, tt.qs)
		page, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", tt.qs, err)
		}
		if got := page.Total; (tt.atLeast && got < tt.want) || (!tt.atLeast && got != tt.want) {
			t.Errorf("%s: total %d, want %d", tt.qs, got, tt.want)
		}
		if q.Total == search.TotalAccurate && page.Next != "" {
			q.Cursor = page.Next
			if page, err = s.Search(ctx, q); err != nil || page.Total != tt.want {
				t.Errorf("%s, second page: total %d, %v; want %d", tt.qs, page.Total, err, tt.want)
			}
		}
	}
}

func ids(rs []*fhir.Resource) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}
