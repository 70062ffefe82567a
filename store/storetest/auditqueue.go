package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// auditQueue returns s's AuditQueue capability, skipping the test without
// it.
func auditQueue(t *testing.T, s store.Store) store.AuditQueue {
	t.Helper()
	q, ok := s.(store.AuditQueue)
	if !ok {
		t.Skip("the store does not implement store.AuditQueue")
	}
	return q
}

// auditRecord is AuditEvent/id as a write's transaction queues it.
func auditRecord(id string) *fhir.Resource {
	return &fhir.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: epoch.Add(time.Millisecond),
		JSON: fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"meta":{"versionId":"1"},"action":"C"}`, id)}
}

// queueAudits queues AuditEvents ids in one transaction with a resource
// (Appointment/ids[0]), which fails with fail (nil: commits).
func queueAudits(s store.Store, fail error, ids ...string) error {
	return s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		qtx, ok := tx.(store.AuditQueueTx)
		if !ok {
			return errors.New("the store implements store.AuditQueue but its Tx does not implement store.AuditQueueTx")
		}
		if err := tx.Put(ctx, &store.Write{Resource: Version("Appointment", ids[0], 1)}); err != nil {
			return err
		}
		for _, id := range ids {
			if err := qtx.QueueAudit(ctx, auditRecord(id)); err != nil {
				return err
			}
		}
		return fail
	})
}

// queuedIDs reads the whole queue, limit records at a time, and returns
// its ids in order and their Seqs.
func queuedIDs(t *testing.T, q store.AuditQueue, limit int) ([]string, []int64) {
	t.Helper()
	var ids []string
	var seqs []int64
	var after int64
	for {
		recs, err := q.QueuedAudits(context.Background(), after, limit)
		if err != nil {
			t.Fatalf("QueuedAudits(%d, %d): %v", after, limit, err)
		}
		if len(recs) > limit {
			t.Fatalf("QueuedAudits(%d, %d) returned %d records", after, limit, len(recs))
		}
		for _, r := range recs {
			if r.Seq <= after {
				t.Errorf("QueuedAudits(%d, …) returned Seq %d, not after %d", after, r.Seq, after)
			}
			after = r.Seq
			ids, seqs = append(ids, r.Resource.ID), append(seqs, r.Seq)
		}
		if len(recs) < limit {
			return ids, seqs
		}
	}
}

// testAuditQueue checks the optional store.AuditQueue capability: records
// are queued with their transaction (none after a rollback), read back
// whole, in commit order and call order, paged by Seq; a record queued
// after a read has a greater Seq than everything read; DropAudits deletes
// exactly the Seqs given (again: nothing); a queued record is no resource
// (no read, history or search finds it); an invalid record is refused.
func testAuditQueue(t *testing.T, s store.Store) {
	q := auditQueue(t, s)
	ctx := context.Background()
	errRollback := errors.New("roll back")
	steps := []struct {
		name  string
		do    func(t *testing.T, seqs map[string]int64) error
		want  []string // the queue after the step, in order
		limit int      // read the queue this many at a time
	}{
		{"empty", func(*testing.T, map[string]int64) error { return nil }, nil, 10},
		{"rolled back", func(*testing.T, map[string]int64) error {
			if err := queueAudits(s, errRollback, "r1", "r2"); !errors.Is(err, errRollback) {
				return fmt.Errorf("Update = %v, want the rollback error", err)
			}
			return nil
		}, nil, 10},
		{"committed, in call order", func(*testing.T, map[string]int64) error { return queueAudits(s, nil, "a", "b", "c") }, []string{"a", "b", "c"}, 10},
		{"later transactions after", func(*testing.T, map[string]int64) error {
			if err := queueAudits(s, nil, "d"); err != nil {
				return err
			}
			return queueAudits(s, nil, "e", "f")
		}, []string{"a", "b", "c", "d", "e", "f"}, 2},
		{"drop some", func(t *testing.T, seqs map[string]int64) error {
			n, err := q.DropAudits(ctx, []int64{seqs["b"], seqs["d"]})
			if err == nil && n != 2 {
				t.Errorf("DropAudits dropped %d, want 2", n)
			}
			return err
		}, []string{"a", "c", "e", "f"}, 3},
		{"drop again and unknown", func(t *testing.T, seqs map[string]int64) error {
			n, err := q.DropAudits(ctx, []int64{seqs["b"], seqs["d"], seqs["f"] + 1000})
			if err == nil && n != 0 {
				t.Errorf("DropAudits of records no longer queued dropped %d, want 0", n)
			}
			return err
		}, []string{"a", "c", "e", "f"}, 1},
		{"queued after the last read", func(*testing.T, map[string]int64) error { return queueAudits(s, nil, "g") }, []string{"a", "c", "e", "f", "g"}, 4},
		{"drop all, queue again", func(t *testing.T, seqs map[string]int64) error {
			if _, err := q.DropAudits(ctx, []int64{seqs["a"], seqs["c"], seqs["e"], seqs["f"], seqs["g"]}); err != nil {
				return err
			}
			return queueAudits(s, nil, "h")
		}, []string{"h"}, 10},
	}
	// Each step's want lists the records queued by it last: after those
	// queued before (and still there), whose Seqs do not change.
	seqs := map[string]int64{}
	for _, st := range steps {
		if err := st.do(t, seqs); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		ids, ss := queuedIDs(t, q, st.limit)
		if !slices.Equal(ids, st.want) {
			t.Errorf("%s: queue %q, want %q", st.name, ids, st.want)
		}
		for i, id := range ids {
			if old, ok := seqs[id]; ok && old != ss[i] {
				t.Errorf("%s: %s moved from Seq %d to %d", st.name, id, old, ss[i])
			}
			seqs[id] = ss[i]
		}
	}

	recs, err := q.QueuedAudits(ctx, 0, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("QueuedAudits = %d records, %v; want h", len(recs), err)
	}
	want := auditRecord("h")
	if got := recs[0].Resource; got.Type != want.Type || got.ID != want.ID || got.Version != 1 ||
		!got.LastUpdated.Equal(want.LastUpdated) || string(got.JSON) != string(want.JSON) {
		t.Errorf("queued %+v (%s), want %+v (%s)", got, got.JSON, want, want.JSON)
	}
	if recs, err := q.QueuedAudits(ctx, 0, 0); err != nil || len(recs) != 0 {
		t.Errorf("QueuedAudits with limit 0 = %d records, %v; want none", len(recs), err)
	}

	// A queued record is no resource of the store; the resource written
	// beside it is.
	if _, err := s.Read(ctx, "AuditEvent", "h"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Read of a queued record = %v, want not found", err)
	}
	if _, err := s.Read(ctx, "Appointment", "h"); err != nil {
		t.Errorf("Read of the resource written with it: %v", err)
	}
	if h, err := s.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: 100}); err != nil || len(h.Versions) != 0 {
		t.Errorf("History of AuditEvent = %v, %v; want none", h, err)
	}
	if p, err := s.Search(ctx, &search.Query{Type: "AuditEvent", Count: 100}); err != nil || len(p.Resources) != 0 {
		t.Errorf("Search of AuditEvent = %v, %v; want none", p, err)
	}

	for _, bad := range []*fhir.Resource{{Type: "AuditEvent", ID: "x"}, {ID: "x", JSON: []byte("{}")}, {Type: "AuditEvent", JSON: []byte("{}")}} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.(store.AuditQueueTx).QueueAudit(ctx, bad) })
		if fhir.KindOf(err) != fhir.Invalid {
			t.Errorf("QueueAudit(%q, %q, %d bytes) = %v, want invalid", bad.Type, bad.ID, len(bad.JSON), err)
		}
	}
}
