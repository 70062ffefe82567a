package pas

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestAsOf: asOf reads, from the real SQLite store, each resource as it
// was at a commit's time: the current version when unchanged since (or
// changed within the same millisecond, which lastUpdated cannot tell
// apart), the version before a later change or delete, nothing for one
// created later, and a deleted one as deleted.
func TestAsOf(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// put writes the versions of Patient/id: at[i] is version i+1's time,
	// a zero family a tombstone.
	put := func(id string, versions ...struct {
		at     time.Time
		family string
	}) {
		for i, v := range versions {
			res := &fhir.Resource{Type: "Patient", ID: id, Version: int64(i + 1), LastUpdated: v.at, Deleted: v.family == ""}
			if !res.Deleted {
				res.JSON = []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":%q}]}`, id, v.family))
			}
			if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				return tx.Put(ctx, &store.Write{Resource: res})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	type v = struct {
		at     time.Time
		family string
	}
	put("unchanged", v{ms(0), "A"})
	put("changed", v{ms(0), "A"}, v{ms(5), "B"}, v{ms(10), "C"})
	put("same-ms", v{ms(0), "A"}, v{ms(5), "B"})
	put("later", v{ms(6), "A"})
	put("deleted-after", v{ms(0), "A"}, v{ms(7), ""})
	put("deleted-before", v{ms(0), "A"}, v{ms(3), ""})
	at := ms(5)
	for _, tc := range []struct {
		id, family string // "" for none
		version    int64
		kind       fhir.Kind // of the error; fhir.Other for none
	}{
		{"unchanged", "A", 1, fhir.Other},
		{"changed", "B", 2, fhir.Other}, // at the commit's millisecond; C came later
		{"same-ms", "B", 2, fhir.Other},
		{"later", "", 0, fhir.NotFound},
		{"deleted-after", "A", 1, fhir.Other},
		{"deleted-before", "", 2, fhir.Gone},
		{"never", "", 0, fhir.NotFound},
	} {
		res, err := asOf{rd: st, at: at}.Read(ctx, "Patient", tc.id)
		if tc.kind == fhir.Other && err != nil || tc.kind != fhir.Other && fhir.KindOf(err) != tc.kind {
			t.Errorf("%s: error %v, want kind %v", tc.id, err, tc.kind)
			continue
		}
		if tc.family == "" {
			continue
		}
		if res == nil || res.Version != tc.version || !strings.Contains(string(res.JSON), `"family":"`+tc.family+`"`) {
			t.Errorf("%s: got %+v, want version %d of family %s", tc.id, res, tc.version, tc.family)
		}
	}
	if _, err := (asOf{rd: st, at: at}).Search(ctx, nil); err == nil {
		t.Error("a search as of a past time was answered")
	}
}
