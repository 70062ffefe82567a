package main

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestReindexCommand imports DocumentReferences, makes the database look
// as an older release left it (no composite tuples, no index digests,
// another index version), runs signpost reindex, and checks that composite searches
// find them and that the index version is the registry's fingerprint
// (so serve will not reindex again).
func TestReindexCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "docs.ndjson")
	ndjson := strings.Join([]string{
		`{"resourceType":"DocumentReference","id":"d1","status":"current","content":[{"attachment":{"url":"urn:d1"}}]}`,
		`{"resourceType":"DocumentReference","id":"d2","status":"current","content":[{"attachment":{"url":"urn:d2"}}],"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/d1"}}]}`,
		`{"resourceType":"DocumentReference","id":"d3","status":"current","content":[{"attachment":{"url":"urn:d3"}}],"relatesTo":[{"code":"transforms","target":{"reference":"DocumentReference/d1"}}]}`,
	}, "\n") + "\n"
	if err := os.WriteFile(file, []byte(ndjson), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := importCmd([]string{file, "--data", data, "--quiet"}); err != nil {
		t.Fatalf("import: %v", err)
	}
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM idx_composite", "UPDATE resources SET digest = NULL", "UPDATE index_meta SET value = 'older-release' WHERE key = 'version'"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	if err := reindexCmd([]string{"--data", data, "--quiet"}); err != nil {
		t.Fatalf("reindex: %v", err)
	}

	a, err := app.New(app.Config{Data: data, Addr: "127.0.0.1:8080", Open: true, NoReindex: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	if v, err := a.Store.(store.Reindexer).IndexVersion(ctx); err != nil || v != a.Search.Fingerprint() {
		t.Errorf("index version after signpost reindex = %q, %v; want the fingerprint %q", v, err, a.Search.Fingerprint())
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"relationship=replaces$DocumentReference/d1", []string{"d2"}},
		{"relationship=transforms$d1", []string{"d3"}},
		{"relationship:missing=false", []string{"d2", "d3"}},
	}
	for _, tt := range tests {
		params, _ := url.ParseQuery(tt.query)
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
		if !slices.Equal(got, tt.want) {
			t.Errorf("DocumentReference?%s = %v, want %v", tt.query, got, tt.want)
		}
	}
}

// TestReindexCommandArguments: the command takes no positional arguments.
func TestReindexCommandArguments(t *testing.T) {
	err := reindexCmd([]string{"--data", t.TempDir(), "--quiet", "extra"})
	if err == nil || !strings.Contains(err.Error(), `unexpected arguments ["extra"]`) {
		t.Errorf("reindex with an argument = %v, want an error naming it", err)
	}
}
