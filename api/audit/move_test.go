package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// putAudits writes n AuditEvents into st, last updated at at (a write's
// record, as the write's transaction stores it).
func putAudits(t *testing.T, st store.Store, prefix string, n int, at time.Time) {
	t.Helper()
	err := st.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for i := range n {
			id := fmt.Sprintf("%s-%d", prefix, i)
			body := fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"action":"C","recorded":"2030-01-01T00:00:00Z"}`, id)
			if err := tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: audit.Type, ID: id, Version: 1, LastUpdated: at, JSON: body}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func countAudits(t *testing.T, st store.Reader) int {
	t.Helper()
	page, err := st.History(context.Background(), store.HistoryQuery{Type: audit.Type, Count: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Versions)
}

// TestMoverCopiesEachOnce: the mover copies the main store's AuditEvents
// into the audit database, more than a transaction's worth at once, each
// exactly once however often it runs, after a restart (a new Mover reading
// its cursor back), and when a record arrives with an older time than the
// cursor (a clock stepped back, within the overlap it looks again).
func TestMoverCopiesEachOnce(t *testing.T) {
	main := openSQLite(t)
	auditDir := t.TempDir()
	audits, err := sqlite.Open(auditDir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { audits.Close() }()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	steps := []struct {
		name    string
		before  func()
		restart bool
		moved   int // copied by this step
		total   int // in the audit database after it
	}{
		{"first copy, several transactions", func() { putAudits(t, main, "old", 1200, now.Add(-time.Hour)) }, false, 1200, 1200},
		{"nothing new", func() {}, false, 0, 1200},
		{"new records", func() { putAudits(t, main, "new", 3, now) }, false, 3, 1203},
		{"after a restart", func() {}, true, 0, 1203},
		{"a record with a clock stepped back", func() { putAudits(t, main, "late", 1, now.Add(-500*time.Millisecond)) }, false, 1, 1204},
		{"after a restart, new records", func() { putAudits(t, main, "newer", 2, now.Add(time.Second)) }, true, 2, 1206},
	}
	m := audit.NewMover(main, audits, noIndex{})
	for _, s := range steps {
		s.before()
		if s.restart {
			audits.Close()
			if audits, err = sqlite.Open(auditDir); err != nil {
				t.Fatal(err)
			}
			m = audit.NewMover(main, audits, noIndex{})
		}
		n, err := m.Move(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n != s.moved {
			t.Errorf("%s: copied %d, want %d", s.name, n, s.moved)
		}
		if got := countAudits(t, audits); got != s.total {
			t.Errorf("%s: %d AuditEvents in the audit database, want %d", s.name, got, s.total)
		}
	}
	if got := countAudits(t, main); got != 1206 {
		t.Errorf("%d AuditEvents left in the main store, want all 1206 (copied, not moved away)", got)
	}
	if lag := m.Lag(); lag > time.Minute {
		t.Errorf("lag %v right after catching up", lag)
	}
}
