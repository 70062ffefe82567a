package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite" // the driver the test edits the database with

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestReindexOnUpgrade writes DocumentReferences, then makes the database
// look as an older release left it (no composite tuples, another index
// version), and checks that opening it reindexes, once: composite searches
// find the old resources, and the next open does nothing.
func TestReindexOnUpgrade(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	cfg := app.Config{Data: dir, BaseURL: "http://127.0.0.1:8080/fhir", Open: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	ctx := write.AsServer(context.Background())
	docs := []string{
		`{"resourceType":"DocumentReference","id":"d1","status":"current","content":[{"attachment":{"url":"urn:d1"}}]}`,
		`{"resourceType":"DocumentReference","id":"d2","status":"current","content":[{"attachment":{"url":"urn:d2"}}],
			"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/d1"}}]}`,
		`{"resourceType":"DocumentReference","id":"d3","status":"current","content":[{"attachment":{"url":"urn:d3"}}],
			"relatesTo":[{"code":"appends","target":{"reference":"DocumentReference/d2"}},{"code":"replaces","target":{"reference":"DocumentReference/d1"}}]}`,
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"relationship=replaces$DocumentReference/d1", []string{"d2", "d3"}},
		{"relationship=appends$DocumentReference/d2", []string{"d3"}},
		{"relationship=appends$DocumentReference/d1", nil},
		{"relationship:missing=false", []string{"d2", "d3"}},
	}
	open := func(noReindex bool) *app.App {
		t.Helper()
		logs.Reset()
		c := cfg
		c.NoReindex = noReindex
		a, err := app.New(c)
		if err != nil {
			t.Fatalf("app.New: %v", err)
		}
		return a
	}
	check := func(a *app.App, when string, found bool) {
		t.Helper()
		for _, tt := range tests {
			params, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			q, err := a.Search.Parse("DocumentReference", params, search.ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("%s: %v", tt.query, err)
			}
			page, err := a.Store.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", tt.query, err)
			}
			var got []string
			for _, r := range page.Resources {
				got = append(got, r.ID)
			}
			want := tt.want
			if !found {
				want = nil
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: DocumentReference?%s = %v, want %v", when, tt.query, got, want)
			}
		}
	}
	version := func(a *app.App) string {
		t.Helper()
		v, err := a.Store.(store.Reindexer).IndexVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	a := open(false)
	if v, fp := version(a), a.Search.Fingerprint(); v != fp {
		t.Errorf("a new data directory's index version = %q, want the fingerprint %q", v, fp)
	}
	if strings.Contains(logs.String(), "reindex") {
		t.Errorf("a new data directory was reindexed:\n%s", logs.String())
	}
	err := a.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		for _, d := range docs {
			obj, err := fhir.ParseObject([]byte(d))
			if err != nil {
				return err
			}
			id, _ := obj.String("id")
			if _, _, err := tx.Put(ctx, "DocumentReference", id, obj, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(a, "written", true)
	a.Close()

	// An older release: written before composite tuples existed (and so
	// before index digests), with another index version.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM idx_composite", "UPDATE resources SET digest = NULL", "UPDATE index_meta SET value = 'older-release' WHERE key = 'version'"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	a = open(true)
	check(a, "before the reindex", false)
	a.Close()

	a = open(false)
	log := logs.String()
	for _, want := range []string{`"msg":"reindexing: search parameters changed","from":"older-release","to":"` + a.Search.Fingerprint() + `","resources":3`,
		`"msg":"reindexed","resources":3,"duration":`} {
		if !strings.Contains(log, want) {
			t.Errorf("the upgrade's log lacks %s:\n%s", want, log)
		}
	}
	check(a, "after the upgrade", true)
	if v, fp := version(a), a.Search.Fingerprint(); v != fp {
		t.Errorf("index version after the upgrade = %q, want %q", v, fp)
	}
	a.Close()

	a = open(false)
	defer a.Close()
	if strings.Contains(logs.String(), "reindex") {
		t.Errorf("the second open reindexed again:\n%s", logs.String())
	}
	check(a, "reopened", true)
}

// syncBuffer is a bytes.Buffer for a logger that other goroutines may use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}
