package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/signpost-fhir/signpost/store"
)

var _ store.Backuper = (*Store)(nil)

// Backup implements store.Backuper: VACUUM INTO dir/FileName from a
// read-only connection of its own (SnapshotFile). The copy is one read
// transaction's snapshot, so it holds every update committed before Backup
// began and none in part, while the writer goes on committing (in this
// process, or in a server holding the same database: SQLite's WAL lets
// another process read beside the writer). The copy is a compact database
// with no WAL beside it; Open turns it back to WAL on its first opening.
//
// While the copy runs, checkpoints cannot move past its snapshot, so the
// WAL grows by the updates committed meanwhile; it shrinks again at the
// next checkpoint after Backup returns.
func (s *Store) Backup(ctx context.Context, dir string) ([]string, error) {
	var seq int
	var name, src string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA database_list").Scan(&seq, &name, &src); err != nil {
		return nil, fmt.Errorf("sqlite: backup: finding the database file: %w", err)
	}
	if err := SnapshotFile(ctx, src, filepath.Join(dir, FileName)); err != nil {
		return nil, err
	}
	return []string{FileName}, nil
}

// SnapshotFile copies the SQLite database in file src to dst (which must
// not exist) with VACUUM INTO, from a read-only connection of its own: a
// consistent copy of a database this or another process may be writing.
// The copy is synced before SnapshotFile returns.
func SnapshotFile(ctx context.Context, src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("sqlite: backup: %s exists", dst)
	}
	configureMemory() // before this process's first connection, as Open does
	db, err := sql.Open(driver.name, moderncDSN(src, []string{"busy_timeout(10000)"})+"&mode=ro")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("sqlite: backup of %s: %w", filepath.Base(src), err)
	}
	return syncFile(dst)
}

// syncFile fsyncs the file at path and its directory.
func syncFile(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("sqlite: backup: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sqlite: backup: syncing %s: %w", p, err)
		}
	}
	return nil
}
