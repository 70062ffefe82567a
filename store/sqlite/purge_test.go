package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// TestPurgeRemovesEveryRow purges two Slots (one with two versions and a
// derived value) and finds no row of theirs left in any table: resources,
// history, every index table (pairs included) and derived values; the
// Slot beside them keeps all of its rows.
func TestPurgeRemovesEveryRow(t *testing.T) {
	f := newCacheFixture(t, 0)
	ctx := context.Background()
	f.put(f.slot("a", 1, "free"), f.slot("b", 1, "free"), f.slot("keep", 1, "free"))
	f.put(f.slot("b", 2, "busy"))
	if err := f.s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.(store.DeriverTx).PutDerived(ctx, "Slot", "a", store.DerivedValue{Name: "https://signpost.test/x", Value: json.RawMessage(`{"x":1}`)})
	}); err != nil {
		t.Fatal(err)
	}
	f.put(f.slot("newest", 1, "free"))
	rids := map[string]int64{}
	for _, id := range []string{"a", "b", "keep"} {
		var rid int64
		if err := f.s.rdb.QueryRow("SELECT rid FROM resources WHERE type = 'Slot' AND id = ?", id).Scan(&rid); err != nil {
			t.Fatal(err)
		}
		rids[id] = rid
	}
	count := func(id string) map[string]int {
		out := map[string]int{}
		var n int
		for _, tb := range append(slices.Clone(indexTables), "idx_pair", "derived", "resources") {
			if err := f.s.rdb.QueryRow("SELECT count(*) FROM "+tb+" WHERE rid = ?", rids[id]).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out[tb] = n
		}
		if err := f.s.rdb.QueryRow("SELECT count(*) FROM history WHERE type = 'Slot' AND id = ?", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out["history"] = n
		return out
	}
	keepBefore := count("keep")
	for _, tb := range []string{"idx_pair", "idx_token", "idx_date", "idx_ref", "resources", "history"} {
		if count("a")[tb] == 0 || keepBefore[tb] == 0 {
			t.Fatalf("before the purge %s has no row of a or keep: the test proves nothing", tb)
		}
	}
	if count("a")["derived"] != 1 {
		t.Fatal("a has no derived value before the purge")
	}
	n, err := f.s.Purge(ctx, "Slot", []store.PurgeRef{{ID: "a", Version: 1}, {ID: "b", Version: 2}})
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"a", "b"} {
		for tb, n := range count(id) {
			if n != 0 {
				t.Errorf("%s keeps %d rows of the purged Slot/%s", tb, n, id)
			}
		}
	}
	if got := count("keep"); !maps.Equal(got, keepBefore) {
		t.Errorf("the rows of Slot/keep went from %v to %v", keepBefore, got)
	}
}

// TestPurgeNeverReusesSeq: the resource whose version is the newest
// history row is neither listed nor purged, so SQLite never gives a
// removed seq again (the body cache keeps bodies by seq); once something
// newer is written, it is.
func TestPurgeNeverReusesSeq(t *testing.T) {
	f := newCacheFixture(t, 0)
	ctx := context.Background()
	f.put(f.slot("a", 1, "free"))
	f.put(f.slot("b", 1, "free"))
	later := f.t0.Add(time.Hour)
	list := func() []string {
		page, _, err := f.s.PurgeList(ctx, "Slot", later, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := list(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("PurgeList = %v, want [a]: b is the newest row", got)
	}
	var before int64
	f.s.rdb.QueryRow("SELECT max(seq) FROM history").Scan(&before)
	if n, err := f.s.Purge(ctx, "Slot", []store.PurgeRef{{ID: "a", Version: 1}, {ID: "b", Version: 1}}); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1 (b held back)", n, err)
	}
	f.put(f.slot("c", 1, "free"))
	var seq int64
	f.s.rdb.QueryRow("SELECT seq FROM history WHERE id = 'c'").Scan(&seq)
	if seq <= before {
		t.Errorf("a version written after the purge got seq %d, not above the %d the purge found", seq, before)
	}
	if got := list(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("PurgeList after c = %v, want [b]", got)
	}
}

// TestPurgeSeenByAnotherStore opens two stores on one database, as
// signpost serve and signpost audit archive do: what the serving store
// cached (a read by id, a keyed pair page) stops being served once the
// other store's purge commits (within purgePoll), so a removed resource
// is neither read nor found, and the seqs of new versions are new.
func TestPurgeSeenByAnotherStore(t *testing.T) {
	f := newCacheFixture(t, 0)
	ctx := context.Background()
	f.put(f.slot("a", 1, "free"), f.slot("b", 1, "free"))
	f.put(f.slot("newest", 1, "free"))
	page := "Slot?schedule=Schedule/s1&status=free&start=ge2026-03-01"
	// Served twice: the second time from the caches.
	for range 2 {
		if _, err := f.s.Read(ctx, "Slot", "a"); err != nil {
			t.Fatal(err)
		}
		if got := f.searchAll(page); len(got) != 3 {
			t.Fatalf("%s = %d Slots, want 3", page, len(got))
		}
	}
	if f.s.heads.stats().Hits == 0 {
		t.Fatal("the serving store's heads cache served nothing: the test proves nothing")
	}
	var path string
	var seq int
	var name string
	if err := f.s.rdb.QueryRow("PRAGMA database_list").Scan(&seq, &name, &path); err != nil {
		t.Fatal(err)
	}
	other, err := OpenOptions(filepath.Dir(path), Options{Pairs: search.DefaultPairs()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if n, err := other.Purge(ctx, "Slot", []store.PurgeRef{{ID: "a", Version: 1}}); err != nil || n != 1 {
		t.Fatalf("the other store's Purge = %d, %v; want 1", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.s.Read(ctx, "Slot", "a")
		got := f.searchAll(page)
		_, found := got["a"]
		if fhir.KindOf(err) == fhir.NotFound && !found && len(got) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the purge, the serving store reads Slot/a: %v, and finds %d Slots (a among them: %v)", err, len(got), found)
		}
		time.Sleep(purgePoll / 4)
	}
}

// BenchmarkPurge measures one Purge transaction of store.PurgeBatch
// AuditEvents as the server records them (about 1 KB each, indexed by
// the registry's AuditEvent parameters): how long an archive holds the
// database's write lock, which a server's writer waits for, beside the
// transaction that stored them (insert-ms/txn, one PutAll).
func BenchmarkPurge(b *testing.B) {
	body := func(id string, at time.Time) []byte {
		return []byte(`{"resourceType":"AuditEvent","id":"` + id + `","meta":{"versionId":"1","lastUpdated":"` + at.Format(fhir.InstantFormat) + `"},` +
			`"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},` +
			`"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"search-type"}],"action":"E","recorded":"` + at.Format(fhir.InstantFormat) + `","outcome":"0",` +
			`"agent":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}]},` +
			`"role":[{"coding":[{"system":"https://signpost.example/fhir/CodeSystem/role","code":"call-centre"}]}],` +
			`"who":{"identifier":{"system":"https://signpost.example/fhir/sid/client","value":"call-centre"}},"altId":"user-42","name":"Call centre","requestor":true,` +
			`"network":{"address":"127.0.0.1","type":"2"}}],` +
			`"source":{"observer":{"display":"Signpost http://127.0.0.1:8080/fhir"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},` +
			`"entity":[{"what":{"reference":"Patient/p-` + id + `"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"},` +
			`"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}},` +
			`{"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2"},"query":"UGF0aWVudD9pZGVudGlmaWVyPXVybjpzaWdub3N0OnRlc3R8b2xkLTE="}]}`)
	}
	for _, n := range []int{250, store.PurgeBatch} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchmarkPurge(b, newCacheFixture(b, 0), body, n) })
	}
}

func benchmarkPurge(b *testing.B, f *cacheFixture, body func(string, time.Time) []byte, n int) {
	ctx := context.Background()
	var took, insert time.Duration
	for i := range b.N {
		b.StopTimer()
		var ws []*store.Write
		refs := make([]store.PurgeRef, n)
		for k := range n {
			id := fmt.Sprintf("ae-%d-%d-%d", n, i, k)
			at := f.t0.Add(time.Duration(k) * time.Millisecond)
			js := body(id, at)
			idx, err := f.reg.Extract("AuditEvent", js)
			if err != nil {
				b.Fatal(err)
			}
			ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: at, JSON: js}, Index: idx})
			refs[k] = store.PurgeRef{ID: id, Version: 1}
		}
		began := time.Now()
		if err := f.s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return store.PutAll(ctx, tx, ws) }); err != nil {
			b.Fatal(err)
		}
		insert += time.Since(began)
		f.put(f.slot(fmt.Sprint("newest-", i), 1, "free"))
		b.StartTimer()
		began = time.Now()
		got, err := f.s.Purge(ctx, "AuditEvent", refs)
		took += time.Since(began)
		if err != nil || got != n {
			b.Fatalf("Purge = %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(took.Microseconds())/float64(b.N)/1000, "ms/txn")
	b.ReportMetric(float64(insert.Microseconds())/float64(b.N)/1000, "insert-ms/txn")
}
