package pas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// TestOutboundBuiltAtSend: an appointment's messages are built when they
// are sent, from what was true at their commit. With the PAS away, a
// booking, a change to the patient's name, and a cancellation: the S12
// sent afterwards still says Booked with the old name, the S15 says
// Cancelled with the new one; the queued rows are event records, not
// ER7. A resend is the same message byte for byte (MSH-7 and MSH-10
// fixed at the commit). A record that cannot be built becomes a dead
// letter with the reason, and its key's later messages wait.
func TestOutboundBuiltAtSend(t *testing.T) {
	t.Run("what was true at the commit", func(t *testing.T) {
		f := newFixture(t, pas.ModeSignpostConfirmed, nil)
		f.Peer.Stop()
		a := f.book(0)
		renamePatient(f, "Smith")
		f.setStatus(a, "cancelled", devserver.ClientCallCentre)
		ob := f.App.Store.(store.Outbox)
		var queued []store.Queued
		// A look at the head of the key, with a lease that ends at once
		// (the dispatcher, retrying, may hold it for a moment).
		for deadline := time.Now().Add(10 * time.Second); len(queued) == 0 && time.Now().Before(deadline); {
			var err error
			if queued, err = ob.Claim(context.Background(), instance, time.Now(), time.Millisecond, 10); err != nil {
				t.Fatal(err)
			}
		}
		if len(queued) != 1 || queued[0].ContentType != pas.EventContentType || bytes.Contains(queued[0].Payload, []byte("MSH")) {
			t.Fatalf("queued %+v, want the S12's event record (the S15 behind it)", queued)
		}
		var rec map[string]any
		if err := json.Unmarshal(queued[0].Payload, &rec); err != nil || rec["event"] != "S12" || rec["appointment"] != a || rec["version"] != 1.0 {
			t.Errorf("the S12's record %s (%v), want event S12 of version 1 of Appointment/%s", queued[0].Payload, err, a)
		}
		f.Peer.Restart()
		got := f.Peer.WaitApplied(2)
		type msg struct{ Event, SCH1, Status, Family string }
		var gotM []msg
		for _, m := range got {
			_, ev := m.Type()
			gotM = append(gotM, msg{ev, m.Get("SCH-1.1"), m.Get("SCH-25.1"), m.Get("PID-5.1")})
		}
		want := []msg{{"S12", a, "Booked", "Jones"}, {"S15", a, "Cancelled", "Smith"}}
		if d := cmp.Diff(want, gotM); d != "" {
			t.Errorf("messages (-want +got):\n%s", d)
		}
		if got[0].ControlID() != queued[0].ControlID {
			t.Errorf("MSH-10 %q, want the row's control id %q", got[0].ControlID(), queued[0].ControlID)
		}
	})
	t.Run("a resend is the same message", func(t *testing.T) {
		f := newFixture(t, pas.ModeSignpostConfirmed, nil)
		tries := map[string]int{}
		f.Peer.Answer(func(m *hl7v2.Message) hl7v2.Ack {
			if tries[m.ControlID()]++; tries[m.ControlID()] == 1 {
				return hl7v2.Ack{Outcome: hl7v2.OutcomeError, Text: "PAS busy"}
			}
			return hl7v2.Ack{Outcome: hl7v2.OutcomeAccept}
		})
		a := f.book(0)
		renamePatient(f, "Smith") // after the commit: the resend still says Jones
		f.Peer.WaitApplied(1)
		rec := f.Peer.Received()
		if len(rec) != 2 {
			t.Fatalf("received %d messages, want the S12 twice", len(rec))
		}
		if first, again := rec[0].Encode(), rec[1].Encode(); !bytes.Equal(first, again) {
			t.Errorf("the resend differs:\n%s\n%s", first, again)
		}
		if rec[1].Get("SCH-1.1") != a || rec[1].Get("PID-5.1") != "Jones" {
			t.Errorf("the resend: SCH-1 %q, PID-5.1 %q", rec[1].Get("SCH-1.1"), rec[1].Get("PID-5.1"))
		}
	})
	t.Run("a record that cannot be built", func(t *testing.T) {
		f := newFixture(t, pas.ModeSignpostConfirmed, nil)
		ob := f.App.Store.(store.Outbox)
		if err := f.App.Writes.Update(write.AsServer(context.Background()), func(ctx context.Context, tx *write.Tx) error {
			_, err := tx.Tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: instance, Key: "Appointment/gone", ControlID: pas.NewControlID(),
				ContentType: pas.EventContentType, Payload: []byte(`{"event":"S12","appointment":"gone","version":1,"placer":"gone","at":"2026-12-07T09:00:00Z"}`)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		f.PAS.Wake()
		dead := f.waitDead(ob, 1)
		if !strings.Contains(dead[0].LastError, "cannot be built") || !strings.Contains(dead[0].LastError, "gone") {
			t.Errorf("dead letter's reason %q", dead[0].LastError)
		}
		if n := len(f.Peer.Received()); n != 0 {
			t.Errorf("the PAS received %d messages, want none", n)
		}
	})
}

// renamePatient changes the fixture patient's family name, as the server.
func renamePatient(f *fixture, family string) {
	f.T.Helper()
	if err := f.App.Writes.Update(write.AsServer(context.Background()), func(ctx context.Context, tx *write.Tx) error {
		res, err := tx.Read(ctx, "Patient", patientID)
		if err != nil {
			return err
		}
		obj, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return err
		}
		obj.Set("name", []any{map[string]any{"family": family, "given": []any{"Ann"}}})
		_, _, err = tx.Put(ctx, "Patient", patientID, obj, res.Version)
		return err
	}); err != nil {
		f.T.Fatal(err)
	}
}
