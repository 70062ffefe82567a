package store

import "context"

// Backuper is an optional capability of a Store, found by type assertion:
// an online backup. The store keeps serving reads and writes while it
// runs.
//
// The embedded SQLite backend implements it (VACUUM INTO: one read
// transaction, so the copy is the database as one commit left it). A
// backend whose database has its own backup tools (MongoDB: mongodump
// with --oplog, or a filesystem snapshot) need not: docs/operations-backup.md
// says how to back it up, with the keys of the data directory.
type Backuper interface {
	// Backup writes a consistent copy of the store into directory dir,
	// which exists and is empty, as the files a store of the same scheme
	// opened on dir would read: every update committed before Backup
	// began is in the copy, and no update is in it only in part. It
	// returns the names of the files it wrote, relative to dir.
	Backup(ctx context.Context, dir string) ([]string, error)
}
