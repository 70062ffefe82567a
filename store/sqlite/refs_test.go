package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// refEntry is a reference index entry of param to typ/id.
func refEntry(param, typ, id string) search.Entry {
	return search.Entry{Param: param, Type: search.Reference, RefType: typ, RefID: id, Value: typ + "/" + id}
}

// TestIndexedRefs: the references read from idx_ref are those written,
// per parameter or all, without canonical-only entries, with the current
// version; unknown ids are absent, and a parameter never indexed gives nil
// (the caller extracts).
func TestIndexedRefs(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(id string, version int64, index ...search.Entry) {
		t.Helper()
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Slot", ID: id, Version: version, LastUpdated: time.Now(),
				JSON: []byte(`{"resourceType":"Slot","id":"` + id + `"}`)}, Index: index})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("a", 1, refEntry("schedule", "Schedule", "s1"))
	put("a", 2, refEntry("schedule", "Schedule", "s2"), refEntry("service-type-ref", "HealthcareService", "h1"),
		search.Entry{Param: "schedule", Type: search.Reference, Value: "https://example.org/x"})
	put("b", 1, search.Entry{Param: "status", Type: search.Token, Value: "free"})

	tests := []struct {
		param string
		ids   []string
		want  map[string]store.IndexedRefs
	}{
		{"schedule", []string{"a", "b", "zz"}, map[string]store.IndexedRefs{
			"a": {Version: 2, Refs: []search.Ref{{Type: "Schedule", ID: "s2"}}},
			"b": {Version: 1},
		}},
		{"*", []string{"a"}, map[string]store.IndexedRefs{
			"a": {Version: 2, Refs: []search.Ref{{Type: "HealthcareService", ID: "h1"}, {Type: "Schedule", ID: "s2"}}},
		}},
		{"never-indexed", []string{"a"}, nil},
	}
	for _, tt := range tests {
		got, err := s.IndexedRefs(ctx, "Slot", tt.ids, tt.param)
		if err != nil {
			t.Fatalf("IndexedRefs(%s): %v", tt.param, err)
		}
		for _, v := range got {
			slices.SortFunc(v.Refs, func(x, y search.Ref) int { return cmpRef(x, y) })
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("IndexedRefs(%s, %v) = %v, want %v", tt.param, tt.ids, got, tt.want)
		}
	}
}

func cmpRef(x, y search.Ref) int {
	a, b := x.Type+"/"+x.ID, y.Type+"/"+y.ID
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// failExtractor fails every extraction, to show which matches were
// resolved from the index.
type failExtractor struct{ calls *int }

func (f failExtractor) References(typ string, body []byte, param string) ([]search.Entry, error) {
	*f.calls++
	return nil, errors.New("extracted")
}

// fixedExtractor answers every extraction with its entries.
type fixedExtractor []search.Entry

func (f fixedExtractor) References(string, []byte, string) ([]search.Entry, error) { return f, nil }

// TestIncludesFromIndex: store.Includes takes a match's references from
// the store's index when the match is the current version, and extracts
// them from its JSON when it is not.
func TestIncludesFromIndex(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, w := range []*store.Write{
			{Resource: &fhir.Resource{Type: "Schedule", ID: "s1", Version: 1, JSON: []byte(`{"resourceType":"Schedule","id":"s1"}`)}},
			{Resource: &fhir.Resource{Type: "Schedule", ID: "s2", Version: 1, JSON: []byte(`{"resourceType":"Schedule","id":"s2"}`)}},
			{Resource: &fhir.Resource{Type: "Slot", ID: "a", Version: 1, JSON: []byte(`{"resourceType":"Slot","id":"a"}`)},
				Index: []search.Entry{refEntry("schedule", "Schedule", "s1")}},
		} {
			w.Resource.LastUpdated = time.Now()
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	q := &search.Query{Type: "Slot", Include: []search.Include{{Source: "Slot", Param: "schedule"}}}

	var calls int
	got, err := store.Includes(ctx, s, failExtractor{&calls}, q, []*fhir.Resource{{Type: "Slot", ID: "a", Version: 1}})
	if err != nil {
		t.Fatalf("Includes of the current version: %v", err)
	}
	if calls != 0 || len(got) != 1 || got[0].Reference() != "Schedule/s1" {
		t.Errorf("Includes of the current version = %v after %d extractions, want [Schedule/s1] after 0", refsOf(got), calls)
	}

	// A match that is not the stored version (updated since it was read)
	// is extracted from its own JSON.
	got, err = store.Includes(ctx, s, fixedExtractor{refEntry("schedule", "Schedule", "s2")}, q, []*fhir.Resource{{Type: "Slot", ID: "a", Version: 7}})
	if err != nil {
		t.Fatalf("Includes of another version: %v", err)
	}
	if len(got) != 1 || got[0].Reference() != "Schedule/s2" {
		t.Errorf("Includes of another version = %v, want [Schedule/s2]", refsOf(got))
	}
}

func refsOf(rs []*fhir.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprint(r.Reference()))
	}
	return out
}
