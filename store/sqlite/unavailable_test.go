package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/signpost-fhir/signpost/fhir"
)

// TestStorageFailuresAreUnavailable: errors of the data directory, as
// SQLite and the operating system report them, become fhir.Unavailable
// (503 with Retry-After); other errors, and the store's and domain's own
// answers, keep theirs. The SQLite errors are real: a database full at its
// page limit (SQLITE_FULL, what a full disk gives), a write on a read-only
// connection (SQLITE_READONLY), a database that cannot be opened
// (SQLITE_CANTOPEN); the disk-full path through a server process is
// cmd/signpost's TestDiskFull.
func TestStorageFailuresAreUnavailable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t (v BLOB)"); err != nil {
		t.Fatal(err)
	}
	var pages int
	db.QueryRow("PRAGMA page_count").Scan(&pages)
	if _, err := db.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages+2)); err != nil {
		t.Fatal(err)
	}
	_, full := db.Exec("INSERT INTO t VALUES (zeroblob(1000000))")
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, readOnly := ro.Exec("INSERT INTO t VALUES (1)")
	missing, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "no", "such", "dir", "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	cantOpen := missing.Ping()
	_, syntax := db.Exec("INSERT INTO nowhere VALUES (1)")

	for _, tt := range []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"SQLITE_FULL", full, true},
		{"SQLITE_READONLY", readOnly, true},
		{"SQLITE_CANTOPEN", cantOpen, true},
		{"wrapped SQLITE_FULL", fmt.Errorf("sqlite: commit: %w", full), true},
		{"ENOSPC", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{"EFBIG", &os.PathError{Op: "write", Path: "x", Err: syscall.EFBIG}, true},
		{"EROFS", &os.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, true},
		{"EACCES", &os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, true},
		{"an SQL error", syntax, false},
		{"a conflict", fhir.Errorf(fhir.Conflict, "conflict", "", "taken"), false},
		{"a plain error", errors.New("boom"), false},
		{"nil", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil && tt.name != "nil" {
				t.Fatalf("the %s error did not happen", tt.name)
			}
			got := classify(tt.err)
			if unavailable := fhir.KindOf(got) == fhir.Unavailable; unavailable != tt.unavailable {
				t.Fatalf("classify(%v) = %v; unavailable %v, want %v", tt.err, got, unavailable, tt.unavailable)
			}
			if tt.unavailable && !errors.Is(got, tt.err) {
				t.Errorf("classify(%v) lost its cause", tt.err)
			}
			if !tt.unavailable && got != tt.err {
				t.Errorf("classify(%v) = %v, want it unchanged", tt.err, got)
			}
		})
	}
}

// TestOpenRefusesReadOnlyDirectory: a data directory the process cannot
// write is refused at Open, naming it.
func TestOpenRefusesReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes a directory whatever its mode (cmd/signpost TestReadOnlyDataDirectory uses a read-only mount)")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	_, err := Open(dir)
	if err == nil || !errors.Is(err, syscall.EACCES) {
		t.Fatalf("Open of a read-only directory: %v", err)
	}
}
