package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// testPurge checks the optional store.Purger capability: PurgeList lists
// exactly the resources of the type whose current version was last
// updated before the cut (tombstones too), page by page; Purge removes
// exactly the named ones still at the named version, with every version
// and index entry (no read, vread, history or search finds them), and
// leaves newer resources, resources written again since, and other types
// as they were; a second Purge of the same refs removes nothing.
func testPurge(t *testing.T, s store.Store) {
	p, ok := s.(store.Purger)
	if !ok {
		t.Skip("the store does not implement store.Purger")
	}
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	cut := t0.Add(time.Hour)
	practitioner := func(id, family string) *fhir.Resource {
		return &fhir.Resource{Type: "Practitioner", ID: id,
			JSON: []byte(fmt.Sprintf(`{"resourceType":"Practitioner","id":%q,"name":[{"family":%q}]}`, id, family))}
	}
	gone := func(typ, id string) *fhir.Resource { return &fhir.Resource{Type: typ, ID: id} }
	// Each resource's versions, written in this order, at these minutes
	// after t0 (the cut is at 60); what PurgeList and Purge must do.
	type write struct {
		min int
		res *fhir.Resource // JSON nil: a delete
	}
	tests := []struct {
		name   string
		typ    string
		id     string
		writes []write
		listed bool // PurgeList(cut) lists it
		ref    int64
		purged bool
	}{
		{name: "one version before the cut", typ: "Patient", id: "old-1",
			writes: []write{{1, patient("old-1", "Purgeable")}}, listed: true, ref: 1, purged: true},
		{name: "two versions before the cut", typ: "Patient", id: "old-2",
			writes: []write{{2, patient("old-2", "Purgeable")}, {3, patient("old-2", "Purgeable")}}, listed: true, ref: 2, purged: true},
		{name: "deleted before the cut", typ: "Patient", id: "old-deleted",
			writes: []write{{4, patient("old-deleted", "Purgeable")}, {5, gone("Patient", "old-deleted")}}, listed: true, ref: 2, purged: true},
		{name: "at the cut: not before it", typ: "Patient", id: "at-cut",
			writes: []write{{60, patient("at-cut", "Purgeable")}}},
		{name: "after the cut", typ: "Patient", id: "new",
			writes: []write{{61, patient("new", "Purgeable")}}},
		{name: "written again after the cut", typ: "Patient", id: "straddle",
			writes: []write{{6, patient("straddle", "Purgeable")}, {62, patient("straddle", "Purgeable")}}},
		{name: "listed, then written again before the purge", typ: "Patient", id: "raced",
			writes: []write{{7, patient("raced", "Purgeable")}}, listed: true, ref: 1},
		{name: "another type before the cut", typ: "Practitioner", id: "other",
			writes: []write{{8, practitioner("other", "Purgeable")}}},
	}
	l := newLoader(t, s)
	var order []write
	for _, tt := range tests {
		order = append(order, tt.writes...)
	}
	slices.SortStableFunc(order, func(a, b write) int { return a.min - b.min })
	for _, w := range order {
		r := *w.res
		l.write(t0.Add(time.Duration(w.min)*time.Minute), &r)
	}
	// The newest row of the store, so that nothing purgeable is it.
	l.write(t0.Add(2*time.Hour), patient("newest", "Other"))

	// PurgeList: exactly the listed ones, page by page (limit 2).
	var listed []string
	refs := map[string]store.PurgeRef{}
	for cursor, n := "", 0; ; n++ {
		if n > 100 {
			t.Fatal("PurgeList does not end")
		}
		page, next, err := p.PurgeList(ctx, "Patient", cut, cursor, 2)
		if err != nil {
			t.Fatalf("PurgeList: %v", err)
		}
		if len(page) > 2 {
			t.Errorf("PurgeList with limit 2 gave %d", len(page))
		}
		for _, r := range page {
			listed = append(listed, r.ID)
			refs[r.ID] = store.PurgeRef{ID: r.ID, Version: r.Version}
			if r.LastUpdated.After(cut) || r.LastUpdated.Equal(cut) {
				t.Errorf("PurgeList gave %s, last updated %s, not before the cut %s", r.Reference(), r.LastUpdated, cut)
			}
			switch {
			case r.Deleted && r.JSON != nil:
				t.Errorf("PurgeList gave the tombstone %s with a body", r.Reference())
			case !r.Deleted:
				cur, err := s.Read(ctx, r.Type, r.ID)
				if err != nil || cur.Version != r.Version || string(cur.JSON) != string(r.JSON) {
					t.Errorf("PurgeList gave %s v%d %s; Read gives v%d %s, %v", r.Reference(), r.Version, r.JSON, cur.Version, cur.JSON, err)
				}
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	var wantListed []string
	for _, tt := range tests {
		if tt.listed {
			wantListed = append(wantListed, tt.id)
		}
	}
	slices.Sort(listed)
	slices.Sort(wantListed)
	if diff := cmp.Diff(wantListed, listed); diff != "" {
		t.Errorf("PurgeList(before the cut) (-want +got):\n%s", diff)
	}
	for _, tt := range tests {
		if tt.listed && refs[tt.id].Version != tt.ref {
			t.Errorf("PurgeList gave %s at version %d, want %d", tt.id, refs[tt.id].Version, tt.ref)
		}
	}
	if _, _, err := p.PurgeList(ctx, "Patient", cut, "not a cursor", 2); err == nil {
		t.Error("PurgeList with a cursor it did not give succeeded")
	}

	// "raced" is written again between the list and the purge: kept.
	l.write(t0.Add(3*time.Hour), patient("raced", "Purgeable"))
	var named []store.PurgeRef
	for _, id := range listed {
		named = append(named, refs[id])
	}
	named = append(named, store.PurgeRef{ID: "never-there", Version: 1}, store.PurgeRef{ID: "straddle", Version: 1})
	n, err := p.Purge(ctx, "Patient", named)
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	want := 0
	for _, tt := range tests {
		if tt.purged {
			want++
		}
	}
	if n != want {
		t.Errorf("Purge removed %d, want %d", n, want)
	}
	if n, err := p.Purge(ctx, "Patient", named); err != nil || n != 0 {
		t.Errorf("Purge again = %d, %v; want 0 (all removed or kept before)", n, err)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Read(ctx, tt.typ, tt.id)
			hist, herr := s.History(ctx, store.HistoryQuery{Type: tt.typ, ID: tt.id, Count: 10})
			if herr != nil {
				t.Fatalf("History: %v", herr)
			}
			_, verr := s.ReadVersion(ctx, tt.typ, tt.id, 1)
			if tt.purged {
				if fhir.KindOf(err) != fhir.NotFound {
					t.Errorf("Read after the purge = %v, want not found", err)
				}
				if fhir.KindOf(verr) != fhir.NotFound {
					t.Errorf("ReadVersion 1 after the purge = %v, want not found", verr)
				}
				if len(hist.Versions) != 0 {
					t.Errorf("History after the purge has %d versions, want none", len(hist.Versions))
				}
				return
			}
			wantVersions := len(tt.writes)
			if tt.id == "raced" {
				wantVersions++
			}
			if len(hist.Versions) != wantVersions {
				t.Errorf("History has %d versions, want %d", len(hist.Versions), wantVersions)
			}
			if err != nil {
				t.Errorf("Read = %v, want it kept", err)
			}
			if verr != nil {
				t.Errorf("ReadVersion 1 = %v, want it kept", verr)
			}
		})
	}
	// The index: a search by the purged resources' name finds the others.
	got := pages(t, s, parse(t, l.reg, "Patient?family=Purgeable&_count=3"), nil)
	slices.Sort(got)
	if diff := cmp.Diff([]string{"at-cut", "new", "raced", "straddle"}, got); diff != "" {
		t.Errorf("Patient?family=Purgeable after the purge (-want +got):\n%s", diff)
	}
	for _, q := range []string{"Patient?_id=old-1,old-2,old-deleted", "Patient?_lastUpdated=lt2026-03-01T09:30:00Z"} {
		if got := pages(t, s, parse(t, l.reg, q), nil); len(got) != 0 {
			t.Errorf("%s after the purge = %v, want none", q, got)
		}
	}
	if got := pages(t, s, parse(t, l.reg, "Practitioner?family=Purgeable"), nil); !slices.Equal(got, []string{"other"}) {
		t.Errorf("Practitioner?family=Purgeable after the purge = %v, want [other]", got)
	}
	// The type's history lists only what is left.
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range hist.Versions {
		if slices.Contains([]string{"old-1", "old-2", "old-deleted"}, v.ID) {
			t.Errorf("the Patient history lists %s v%d after the purge", v.ID, v.Version)
		}
	}
	if page, next, err := p.PurgeList(ctx, "Patient", cut, "", 10); err != nil || len(page) != 0 {
		t.Errorf("PurgeList after the purge = %v (next %q), %v; want none", ids(page), next, err)
	} else if next != "" {
		if page, _, err := p.PurgeList(ctx, "Patient", cut, next, 10); err != nil || len(page) != 0 {
			t.Errorf("PurgeList's second page after the purge = %v, %v; want none", ids(page), err)
		}
	}
}
