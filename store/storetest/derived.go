package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// waitURL is the extension the registry's waiting-time and next-free-slot
// parameters are derived from.
const waitURL = "https://signpost.example/fhir/StructureDefinition/waiting-time"

// testDerived checks the optional store.Deriver capability: a derived
// value is written atomically with its transaction, read beside the
// resource without changing its version, lastUpdated or history, searched,
// sorted and tested for :missing through its index entries, kept through
// new versions and a reindex, replaced and removed with its entries, and
// dropped with the resource; it cannot be set on a resource that is not
// there.
func testDerived(t *testing.T, s store.Store) {
	d, ok := s.(store.Deriver)
	if !ok {
		t.Skip("the store does not implement store.Deriver")
	}
	ctx := context.Background()
	reg := Registry(t)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	// A service as its owner writes it: a name and a commissioner.
	service := func(id string, v int64, name string) *store.Write {
		body := fmt.Sprintf(`{"resourceType":"HealthcareService","id":%q,"meta":{"versionId":"%d"},"name":%q}`, id, v, name)
		idx, err := reg.Extract("HealthcareService", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &store.Write{Resource: &fhir.Resource{Type: "HealthcareService", ID: id, Version: v,
			LastUpdated: t0.Add(time.Duration(v) * time.Minute), JSON: []byte(body)}, Index: idx}
	}
	wait := func(days int) store.DerivedValue {
		ext := fmt.Sprintf(`{"url":%q,"extension":[{"url":"days","valueInteger":%d},{"url":"next-slot","valueDateTime":"2026-03-%02dT10:00:00Z"}]}`,
			waitURL, days, 1+days)
		idx, err := reg.ExtractDerived("HealthcareService", json.RawMessage(ext))
		if err != nil || len(idx) != 2 {
			t.Fatalf("ExtractDerived = %v, %v; want a waiting-time and a next-free-slot entry", idx, err)
		}
		return store.DerivedValue{Name: waitURL, Value: json.RawMessage(ext), Index: idx}
	}
	update := func(fn func(ctx context.Context, tx store.Tx, dtx store.DeriverTx) error) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			dtx, ok := tx.(store.DeriverTx)
			if !ok {
				t.Fatal("the store implements store.Deriver but its Tx does not implement store.DeriverTx")
			}
			return fn(ctx, tx, dtx)
		})
	}
	setWait := func(id string, v store.DerivedValue) error {
		return update(func(ctx context.Context, _ store.Tx, dtx store.DeriverTx) error {
			return dtx.PutDerived(ctx, "HealthcareService", id, v)
		})
	}
	find := func(qs string) []string {
		t.Helper()
		return pages(t, s, parse(t, reg, qs), nil)
	}
	check := func(what, qs string, want ...string) {
		t.Helper()
		if got := find(qs); !slices.Equal(got, want) {
			t.Errorf("%s: %s = %v, want %v", what, qs, got, want)
		}
	}
	days := func(id string) string { // the days the derived value holds, "" for none
		t.Helper()
		vals, err := d.Derived(ctx, "HealthcareService", []string{id})
		if err != nil {
			t.Fatal(err)
		}
		switch n := len(vals[id]); {
		case n == 0:
			return ""
		case n > 1 || vals[id][0].Name != waitURL:
			t.Fatalf("Derived(%s) = %v, want one value named %s", id, vals[id], waitURL)
		}
		var e struct {
			Extension []struct {
				URL          string `json:"url"`
				ValueInteger int    `json:"valueInteger"`
			} `json:"extension"`
		}
		if err := json.Unmarshal(vals[id][0].Value, &e); err != nil {
			t.Fatalf("Derived(%s) value %s: %v", id, vals[id][0].Value, err)
		}
		return fmt.Sprint(e.Extension[0].ValueInteger)
	}
	unchanged := func(what, id string, v int64) {
		t.Helper()
		res, err := s.Read(ctx, "HealthcareService", id)
		if err != nil {
			t.Fatalf("%s: Read %s: %v", what, id, err)
		}
		if res.Version != v || !res.LastUpdated.Equal(t0.Add(time.Duration(v)*time.Minute)) || strings.Contains(string(res.JSON), waitURL) {
			t.Errorf("%s: Read %s = v%d at %v %s; want v%d at %v without the derived value", what, id, res.Version, res.LastUpdated, res.JSON,
				v, t0.Add(time.Duration(v)*time.Minute))
		}
		h, err := s.History(ctx, store.HistoryQuery{Type: "HealthcareService", ID: id})
		if err != nil || len(h.Versions) != int(v) {
			t.Errorf("%s: history of %s: %d versions, %v; want %d", what, id, len(h.Versions), err, v)
		}
	}

	for _, id := range []string{"a", "b", "c"} {
		if err := update(func(ctx context.Context, tx store.Tx, _ store.DeriverTx) error {
			return tx.Put(ctx, service(id, 1, "clinic "+id))
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A value written in a transaction that fails is not kept.
	errRollback := errors.New("roll back")
	err := update(func(ctx context.Context, tx store.Tx, dtx store.DeriverTx) error {
		if _, err := tx.Read(ctx, "HealthcareService", "a"); err != nil { // read first, as the directory does
			return err
		}
		for _, id := range []string{"a", "b"} {
			if err := dtx.PutDerived(ctx, "HealthcareService", id, wait(3)); err != nil {
				return err
			}
			vals, err := dtx.Derived(ctx, "HealthcareService", []string{id})
			if err != nil || len(vals[id]) != 1 {
				t.Errorf("Derived(%s) in its own transaction = %v, %v; want the value just written", id, vals, err)
			}
		}
		if vals, err := dtx.Derived(ctx, "HealthcareService", []string{"a", "b", "c"}); err != nil || len(vals) != 2 {
			t.Errorf("Derived(a, b, c) in its own transaction = %v, %v; want a's and b's", vals, err)
		}
		page, err := tx.Search(ctx, parse(t, reg, "HealthcareService?waiting-time=3&_sort=_id"))
		if err != nil || !slices.Equal(ids(page.Resources), []string{"a", "b"}) {
			t.Errorf("search in its own transaction = %v, %v; want [a b]", page, err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v, want the rollback error", err)
	}
	if got := days("a") + days("b"); got != "" {
		t.Errorf("after a rolled-back PutDerived, the values = %q, want none", got)
	}
	check("rolled back", "HealthcareService?waiting-time:missing=false")

	for id, n := range map[string]int{"a": 3, "b": 10} {
		if err := setWait(id, wait(n)); err != nil {
			t.Fatalf("PutDerived %s: %v", id, err)
		}
	}
	if got := days("a") + "," + days("b") + "," + days("c"); got != "3,10," {
		t.Errorf("values = %s, want 3,10,", got)
	}
	unchanged("after PutDerived", "a", 1)
	check("number", "HealthcareService?waiting-time=3", "a")
	check("range", "HealthcareService?waiting-time=le10", "a", "b")
	check("date", "HealthcareService?next-free-slot=ge2026-03-10", "b")
	check("missing", "HealthcareService?waiting-time:missing=true", "c")
	check("own and derived", "HealthcareService?name=clinic&waiting-time=gt5", "b")
	check("sorted", "HealthcareService?_sort=-waiting-time,_id", "b", "a", "c")

	// The owner writes new versions: the values and their entries stay.
	if err := update(func(ctx context.Context, tx store.Tx, _ store.DeriverTx) error {
		if err := tx.Put(ctx, service("a", 2, "renamed")); err != nil {
			return err
		}
		return tx.Put(ctx, service("a", 3, "renamed again"))
	}); err != nil {
		t.Fatal(err)
	}
	unchanged("after the owner's versions", "a", 3)
	if got := days("a"); got != "3" {
		t.Errorf("after new versions, a's value = %q, want 3", got)
	}
	check("after new versions", "HealthcareService?waiting-time=3", "a")
	check("the new version's own entries", "HealthcareService?name=renamed&waiting-time=3", "a")

	// A new value replaces the old one's entries.
	if err := setWait("a", wait(20)); err != nil {
		t.Fatal(err)
	}
	check("old value", "HealthcareService?waiting-time=3")
	check("new value", "HealthcareService?waiting-time=20", "a")
	unchanged("after a new value", "a", 3)
	// The same value again changes nothing.
	if err := setWait("a", wait(20)); err != nil {
		t.Fatal(err)
	}
	check("same value", "HealthcareService?waiting-time=20", "a")

	// A version and a value in one transaction.
	if err := update(func(ctx context.Context, tx store.Tx, dtx store.DeriverTx) error {
		if err := tx.Put(ctx, service("b", 2, "clinic b2")); err != nil {
			return err
		}
		return dtx.PutDerived(ctx, "HealthcareService", "b", wait(4))
	}); err != nil {
		t.Fatal(err)
	}
	check("version and value", "HealthcareService?name=clinic b2&waiting-time=4", "b")
	check("version and value, old", "HealthcareService?waiting-time=10")

	// A reindex keeps the values' entries.
	if rx, ok := s.(store.Reindexer); ok {
		extract := func(res *fhir.Resource) ([]search.Entry, error) { return reg.Extract(res.Type, res.JSON) }
		if err := rx.Reindex(ctx, "derived-test", extract, nil); err != nil {
			t.Fatal(err)
		}
		check("after a reindex", "HealthcareService?waiting-time=le20&_sort=waiting-time", "b", "a")
		unchanged("after a reindex", "a", 3)
	}

	// Removing a value removes its entries.
	if err := setWait("b", store.DerivedValue{Name: waitURL}); err != nil {
		t.Fatal(err)
	}
	if got := days("b"); got != "" {
		t.Errorf("after removing it, b's value = %q", got)
	}
	check("removed", "HealthcareService?waiting-time:missing=true&_sort=_id", "b", "c")

	// Only resources that are there have values.
	for _, tc := range []struct {
		id   string
		want fhir.Kind
	}{{"nope", fhir.NotFound}} {
		if err := setWait(tc.id, wait(1)); fhir.KindOf(err) != tc.want {
			t.Errorf("PutDerived on %s = %v, want %v", tc.id, err, tc.want)
		}
	}
	if vals, err := d.Derived(ctx, "HealthcareService", []string{"nope"}); err != nil || len(vals) != 0 {
		t.Errorf("Derived of an unknown resource = %v, %v", vals, err)
	}
	// A delete drops the values; the resource created again has none.
	tomb := &fhir.Resource{Type: "HealthcareService", ID: "a", Version: 4, LastUpdated: t0.Add(4 * time.Minute), Deleted: true}
	if err := update(func(ctx context.Context, tx store.Tx, _ store.DeriverTx) error {
		return tx.Put(ctx, &store.Write{Resource: tomb})
	}); err != nil {
		t.Fatal(err)
	}
	if err := setWait("a", wait(1)); fhir.KindOf(err) != fhir.Gone {
		t.Errorf("PutDerived on a deleted resource = %v, want Gone", err)
	}
	if got := days("a"); got != "" {
		t.Errorf("a deleted resource's value = %q, want none", got)
	}
	check("deleted", "HealthcareService?waiting-time=20")
	if err := update(func(ctx context.Context, tx store.Tx, _ store.DeriverTx) error {
		return tx.Put(ctx, service("a", 5, "back"))
	}); err != nil {
		t.Fatal(err)
	}
	if got := days("a"); got != "" {
		t.Errorf("a resource created again has value %q, want none", got)
	}
	check("created again", "HealthcareService?waiting-time:missing=true&_sort=_id", "a", "b", "c")

	// AddDerived serves the values in place of any stored copy.
	if err := setWait("c", wait(7)); err != nil {
		t.Fatal(err)
	}
	c, err := s.Read(ctx, "HealthcareService", "c")
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Read(ctx, "HealthcareService", "a")
	if err != nil {
		t.Fatal(err)
	}
	c.JSON = []byte(strings.Replace(string(c.JSON), `"name"`, `"extension":[{"url":"`+waitURL+`","valueString":"stale"},{"url":"urn:other","valueString":"kept"}],"name"`, 1))
	before := string(a.JSON)
	if err := store.AddDerived(ctx, s, []*fhir.Resource{a, c}); err != nil {
		t.Fatal(err)
	}
	if string(a.JSON) != before {
		t.Errorf("AddDerived changed a resource without values: %s", a.JSON)
	}
	var served struct {
		Extension []json.RawMessage `json:"extension"`
	}
	if err := json.Unmarshal(c.JSON, &served); err != nil || len(served.Extension) != 2 ||
		!strings.Contains(string(served.Extension[0]), "urn:other") || !strings.Contains(string(served.Extension[1]), `"valueInteger":7`) {
		t.Errorf("AddDerived = %s, want the other extension kept and the stale copy replaced by the value", c.JSON)
	}
}
