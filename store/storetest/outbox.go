package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// lease is the lease the outbox cases claim with.
const lease = time.Minute

// outbox returns s's Outbox capability, skipping the test without it.
func outbox(t *testing.T, s store.Store) store.Outbox {
	t.Helper()
	ob, ok := s.(store.Outbox)
	if !ok {
		t.Skip("the store does not implement store.Outbox")
	}
	return ob
}

// msg is a message for destination dest with ordering key key and control
// id id, enqueued at epoch.
func msg(dest, key, id string) store.Message {
	return store.Message{Destination: dest, Key: key, ControlID: id, ContentType: "application/hl7-v2",
		Payload: []byte("MSH|^~\\&|" + id), Created: epoch}
}

// enqueue queues ms in one transaction and returns their ids by control id.
func enqueue(t *testing.T, s store.Store, ms ...store.Message) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		otx, ok := tx.(store.OutboxTx)
		if !ok {
			t.Fatal("the store implements store.Outbox but its Tx does not implement store.OutboxTx")
		}
		for _, m := range ms {
			id, err := otx.Enqueue(ctx, m)
			if err != nil {
				return err
			}
			ids[m.ControlID] = id
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return ids
}

// claim claims up to 10 messages for dest at now and returns them.
func claim(t *testing.T, ob store.Outbox, dest string, now time.Time) []store.Queued {
	t.Helper()
	got, err := ob.Claim(context.Background(), dest, now, lease, 10)
	if err != nil {
		t.Fatalf("Claim(%s, %v): %v", dest, now, err)
	}
	return got
}

// controlIDs lists the control ids of qs in order.
func controlIDs(qs []store.Queued) []string {
	out := []string{}
	for _, q := range qs {
		out = append(out, q.ControlID)
	}
	return out
}

// wantClaim claims for dest at now and checks the control ids claimed.
func wantClaim(t *testing.T, ob store.Outbox, dest string, now time.Time, want ...string) []store.Queued {
	t.Helper()
	got := claim(t, ob, dest, now)
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(controlIDs(got), want) {
		t.Fatalf("Claim(%s) at %v = %v, want %v", dest, now.Sub(epoch), controlIDs(got), want)
	}
	return got
}

// testOutboxOrder checks that a destination gets the oldest message of
// each key, a key's next message only once the one before is delivered,
// and that destinations are independent; and what Claim returns.
func testOutboxOrder(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	ctx := context.Background()
	ids := enqueue(t, s, msg("pas", "Appointment/a", "a1"), msg("pas", "Appointment/a", "a2"), msg("pas", "Appointment/b", "b1"),
		msg("gp", "Appointment/a", "g1"))
	enqueue(t, s, msg("pas", "Appointment/a", "a3"), msg("pas", "Appointment/b", "b2"))
	if !(ids["a1"] < ids["a2"] && ids["a2"] < ids["b1"]) {
		t.Errorf("ids = %v, want increasing in enqueue order", ids)
	}
	now := epoch.Add(time.Second)
	got := wantClaim(t, ob, "pas", now, "a1", "b1")
	a1 := got[0]
	want := store.Queued{ID: ids["a1"], Message: msg("pas", "Appointment/a", "a1"), State: store.OutboxInFlight, Attempts: 1,
		Claim: a1.Claim, NextAt: now.Add(lease)}
	if a1.ID != want.ID || a1.Destination != want.Destination || a1.Key != want.Key || a1.ContentType != want.ContentType ||
		!bytes.Equal(a1.Payload, want.Payload) || !a1.Created.Equal(want.Created) || a1.State != want.State ||
		a1.Attempts != want.Attempts || !a1.NextAt.Equal(want.NextAt) || !a1.Finished.IsZero() {
		t.Errorf("claimed\n%+v\nwant\n%+v", a1, want)
	}
	wantClaim(t, ob, "pas", now)      // both heads in flight
	wantClaim(t, ob, "gp", now, "g1") // another destination flows
	wantClaim(t, ob, "nowhere", now)  // an unknown destination has nothing
	if err := ob.Delivered(ctx, a1.ID, a1.Claim, now); err != nil {
		t.Fatalf("Delivered a1: %v", err)
	}
	wantClaim(t, ob, "pas", now, "a2")
	b1 := got[1]
	if err := ob.Delivered(ctx, b1.ID, b1.Claim, now); err != nil {
		t.Fatalf("Delivered b1: %v", err)
	}
	wantClaim(t, ob, "pas", now, "b2") // a2 still in flight holds a3
	if got, err := ob.Claim(ctx, "pas", now, lease, 0); err != nil || len(got) != 0 {
		t.Errorf("Claim with limit 0 = %v, %v; want nothing", controlIDs(got), err)
	}
}

// testOutboxLimit checks that Claim returns at most limit messages, the
// oldest first.
func testOutboxLimit(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	var ms []store.Message
	for i := range 5 {
		ms = append(ms, msg("pas", fmt.Sprint("k", i), fmt.Sprint("m", i)))
	}
	enqueue(t, s, ms...)
	got, err := ob.Claim(context.Background(), "pas", epoch, lease, 2)
	if err != nil || !slices.Equal(controlIDs(got), []string{"m0", "m1"}) {
		t.Fatalf("Claim limit 2 = %v, %v; want [m0 m1]", controlIDs(got), err)
	}
	wantClaim(t, ob, "pas", epoch, "m2", "m3", "m4")
}

// testOutboxLease checks that a claimed message is not claimed again while
// its lease lasts, is claimed again (same control id, one more attempt)
// once it ends, and that only the current claim reports an outcome.
func testOutboxLease(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	ctx := context.Background()
	enqueue(t, s, msg("pas", "k", "m1"))
	first := wantClaim(t, ob, "pas", epoch, "m1")[0]
	wantClaim(t, ob, "pas", epoch.Add(lease-time.Second)) // lease lasts
	if b, err := ob.Backlog(ctx, epoch.Add(lease-time.Second)); err != nil || len(b) != 1 || b[0].InFlight != 1 || b[0].Pending != 0 {
		t.Errorf("Backlog during the lease = %+v, %v; want one in flight", b, err)
	}
	if b, err := ob.Backlog(ctx, epoch.Add(lease)); err != nil || len(b) != 1 || b[0].InFlight != 0 || b[0].Pending != 1 {
		t.Errorf("Backlog after the lease = %+v, %v; want one pending", b, err)
	}
	second := wantClaim(t, ob, "pas", epoch.Add(lease), "m1")[0] // the dispatcher died: claimable again
	if second.Attempts != 2 || second.Claim == first.Claim || second.ControlID != first.ControlID {
		t.Errorf("claimed again: attempts %d claim %d (first %d), control id %q; want 2 attempts, a new claim, the same control id",
			second.Attempts, second.Claim, first.Claim, second.ControlID)
	}
	later := epoch.Add(lease + time.Second)
	for _, tt := range []struct {
		name string
		fn   func() error
	}{
		{"Delivered", func() error { return ob.Delivered(ctx, first.ID, first.Claim, later) }},
		{"Retry", func() error { return ob.Retry(ctx, first.ID, first.Claim, "timeout", later) }},
		{"DeadLetter", func() error { return ob.DeadLetter(ctx, first.ID, first.Claim, "AR", later) }},
	} {
		if err := tt.fn(); fhir.KindOf(err) != fhir.Conflict {
			t.Errorf("%s with a stale claim = %v, want conflict", tt.name, err)
		}
	}
	if err := ob.Delivered(ctx, second.ID, second.Claim, later); err != nil {
		t.Fatalf("Delivered with the current claim: %v", err)
	}
	if err := ob.Delivered(ctx, second.ID, second.Claim, later); fhir.KindOf(err) != fhir.Conflict {
		t.Errorf("Delivered twice = %v, want conflict", err)
	}
	if err := ob.Retry(ctx, second.ID, second.Claim, "late", later); fhir.KindOf(err) != fhir.Conflict {
		t.Errorf("Retry of a delivered message = %v, want conflict", err)
	}
	if err := ob.Delivered(ctx, second.ID+1000, 1, later); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Delivered of an unknown message = %v, want not found", err)
	}
	wantClaim(t, ob, "pas", later.Add(time.Hour)) // delivered stays delivered
	if b, err := ob.Backlog(ctx, later); err != nil || len(b) != 0 {
		t.Errorf("Backlog with everything delivered = %+v, %v; want none", b, err)
	}
}

// testOutboxBackoff checks that a message is claimed only once due: from
// its creation, and after a failed attempt from the time Retry set.
func testOutboxBackoff(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	ctx := context.Background()
	future := msg("pas", "later", "f1")
	future.Created = epoch.Add(time.Hour)
	enqueue(t, s, msg("pas", "k", "m1"), future)
	m1 := wantClaim(t, ob, "pas", epoch, "m1")[0]
	next := epoch.Add(5 * time.Minute)
	if err := ob.Retry(ctx, m1.ID, m1.Claim, "AE: try later", next); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	wantClaim(t, ob, "pas", next.Add(-time.Microsecond)) // backing off
	again := wantClaim(t, ob, "pas", next, "m1")[0]
	if again.Attempts != 2 || again.LastError != "AE: try later" {
		t.Errorf("after a retry: attempts %d, last error %q; want 2, the reason", again.Attempts, again.LastError)
	}
	if b, err := ob.Backlog(ctx, next); err != nil || len(b) != 1 || b[0].Pending != 1 || b[0].InFlight != 1 || !b[0].OldestPending.Equal(epoch) {
		t.Errorf("Backlog = %+v, %v; want 1 pending (not due), 1 in flight, oldest at %v", b, err, epoch)
	}
	if err := ob.Delivered(ctx, again.ID, again.Claim, next); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, ob, "pas", future.Created, "f1")
}

// testOutboxDeadLetter checks that a dead letter holds its key's later
// messages and no other key's, until replayed (attempts reset, same
// control id) or discarded (the key flows again).
func testOutboxDeadLetter(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	ctx := context.Background()
	ids := enqueue(t, s, msg("pas", "a", "a1"), msg("pas", "a", "a2"), msg("pas", "b", "b1"), msg("pas", "b", "b2"), msg("gp", "a", "g1"))
	now := epoch
	got := wantClaim(t, ob, "pas", now, "a1", "b1")
	if err := ob.DeadLetter(ctx, got[0].ID, got[0].Claim, "AR: unknown patient", now); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if err := ob.Delivered(ctx, got[1].ID, got[1].Claim, now); err != nil {
		t.Fatal(err)
	}
	wantClaim(t, ob, "pas", now, "b2")                   // a2 waits behind the dead letter; b flows
	wantClaim(t, ob, "pas", now.Add(24*time.Hour), "b2") // b2's lease ended; a2 still waits

	dead, err := ob.DeadLetters(ctx, "pas", 10)
	if err != nil || len(dead) != 1 || dead[0].ControlID != "a1" || dead[0].State != store.OutboxDead ||
		dead[0].LastError != "AR: unknown patient" || !dead[0].Finished.Equal(now) {
		t.Fatalf("DeadLetters = %+v, %v; want a1, dead, with its reason", dead, err)
	}
	if all, err := ob.DeadLetters(ctx, "", 10); err != nil || len(all) != 1 {
		t.Errorf("DeadLetters of every destination = %v, %v; want a1", controlIDs(all), err)
	}
	if other, err := ob.DeadLetters(ctx, "gp", 10); err != nil || len(other) != 0 {
		t.Errorf("DeadLetters(gp) = %v, %v; want none", controlIDs(other), err)
	}
	b, err := ob.Backlog(ctx, now)
	wantB := []store.Backlog{{Destination: "gp", Pending: 1, OldestPending: epoch}, {Destination: "pas", Pending: 1, InFlight: 1, Dead: 1, OldestPending: epoch}}
	if err != nil || fmt.Sprint(b) != fmt.Sprint(wantB) {
		t.Errorf("Backlog = %+v, %v\nwant %+v", b, err, wantB)
	}

	for _, tt := range []struct {
		name string
		fn   func() error
		want fhir.Kind
	}{
		{"Replay of a pending message", func() error { return ob.Replay(ctx, ids["a2"], now) }, fhir.Conflict},
		{"Discard of a pending message", func() error { return ob.Discard(ctx, ids["a2"], "no", now) }, fhir.Conflict},
		{"Replay of a delivered message", func() error { return ob.Replay(ctx, ids["b1"], now) }, fhir.Conflict},
		{"Replay of an unknown message", func() error { return ob.Replay(ctx, ids["g1"]+1000, now) }, fhir.NotFound},
		{"Discard of an unknown message", func() error { return ob.Discard(ctx, ids["g1"]+1000, "no", now) }, fhir.NotFound},
	} {
		if err := tt.fn(); fhir.KindOf(err) != tt.want {
			t.Errorf("%s = %v, want kind %v", tt.name, err, tt.want)
		}
	}

	replayAt := now.Add(time.Hour)
	if err := ob.Replay(ctx, ids["a1"], replayAt); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if dead, _ := ob.DeadLetters(ctx, "", 10); len(dead) != 0 {
		t.Errorf("DeadLetters after the replay = %v, want none", controlIDs(dead))
	}
	wantClaim(t, ob, "pas", replayAt.Add(-time.Second)) // due from the replay
	re := wantClaim(t, ob, "pas", replayAt, "a1")[0]
	if re.Attempts != 1 || re.ControlID != "a1" {
		t.Errorf("replayed: attempts %d, control id %q; want 1 (reset), a1", re.Attempts, re.ControlID)
	}
	if err := ob.DeadLetter(ctx, re.ID, re.Claim, "AR again", replayAt); err != nil {
		t.Fatal(err)
	}
	if err := ob.Discard(ctx, ids["a1"], "sent by hand", replayAt); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if err := ob.Replay(ctx, ids["a1"], replayAt); fhir.KindOf(err) != fhir.Conflict {
		t.Errorf("Replay of a discarded message = %v, want conflict", err)
	}
	wantClaim(t, ob, "pas", replayAt, "a2") // the key flows again
	if dead, _ := ob.DeadLetters(ctx, "pas", 10); len(dead) != 0 {
		t.Errorf("DeadLetters after the discard = %v, want none", controlIDs(dead))
	}
}

// testOutboxAtomic checks that a message is enqueued with its transaction:
// none after a rollback, one beside the resource after a commit, and that
// a control id cannot be used twice for a destination.
func testOutboxAtomic(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	ctx := context.Background()
	errRollback := errors.New("roll back")
	write := func(id string, m store.Message, fail error) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			if err := tx.Put(ctx, &store.Write{Resource: Version("Appointment", id, 1)}); err != nil {
				return err
			}
			if _, err := tx.(store.OutboxTx).Enqueue(ctx, m); err != nil {
				return err
			}
			return fail
		})
	}
	if err := write("x", msg("pas", "Appointment/x", "x1"), errRollback); !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v, want the rollback error", err)
	}
	wantClaim(t, ob, "pas", epoch)
	if b, err := ob.Backlog(ctx, epoch); err != nil || len(b) != 0 {
		t.Errorf("Backlog after a rollback = %+v, %v; want none", b, err)
	}
	if err := write("y", msg("pas", "Appointment/y", "y1"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, "Appointment", "y"); err != nil {
		t.Errorf("Read the appointment written with the message: %v", err)
	}
	wantClaim(t, ob, "pas", epoch, "y1")

	err := write("z", msg("pas", "Appointment/z", "y1"), nil)
	if fhir.KindOf(err) != fhir.Conflict {
		t.Errorf("Enqueue with a control id used = %v, want conflict", err)
	}
	if _, err := s.Read(ctx, "Appointment", "z"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Read the appointment of the refused message = %v, want not found", err)
	}
	enqueue(t, s, msg("gp", "Appointment/y", "y1")) // another destination may use it
	for _, m := range []store.Message{msg("", "k", "c"), msg("pas", "", "c"), msg("pas", "k", "")} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			_, err := tx.(store.OutboxTx).Enqueue(ctx, m)
			return err
		})
		if fhir.KindOf(err) != fhir.Invalid {
			t.Errorf("Enqueue(%q, %q, %q) = %v, want invalid", m.Destination, m.Key, m.ControlID, err)
		}
	}
}

// testOutboxConcurrentClaims runs claimers side by side until every message
// is delivered: each message is claimed once, and each key's messages are
// delivered in order.
func testOutboxConcurrentClaims(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	ctx := context.Background()
	const keys, perKey, claimers = 12, 4, 4
	var ms []store.Message
	for i := range perKey {
		for k := range keys {
			ms = append(ms, msg("pas", fmt.Sprint("k", k), fmt.Sprintf("k%d-%d", k, i)))
		}
	}
	enqueue(t, s, ms...)
	var mu sync.Mutex
	claimed := map[string]int{}
	order := map[string][]string{}
	var wg sync.WaitGroup
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 * keys * perKey { // enough rounds for all, bounded
				mu.Lock()
				finished := len(claimed) == keys*perKey
				mu.Unlock()
				if finished {
					return
				}
				got, err := ob.Claim(ctx, "pas", epoch, lease, 3)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				for _, q := range got {
					mu.Lock()
					claimed[q.ControlID]++
					order[q.Key] = append(order[q.Key], q.ControlID)
					mu.Unlock()
					if err := ob.Delivered(ctx, q.ID, q.Claim, epoch); err != nil {
						t.Errorf("Delivered %s: %v", q.ControlID, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(claimed) != keys*perKey {
		t.Errorf("claimed %d messages, want %d", len(claimed), keys*perKey)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times, want once", id, n)
		}
	}
	for k := range keys {
		key := fmt.Sprint("k", k)
		var want []string
		for i := range perKey {
			want = append(want, fmt.Sprintf("k%d-%d", k, i))
		}
		if !slices.Equal(order[key], want) {
			t.Errorf("key %s claimed in order %v, want %v", key, order[key], want)
		}
	}
}

// testInbox checks the optional store.Inbox capability: a message recorded
// with its transaction (not after a rollback), found again with its hash
// and answer, recorded once per (sender, control id).
func testInbox(t *testing.T, s store.Store) {
	ib, ok := s.(store.Inbox)
	if !ok {
		t.Skip("the store does not implement store.Inbox")
	}
	ctx := context.Background()
	errRollback := errors.New("roll back")
	in := store.Inbound{Sender: "pas-rh8|PAS|RH8", ControlID: "MSG00001", Hash: []byte{1, 2, 3},
		Payload: []byte("MSH|^~\\&|PAS|RH8|||||SIU^S12|MSG00001"), Answer: []byte("MSH|...\rMSA|AA|MSG00001"), Received: epoch}
	// apply writes Appointment/<appt> and records in, as a receiver
	// applying a message does.
	apply := func(appt string, in store.Inbound, fail error) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			itx, ok := tx.(store.InboxTx)
			if !ok {
				t.Fatal("the store implements store.Inbox but its Tx does not implement store.InboxTx")
			}
			if err := tx.Put(ctx, &store.Write{Resource: Version("Appointment", appt, 1)}); err != nil {
				return err
			}
			if err := itx.RecordReceived(ctx, in); err != nil {
				return err
			}
			if got, err := itx.Received(ctx, in.Sender, in.ControlID); err != nil || !bytes.Equal(got.Answer, in.Answer) {
				t.Errorf("Received in its own transaction = %+v, %v; want the answer", got, err)
			}
			return fail
		})
	}
	if err := apply("first", in, errRollback); !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v, want the rollback error", err)
	}
	if _, err := ib.Received(ctx, in.Sender, in.ControlID); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Received after a rollback = %v, want not found", err)
	}
	if err := apply("first", in, nil); err != nil {
		t.Fatalf("RecordReceived: %v", err)
	}
	got, err := ib.Received(ctx, in.Sender, in.ControlID)
	if err != nil {
		t.Fatalf("Received: %v", err)
	}
	if got.Sender != in.Sender || got.ControlID != in.ControlID || !bytes.Equal(got.Hash, in.Hash) || !bytes.Equal(got.Payload, in.Payload) ||
		!bytes.Equal(got.Answer, in.Answer) || !got.Received.Equal(in.Received) {
		t.Errorf("Received = %+v\nwant %+v", got, in)
	}

	resend := in
	resend.Hash = []byte{9, 9, 9} // the same control id, other content
	if err := apply("resend", resend, nil); fhir.KindOf(err) != fhir.Conflict {
		t.Errorf("RecordReceived twice = %v, want conflict", err)
	}
	if _, err := s.Read(ctx, "Appointment", "resend"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Read what the refused resend wrote = %v, want not found: applied once", err)
	}
	if got, _ := ib.Received(ctx, in.Sender, in.ControlID); got == nil || bytes.Equal(got.Hash, resend.Hash) {
		t.Errorf("after the refused resend Received = %+v; want the first record, whose hash differs from the resend's", got)
	}

	other := in
	other.Sender = "pas-rh9|PAS|RH9"
	other.Received = time.Time{}
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.(store.InboxTx).RecordReceived(ctx, other)
	}); err != nil {
		t.Errorf("RecordReceived of the same control id from another sender: %v", err)
	}
	if got, err := ib.Received(ctx, other.Sender, other.ControlID); err != nil || got.Received.IsZero() {
		t.Errorf("Received(other sender) = %+v, %v; want a record stamped now", got, err)
	}
	if _, err := ib.Received(ctx, in.Sender, "MSG00002"); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Received of an unknown control id = %v, want not found", err)
	}
	for _, bad := range []store.Inbound{{ControlID: "x"}, {Sender: "x"}} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.(store.InboxTx).RecordReceived(ctx, bad) })
		if fhir.KindOf(err) != fhir.Invalid {
			t.Errorf("RecordReceived(%q, %q) = %v, want invalid", bad.Sender, bad.ControlID, err)
		}
	}
}

// testOutboxPrune checks that Prune deletes the messages delivered or
// discarded before its time and the inbox records received before it, and
// nothing else: dead letters, pending and in-flight messages stay whatever
// their age, a key's order holds, and ids keep increasing.
func testOutboxPrune(t *testing.T, s store.Store) {
	ob := outbox(t, s)
	ctx := context.Background()
	ib, hasInbox := s.(store.Inbox)
	ids := enqueue(t, s, msg("pas", "a", "a1"), msg("pas", "a", "a2"), msg("pas", "b", "b1"), msg("pas", "c", "c1"),
		msg("pas", "d", "d1"), msg("pas", "e", "e1"))
	got := wantClaim(t, ob, "pas", epoch, "a1", "b1", "c1", "d1", "e1")
	byID := map[string]store.Queued{}
	for _, q := range got {
		byID[q.ControlID] = q
	}
	outcome := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	at := func(h int) time.Time { return epoch.Add(time.Duration(h) * time.Hour) }
	outcome("Delivered a1", ob.Delivered(ctx, byID["a1"].ID, byID["a1"].Claim, at(1)))         // done, old
	outcome("DeadLetter b1", ob.DeadLetter(ctx, byID["b1"].ID, byID["b1"].Claim, "AR", at(1))) // dead, old
	outcome("DeadLetter c1", ob.DeadLetter(ctx, byID["c1"].ID, byID["c1"].Claim, "AR", at(1))) // then discarded, old
	outcome("Discard c1", ob.Discard(ctx, ids["c1"], "sent by hand", at(2)))                   //
	outcome("Delivered d1", ob.Delivered(ctx, byID["d1"].ID, byID["d1"].Claim, at(10)))        // done, recent
	outcome("Retry e1", ob.Retry(ctx, byID["e1"].ID, byID["e1"].Claim, "AE", at(-24*365)))     // pending, due long ago
	if hasInbox {
		for i, h := range []int{1, 10} {
			in := store.Inbound{Sender: "pas-rh8|PAS|RH8", ControlID: fmt.Sprint("in", i), Answer: []byte("MSA|AA"), Received: at(h)}
			outcome("RecordReceived", s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				return tx.(store.InboxTx).RecordReceived(ctx, in)
			}))
		}
	}
	backlog := func() string {
		t.Helper()
		b, err := ob.Backlog(ctx, at(11))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(b)
	}
	before := backlog()

	for _, tt := range []struct {
		name   string
		before time.Time
		want   int // messages and records deleted
	}{
		{"nothing finished before the epoch", epoch, 0},
		{"a1, c1 and in0, finished or received before 3h", at(3), 2},
		{"again: nothing left before 3h", at(3), 0},
		{"d1 and in1, a year on", at(24 * 365), 1},
	} {
		want := tt.want
		if hasInbox && tt.want > 0 {
			want++ // the inbox record received in the same span
		}
		n, err := ob.Prune(ctx, tt.before)
		if err != nil || n != want {
			t.Errorf("Prune(%s): %d, %v; want %d", tt.name, n, err, want)
		}
		if after := backlog(); after != before {
			t.Errorf("Prune(%s) changed the backlog: %s, was %s", tt.name, after, before)
		}
	}
	if dead, err := ob.DeadLetters(ctx, "pas", 10); err != nil || !slices.Equal(controlIDs(dead), []string{"b1"}) {
		t.Errorf("DeadLetters after Prune = %v, %v; want [b1]: dead letters are kept", controlIDs(dead), err)
	}
	if err := ob.Replay(ctx, ids["a1"], at(11)); fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Replay of a pruned message = %v, want not found", err)
	}
	if hasInbox {
		for _, id := range []string{"in0", "in1"} {
			if _, err := ib.Received(ctx, "pas-rh8|PAS|RH8", id); fhir.KindOf(err) != fhir.NotFound {
				t.Errorf("Received(%s) after Prune = %v, want not found", id, err)
			}
		}
	}
	// a1 (done, pruned) no longer orders key a: a2 flows; e1 pending
	// stays; b1 still holds nothing else; new messages get larger ids.
	wantClaim(t, ob, "pas", at(11), "a2", "e1")
	later := enqueue(t, s, msg("pas", "f", "f1"))
	if later["f1"] <= ids["e1"] {
		t.Errorf("id after Prune %d, want more than %d: ids keep increasing", later["f1"], ids["e1"])
	}
}
