// Package storetest is the suite every store.Store backend must pass. A
// backend's test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Run runs the suite. open must return a new, empty store; Run closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateRead", testCreateRead},
		{"VersionConflict", testVersionConflict},
		{"DeleteGone", testDeleteGone},
		{"History", testHistory},
		{"AtomicUpdate", testAtomicUpdate},
		{"ReadOwnWrites", testReadOwnWrites},
		{"ConcurrentSameVersion", testConcurrentSameVersion},
		{"SearchIDAndToken", testSearchIDAndToken},
		{"SearchPagingWhileChanging", testSearchPagingWhileChanging},
		{"SearchPrevPages", testSearchPrevPages},
		{"SearchTotal", testSearchTotal},
		{"SearchDifferential", testSearchDifferential},
		{"SearchComposite", testSearchComposite},
		{"SearchCompositeDifferential", testSearchCompositeDifferential},
		{"SearchByDate", testSearchByDate},
		{"Records", testRecords},
		{"Derived", testDerived},
		{"OutboxOrder", testOutboxOrder},
		{"OutboxLimit", testOutboxLimit},
		{"OutboxLease", testOutboxLease},
		{"OutboxBackoff", testOutboxBackoff},
		{"OutboxDeadLetter", testOutboxDeadLetter},
		{"OutboxAtomic", testOutboxAtomic},
		{"OutboxConcurrentClaims", testOutboxConcurrentClaims},
		{"OutboxPrune", testOutboxPrune},
		{"Inbox", testInbox},
		{"AuditQueue", testAuditQueue},
		{"Purge", testPurge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tt.fn(t, s)
		})
	}
}

var epoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// Version returns version v of Patient/id, its JSON naming the version.
func Version(typ, id string, v int64) *fhir.Resource {
	return &fhir.Resource{Type: typ, ID: id, Version: v, LastUpdated: epoch.Add(time.Duration(v) * time.Second),
		JSON: []byte(fmt.Sprintf(`{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}}`, typ, id, v))}
}

func put(ctx context.Context, s store.Store, r *fhir.Resource, index ...search.Entry) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.Put(ctx, &store.Write{Resource: r, Index: index})
	})
}

func mustPut(t *testing.T, s store.Store, r *fhir.Resource, index ...search.Entry) {
	t.Helper()
	if err := put(context.Background(), s, r, index...); err != nil {
		t.Fatalf("Put %s v%d: %v", r.Reference(), r.Version, err)
	}
}

func testCreateRead(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := Version("Patient", "p1", 1)
	mustPut(t, s, want)
	got, err := s.Read(ctx, "Patient", "p1")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got.Version != 1 || string(got.JSON) != string(want.JSON) || !got.LastUpdated.Equal(want.LastUpdated) {
		t.Errorf("Read = v%d %s %v, want v1 %s %v", got.Version, got.JSON, got.LastUpdated, want.JSON, want.LastUpdated)
	}
	if _, err := s.Read(ctx, "Patient", "nope"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Read unknown: err = %v, want NotFound", err)
	}
	if _, err := s.Read(ctx, "Slot", "p1"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Read other type: err = %v, want NotFound", err)
	}
}

func testVersionConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, Version("Patient", "p1", 1))
	for _, v := range []int64{1, 3} {
		if err := put(ctx, s, Version("Patient", "p1", v)); fhir.KindOf(err) != fhir.Conflict {
			t.Errorf("Put v%d over v1: err = %v, want Conflict", v, err)
		}
	}
	mustPut(t, s, Version("Patient", "p1", 2))
	got, _ := s.Read(ctx, "Patient", "p1")
	if got.Version != 2 {
		t.Errorf("version = %d, want 2", got.Version)
	}
}

func testDeleteGone(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, Version("Patient", "p1", 1))
	tomb := Version("Patient", "p1", 2)
	tomb.Deleted, tomb.JSON = true, nil
	mustPut(t, s, tomb)
	got, err := s.Read(ctx, "Patient", "p1")
	if fhir.KindOf(err) != fhir.Gone || got == nil || got.Version != 2 {
		t.Fatalf("Read deleted = %+v, %v; want tombstone v2 and Gone", got, err)
	}
	if old, err := s.ReadVersion(ctx, "Patient", "p1", 1); err != nil || old.Version != 1 {
		t.Errorf("ReadVersion 1 after delete = %v, %v", old, err)
	}
	page, err := s.Search(ctx, &search.Query{Type: "Patient"})
	if err != nil || len(page.Resources) != 0 {
		t.Errorf("Search after delete = %v, %v; want nothing", page, err)
	}
	mustPut(t, s, Version("Patient", "p1", 3)) // re-create after delete
}

func testHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	for v := int64(1); v <= 5; v++ {
		mustPut(t, s, Version("Patient", "p1", v))
	}
	mustPut(t, s, Version("Slot", "s1", 1))
	var got []string
	cursor := ""
	for {
		page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1", Count: 2, Cursor: cursor})
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		for _, r := range page.Versions {
			got = append(got, fmt.Sprint(r.Version))
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[5 4 3 2 1]" {
		t.Errorf("instance history = %v, want newest first [5 4 3 2 1]", got)
	}
	all, err := s.History(ctx, store.HistoryQuery{Count: 100})
	if err != nil || len(all.Versions) != 6 || all.Versions[0].Type != "Slot" {
		t.Errorf("system history = %d versions (first %v), %v; want 6, Slot first", len(all.Versions), all.Versions, err)
	}
	since, _ := s.History(ctx, store.HistoryQuery{Type: "Patient", Since: epoch.Add(4 * time.Second)})
	if len(since.Versions) != 2 {
		t.Errorf("history _since = %d versions, want 2", len(since.Versions))
	}
}

func testAtomicUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for i := range 3 {
			if err := tx.Put(ctx, &store.Write{Resource: Version("Patient", fmt.Sprint("a", i), 1)}); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	for i := range 3 {
		if _, err := s.Read(ctx, "Patient", fmt.Sprint("a", i)); fhir.KindOf(err) != fhir.NotFound {
			t.Errorf("a%d after rollback: %v, want NotFound", i, err)
		}
	}
	h, _ := s.History(ctx, store.HistoryQuery{})
	if len(h.Versions) != 0 {
		t.Errorf("history after rollback has %d versions", len(h.Versions))
	}
}

func testReadOwnWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Put(ctx, &store.Write{Resource: Version("Slot", "s1", 1),
			Index: []search.Entry{{Param: "status", Type: search.Token, System: "http://hl7.org/fhir/slotstatus", Value: "free"}}}); err != nil {
			return err
		}
		got, err := tx.Read(ctx, "Slot", "s1")
		if err != nil || got.Version != 1 {
			return fmt.Errorf("tx.Read = %v, %v", got, err)
		}
		page, err := tx.Search(ctx, &search.Query{Type: "Slot", Filter: []search.Expr{search.TokenIn{Param: "status", Codes: []string{"free"}}}})
		if err != nil || len(page.Resources) != 1 {
			return fmt.Errorf("tx.Search = %v, %v; want s1", page, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testConcurrentSameVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, Version("Patient", "p1", 1))
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := put(ctx, s, Version("Patient", "p1", 2)); fhir.KindOf(err) {
			case fhir.Conflict:
				conflicts.Add(1)
			default:
				if err == nil {
					wins.Add(1)
				} else {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 31 {
		t.Errorf("wins = %d, conflicts = %d; want 1 and 31", wins.Load(), conflicts.Load())
	}
}

func testSearchIDAndToken(t *testing.T, s store.Store) {
	ctx := context.Background()
	nhs := func(v string) search.Entry {
		return search.Entry{Param: "identifier", Type: search.Token, System: "https://fhir.nhs.uk/Id/nhs-number", Value: v}
	}
	mustPut(t, s, Version("Patient", "a", 1), nhs("9000000009"))
	mustPut(t, s, Version("Patient", "b", 1), nhs("9000000017"))
	mustPut(t, s, Version("Patient", "b", 2), nhs("9000000025")) // re-indexed
	tests := []struct {
		expr search.Expr
		want string
	}{
		{search.IDIn{IDs: []string{"a", "zz"}}, "[a]"},
		{search.TokenIn{Param: "identifier", Codes: []string{"9000000009"}}, "[a]"},
		{search.TokenIn{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", HasSystem: true, Codes: []string{"9000000025", "9000000009"}}, "[a b]"},
		{search.TokenIn{Param: "identifier", System: "other", HasSystem: true, Codes: []string{"9000000009"}}, "[]"},
		{search.TokenIn{Param: "identifier", Codes: []string{"9000000017"}}, "[]"},
	}
	for _, tt := range tests {
		page, err := s.Search(ctx, &search.Query{Type: "Patient", Filter: []search.Expr{tt.expr}})
		if err != nil {
			t.Fatalf("Search %+v: %v", tt.expr, err)
		}
		var ids []string
		for _, r := range page.Resources {
			ids = append(ids, r.ID)
		}
		if got := fmt.Sprint(ids); got != tt.want {
			t.Errorf("Search %+v = %s, want %s", tt.expr, got, tt.want)
		}
	}
}
