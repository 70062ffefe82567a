package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestOpenByScheme opens the backend through store.Open: "sqlite" keeps
// the database in the data directory, "sqlite:DIR" in DIR.
func TestOpenByScheme(t *testing.T) {
	data, other := t.TempDir(), t.TempDir()
	for _, tt := range []struct{ uri, wantDir string }{{"sqlite", data}, {"sqlite:" + other, other}} {
		st, err := store.Open(context.Background(), store.Config{URI: tt.uri, Data: data})
		if err != nil {
			t.Fatalf("Open(%q): %v", tt.uri, err)
		}
		st.Close()
		if _, err := os.Stat(filepath.Join(tt.wantDir, sqlite.FileName)); err != nil {
			t.Errorf("Open(%q): no database in %s: %v", tt.uri, tt.wantDir, err)
		}
	}
}

// TestOpenBodyCacheEnv: the environment sizes the body cache of a store
// opened by scheme, and a bad value is an error, not a default.
func TestOpenBodyCacheEnv(t *testing.T) {
	for _, tt := range []struct {
		val string
		ok  bool
	}{{"", true}, {"0", true}, {"16", true}, {"-1", false}, {"lots", false}} {
		t.Setenv(sqlite.BodyCacheEnv, tt.val)
		st, err := store.Open(context.Background(), store.Config{URI: "sqlite", Data: t.TempDir()})
		if (err == nil) != tt.ok {
			t.Errorf("%s=%q: %v", sqlite.BodyCacheEnv, tt.val, err)
		}
		if err == nil {
			st.Close()
		}
	}
}
