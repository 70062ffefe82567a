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
