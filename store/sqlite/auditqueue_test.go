package sqlite

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// TestAuditQueueBackupAndReopen: the records in the audit queue are part
// of the database: in a backup's copy (so a restored server moves them
// into its audit database) and still there, in order, after the store is
// closed and opened again; an older database without the table gets it.
func TestAuditQueueBackupAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	ids := []string{"a1", "a2", "a3"}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, id := range ids {
			res := &fhir.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: time.Now().UTC(),
				JSON: fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q}`, id)}
			if err := tx.(store.AuditQueueTx).QueueAudit(ctx, res); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	queued := func(s *Store) []string {
		t.Helper()
		recs, err := s.QueuedAudits(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Resource.ID)
		}
		return out
	}
	copyDir := t.TempDir()
	if _, err := s.Backup(ctx, copyDir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		open func() (*Store, error)
	}{
		{"the backup's copy", func() (*Store, error) { return Open(copyDir) }},
		{"reopened", func() (*Store, error) { s.Close(); var err error; s, err = Open(dir); return s, err }},
	} {
		st, err := c.open()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := queued(st); !slices.Equal(got, ids) {
			t.Errorf("%s: queue %q, want %q", c.name, got, ids)
		}
		if st != s {
			st.Close()
		}
	}

	// A database written before the queue: the table is made at Open.
	old := t.TempDir()
	o, err := Open(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.wdb.Exec("DROP TABLE audit_queue"); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if o, err = Open(old); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got := queued(o); len(got) != 0 {
		t.Errorf("a reopened older database queues %q", got)
	}
}
