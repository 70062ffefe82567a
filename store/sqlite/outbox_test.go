package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// crashDirEnv names the data directory of the child process
// TestOutboxSurvivesCrash starts; set, the test is that child.
const crashDirEnv = "SIGNPOST_OUTBOX_CRASH_DIR"

var crashEpoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// TestOutboxSurvivesCrash enqueues two messages with a resource in a
// process, claims one, and kills the process with SIGKILL before it
// delivers either (no Close, no checkpoint). Opened again, the store still
// has both: the unclaimed one pending, the claimed one claimable once its
// lease ends, each with its control id.
func TestOutboxSurvivesCrash(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutboxSurvivesCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child = %v, want killed by SIGKILL; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "enqueued and claimed") {
		t.Fatalf("the child did not get as far as the kill; output:\n%s", out)
	}

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Read(ctx, "Appointment", "a1"); err != nil {
		t.Errorf("the appointment written with the messages: %v", err)
	}
	got, err := s.Claim(ctx, "pas", crashEpoch, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ControlID != "ctl-b" {
		t.Fatalf("Claim after the crash = %+v, %v; want ctl-b (ctl-a's lease lasts)", got, err)
	}
	got, err = s.Claim(ctx, "pas", crashEpoch.Add(time.Minute), time.Minute, 10)
	if err != nil || len(got) != 2 || got[0].ControlID != "ctl-a" || got[0].Attempts != 2 || string(got[0].Payload) != "payload a" {
		t.Fatalf("Claim after the leases = %+v, %v; want ctl-a (its payload, attempt 2), then ctl-b", got, err)
	}
}

// crashChild is the child of TestOutboxSurvivesCrash: it writes, claims
// and kills itself.
func crashChild(t *testing.T, dir string) {
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Put(ctx, &store.Write{Resource: slotless("a1")}); err != nil {
			return err
		}
		for _, m := range []store.Message{
			{Destination: "pas", Key: "Appointment/a1", ControlID: "ctl-a", Payload: []byte("payload a"), Created: crashEpoch},
			{Destination: "pas", Key: "Appointment/b1", ControlID: "ctl-b", Payload: []byte("payload b"), Created: crashEpoch},
		} {
			if _, err := tx.(store.OutboxTx).Enqueue(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, "pas", crashEpoch, time.Minute, 1); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %v, %v", got, err)
	}
	os.Stdout.WriteString("enqueued and claimed\n")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal arrives
}

// slotless is a minimal Appointment/id, version 1.
func slotless(id string) *fhir.Resource {
	return &fhir.Resource{Type: "Appointment", ID: id, Version: 1, LastUpdated: crashEpoch,
		JSON: []byte(`{"resourceType":"Appointment","id":"` + id + `","status":"booked","participant":[]}`)}
}

// TestMigrateOutbox: a database made before the outbox and inbox gets
// their tables when it is opened again.
func TestMigrateOutbox(t *testing.T) {
	dir := t.TempDir()
	olderDatabase(t, dir, nil, "DROP TABLE outbox", "DROP TABLE inbox")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: "pas", Key: "k", ControlID: "c1", Created: crashEpoch}); err != nil {
			return err
		}
		return tx.(store.InboxTx).RecordReceived(ctx, store.Inbound{Sender: "pas", ControlID: "c1"})
	})
	if err != nil {
		t.Fatalf("outbox and inbox after migration: %v", err)
	}
	if b, err := s.Backlog(ctx, crashEpoch); err != nil || len(b) != 1 || b[0].Pending != 1 {
		t.Errorf("Backlog = %+v, %v; want one pending", b, err)
	}
}

// TestOutboxPlans checks that the outbox's queries read only the messages
// not yet finished, through the partial indexes: delivered messages pile
// up, and must not slow a claim down.
func TestOutboxPlans(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	claimSelect := claimSQL[strings.Index(claimSQL, "(SELECT o.id")+1 : strings.LastIndex(claimSQL, ")")]
	for _, tt := range []struct {
		name, query string
		want        []string
	}{
		{"claim", claimSelect, []string{"SEARCH o USING INDEX outbox_due (destination=?)",
			"SEARCH e USING INDEX outbox_open (destination=? AND okey=? AND id<?)"}},
		{"dead letters", "SELECT id FROM outbox WHERE destination = ? AND state = 'dead' ORDER BY id LIMIT 3",
			[]string{"SEARCH outbox USING COVERING INDEX outbox_dead (destination=?)"}},
		{"prune the outbox", pruneSelect(pruneSQL[0]), []string{"SEARCH outbox USING INDEX outbox_finished (finished<?)"}},
		{"prune the inbox", pruneSelect(pruneSQL[1]), []string{"SEARCH inbox USING COVERING INDEX inbox_received (received<?)"}},
	} {
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+tt.query, "pas", 1, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, w := range tt.want {
			if !slices.Contains(plan, w) {
				t.Errorf("%s: plan %q lacks %q", tt.name, plan, w)
			}
		}
	}
}

// pruneSelect is the sub-select of a prune statement, with ?1 and ?2 as
// plain parameters.
func pruneSelect(q string) string {
	sel := q[strings.Index(q, "(SELECT")+1 : strings.LastIndex(q, ")")]
	return strings.NewReplacer("?1", "?", "?2", "?").Replace(sel)
}

// TestPruneInBatches: Prune deletes in transactions of pruneBatch rows
// and goes on until nothing is left to delete.
func TestPruneInBatches(t *testing.T) {
	defer func(n int) { pruneBatch = n }(pruneBatch)
	pruneBatch = 3
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const n = 8
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for i := range n {
			id := fmt.Sprint("m", i)
			if _, err := tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: "pas", Key: id, ControlID: id, Created: crashEpoch}); err != nil {
				return err
			}
			if err := tx.(store.InboxTx).RecordReceived(ctx, store.Inbound{Sender: "pas", ControlID: id, Received: crashEpoch}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(ctx, "pas", crashEpoch, time.Minute, n)
	if err != nil || len(got) != n {
		t.Fatalf("Claim = %d, %v; want %d", len(got), err, n)
	}
	for _, q := range got {
		if err := s.Delivered(ctx, q.ID, q.Claim, crashEpoch); err != nil {
			t.Fatal(err)
		}
	}
	if deleted, err := s.Prune(ctx, crashEpoch.Add(time.Second)); err != nil || deleted != 2*n {
		t.Errorf("Prune = %d, %v; want %d", deleted, err, 2*n)
	}
	var left int
	if err := s.rdb.QueryRow("SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM inbox)").Scan(&left); err != nil || left != 0 {
		t.Errorf("%d rows left, %v; want none", left, err)
	}
}

// BenchmarkPrune measures Prune deleting delivered messages (payloads of
// 1 KB) in its batches, per message deleted.
func BenchmarkPrune(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const n = 20000
	for b.Loop() {
		b.StopTimer()
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			_, err := tx.(*txn).exec(ctx, `WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?1)
				INSERT INTO outbox (destination, okey, control_id, content_type, payload, created, state, avail, finished)
				SELECT 'pas', 'k' || x, 'c' || x || '-' || ?2, 'application/hl7-v2', zeroblob(1024), 1, 'done', 0, 2 FROM i`, n, time.Now().UnixNano())
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if deleted, err := s.Prune(ctx, time.UnixMicro(3)); err != nil || deleted != n {
			b.Fatalf("Prune = %d, %v", deleted, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/message")
}

// TestSettle: Settle records a batch's outcomes in one transaction, each
// as its single call would (delivered, retried with its reason and due
// time, dead-lettered), refuses a stale claim or an unknown message in its
// own entry while recording the others, and claims after them in the same
// transaction: a key whose message was delivered gives its next one, one
// retried or dead-lettered holds its key. A state that is no outcome is
// refused and nothing is recorded.
func TestSettle(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	ids := map[string]int64{}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, kc := range []string{"a/a1", "a/a2", "b/b1", "b/b2", "c/c1", "c/c2", "d/d1"} {
			key, ctl, _ := strings.Cut(kc, "/")
			id, err := tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: "pas", Key: key, ControlID: ctl, Created: crashEpoch})
			if err != nil {
				return err
			}
			ids[ctl] = id
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Claim(ctx, "pas", crashEpoch, time.Minute, 10)
	if err != nil || len(first) != 4 {
		t.Fatalf("Claim = %+v, %v; want a1, b1, c1, d1", first, err)
	}
	claims := map[string]int64{}
	for _, q := range first {
		claims[q.ControlID] = q.Claim
	}
	later := crashEpoch.Add(10 * time.Second)
	next := store.ClaimRequest{Destination: "pas", Now: later, Lease: time.Minute, Limit: 10}

	if _, _, err := s.Settle(ctx, []store.Outcome{{ID: ids["a1"], Claim: claims["a1"], State: store.OutboxDone, At: later},
		{ID: ids["b1"], Claim: claims["b1"], State: store.OutboxInFlight}}, next); fhir.KindOf(err) != fhir.Invalid {
		t.Fatalf("Settle with an in-flight outcome = %v, want an error of kind Invalid", err)
	}
	errs, got, err := s.Settle(ctx, []store.Outcome{
		{ID: ids["a1"], Claim: claims["a1"], State: store.OutboxDone, At: later},
		{ID: ids["b1"], Claim: claims["b1"], State: store.OutboxPending, Reason: "AE: busy", At: later.Add(time.Hour)},
		{ID: ids["c1"], Claim: claims["c1"], State: store.OutboxDead, Reason: "AR: no", At: later},
		{ID: ids["d1"], Claim: claims["d1"] + 1, State: store.OutboxDone, At: later}, // not its claim
		{ID: 9999, Claim: 1, State: store.OutboxDone, At: later},
	}, next)
	if err != nil {
		t.Fatal(err)
	}
	wantKinds := []fhir.Kind{fhir.Other, fhir.Other, fhir.Other, fhir.Conflict, fhir.NotFound}
	for i, want := range wantKinds {
		if (want == fhir.Other) != (errs[i] == nil) || (errs[i] != nil && fhir.KindOf(errs[i]) != want) {
			t.Errorf("outcome %d: %v, want kind %v", i, errs[i], want)
		}
	}
	var gotCtl []string
	for _, q := range got {
		gotCtl = append(gotCtl, q.ControlID)
	}
	// a1 delivered frees a2; b1 waits for its retry, c1 is a dead letter,
	// d1 is still in flight under its lease.
	if !slices.Equal(gotCtl, []string{"a2"}) || got[0].Attempts != 1 || !got[0].NextAt.Equal(later.Add(time.Minute)) {
		t.Errorf("claimed %+v, want a2 leased until %v", got, later.Add(time.Minute))
	}
	state := func(ctl string) (st string, lastErr string, avail, finished int64) {
		t.Helper()
		if err := s.rdb.QueryRow("SELECT state, last_error, avail, finished FROM outbox WHERE id = ?", ids[ctl]).Scan(&st, &lastErr, &avail, &finished); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, tc := range []struct {
		ctl, state, lastErr string
		avail, finished     time.Time
	}{
		{"a1", "done", "", time.Time{}, later},
		{"b1", "pending", "AE: busy", later.Add(time.Hour), time.Time{}},
		{"c1", "dead", "AR: no", time.Time{}, later},
		{"d1", "in-flight", "", crashEpoch.Add(time.Minute), time.Time{}},
	} {
		st, le, avail, fin := state(tc.ctl)
		if st != tc.state || le != tc.lastErr || avail != micros(tc.avail) || fin != micros(tc.finished) {
			t.Errorf("%s: %s %q avail %d finished %d; want %s %q avail %d finished %d", tc.ctl, st, le, avail, fin,
				tc.state, tc.lastErr, micros(tc.avail), micros(tc.finished))
		}
	}
	// Without a limit, nothing is claimed.
	errs, got, err = s.Settle(ctx, []store.Outcome{{ID: ids["d1"], Claim: claims["d1"], State: store.OutboxDone, At: later}},
		store.ClaimRequest{Destination: "pas", Now: later})
	if err != nil || errs[0] != nil || len(got) != 0 {
		t.Errorf("Settle without a claim = %v, %+v, %v; want d1 recorded, nothing claimed", errs, got, err)
	}
}
