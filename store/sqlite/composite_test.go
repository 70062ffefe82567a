package sqlite

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// compositeQuestionnaire is a Questionnaire whose useContext holds an age
// (a quantity), a focus (a concept) and a program with a code of its own
// (p0 to p299), varying with i.
func compositeQuestionnaire(t testing.TB, reg *search.Registry, i int, now time.Time) *store.Write {
	t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Questionnaire","id":"q%05d","status":%q,"useContext":[
		{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"age"},"valueQuantity":{"value":%d,"system":"http://unitsofmeasure.org","code":"a"}},
		{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"focus"},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"c%d"}]}},
		{"code":{"system":"urn:program","code":"p%d"},"valueQuantity":{"value":%d}}]}`,
		i, []string{"active", "draft"}[i%2], i%100, i%50, i%300, i%7)
	idx, err := reg.Extract("Questionnaire", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &store.Write{Resource: &fhir.Resource{Type: "Questionnaire", ID: fmt.Sprintf("q%05d", i), Version: 1, LastUpdated: now, JSON: []byte(body)}, Index: idx}
}

// TestCompositePlans bulk-loads Questionnaires (PutAll) and checks that
// composite searches read idx_composite by parameter and code, never scan
// a stored table, and agree with the oracle.
func TestCompositePlans(t *testing.T) {
	reg := storetest.Registry(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var ws []*store.Write
	var all []*fhir.Resource
	for i := range 3000 {
		w := compositeQuestionnaire(t, reg, i, now.Add(time.Duration(i)*time.Millisecond))
		ws = append(ws, w)
		all = append(all, w.Resource)
	}
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.(*txn).PutAll(ctx, ws) }); err != nil {
		t.Fatal(err)
	}
	o, err := search.NewOracle(reg, all)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		uses  string // the index search the plan must contain
	}{
		// A selective code drives the search; a dense one (every
		// resource has an age) may be checked while walking in order.
		{"Questionnaire?context-type-quantity=p7$ge3", "idx_composite USING PRIMARY KEY (pid=? AND v1=?)"},
		{"Questionnaire?context-type-quantity=urn:program|p7$3&_sort=-_id", "idx_composite USING PRIMARY KEY (pid=? AND v1=? AND s1=?)"},
		{"Questionnaire?context-type-quantity=p7$ge3,p8$lt2", "idx_composite USING PRIMARY KEY (pid=? AND v1=?)"},
		{"Questionnaire?context-type-quantity=age$gt97", "idx_composite"},
		{"Questionnaire?context-type-value=focus$" + url.QueryEscape("http://snomed.info/sct|c7") + "&_sort=_id", "idx_composite USING PRIMARY KEY (pid=? AND v1=?)"},
		{"Questionnaire?_id=q00007&context-type-quantity=age$7", "idx_composite_rid (rid=? AND pid=?"},
		{"Questionnaire?context-type-quantity:missing=true", "idx_composite_rid (rid=? AND pid=?"},
	}
	for _, tt := range tests {
		typ, raw, _ := strings.Cut(tt.query, "?")
		params, _ := url.ParseQuery(raw)
		q, err := reg.Parse(typ, params, search.ParseOptions{Strict: true, MaxCount: 1000})
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		lines, err := reader{s: s, q: s.rdb}.explain(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		plan := strings.Join(lines, "\n")
		for _, l := range lines {
			if scan.MatchString(l) {
				t.Errorf("%s: full scan %q in plan\n%s", tt.query, l, plan)
			}
		}
		if !strings.Contains(plan, tt.uses) {
			t.Errorf("%s: plan does not use %s\n%s", tt.query, tt.uses, plan)
		}
		q.Count = 1000
		page, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		var got, want []string
		for _, r := range page.Resources {
			got = append(got, r.ID)
		}
		for _, r := range o.Search(q) {
			want = append(want, r.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d resources %.60v, oracle %d %.60v", tt.query, len(got), got, len(want), want)
		}
	}
}

// TestCompositeBeforeUpgrade: a database made before idx_composite gets the
// table when opened; its resources have no tuples until written again.
func TestCompositeBeforeUpgrade(t *testing.T) {
	reg := storetest.Registry(t)
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	put := func(s *Store, w *store.Write) {
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.Put(ctx, w) }); err != nil {
			t.Fatal(err)
		}
	}
	put(s, compositeQuestionnaire(t, reg, 7, now))
	// Such a database also predates the index digest.
	if _, err := s.wdb.Exec("DROP TABLE idx_composite; ALTER TABLE resources DROP COLUMN digest"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	search := func() int {
		q, err := reg.Parse("Questionnaire", url.Values{"context-type-quantity": {"age$7"}}, search.ParseOptions{Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		page, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Resources)
	}
	if n := search(); n != 0 {
		t.Errorf("before the resource is written again: %d matches, want 0 (no tuples yet)", n)
	}
	w := compositeQuestionnaire(t, reg, 7, now.Add(time.Second))
	w.Resource.Version = 2
	put(s, w)
	if n := search(); n != 1 {
		t.Errorf("after the resource is written again: %d matches, want 1", n)
	}
}

// TestCompositeEntryRefused: entries the table cannot hold fail the write
// with the parameter named, instead of being stored wrongly.
func TestCompositeEntryRefused(t *testing.T) {
	tok := search.Entry{Param: "c", Type: search.Token, Value: "x"}
	tests := []struct {
		e    search.Entry
		want string
	}{
		{search.Entry{Param: "four", Type: search.Composite, Components: []search.Entry{tok, tok, tok, tok}}, "four has 4 components"},
		{search.Entry{Param: "empty", Type: search.Composite}, "empty has 0 components"},
		{search.Entry{Param: "near", Type: search.Composite, Components: []search.Entry{tok, {Param: "n", Type: search.Special}}}, "component n of type \"special\""},
	}
	for _, tt := range tests {
		_, err := appendComposite(nil, 1, &tt.e, 1)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.e.Param, err, tt.want)
		}
	}
}
