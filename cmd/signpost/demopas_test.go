package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// demoPASApp starts what serve --demo starts (authorisation on, the demo
// county, the demo PAS and its adapter instance) in process, runs the
// demo PAS once, and returns the app, its server's FHIR base, the demo PAS
// and what it printed.
func demoPASApp(t *testing.T) (*app.App, string, *demoPAS, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cfg := app.Config{Auth: true}
	d, err := startDemoPAS(&cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() }) // registered first, so run after the app's close (which stops the instance)
	a, ts := apptest.New(t, cfg)
	ctx := context.Background()
	if err := loadDemo(ctx, a, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := d.run(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a, ts.URL + "/fhir", d, out
}

// TestDemoPAS: the demo configures an hl7v2-pas instance for Kingsbridge
// cardiology that sends to the stand-in; the stand-in's slot feed
// publishes the clinic's afternoon slots (and, run again as at the next
// start, changes none), its ADT^A04 registers a patient of the trust and
// its SIU^S12 books them the first slot (both AA), and a message the
// instance delivers from the outbox reaches the stand-in, which
// acknowledges and logs it.
func TestDemoPAS(t *testing.T) {
	a, _, d, out := demoPASApp(t)
	ctx := context.Background()
	for _, want := range []string{
		"demo PAS (docs/pas.md)",
		"demo PAS → slot feed of clinic KB-CARD (mode full): 40 rows: 40 created, 0 updated",
		"demo PAS → ADT^A04 DEMO-A04-KB900001, patient " + demoPASNHS + " (NH), KB900001 (PI) ← ACK AA",
		"demo PAS → SIU^S12 DEMO-S12-KB-CARD-",
		"clinic KB-CARD, status Booked ← ACK AA",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo did not print %q:\n%s", want, out.String())
		}
	}
	inst, ok := a.Adapters.Get(demoPASInstance)
	if !ok {
		t.Fatal("no demo PAS instance")
	}
	if st := inst.Status(ctx); st.State == "stopped" || st.State == "down" {
		t.Errorf("instance state %s", st.State)
	}
	first := demoPASFeed(time.Now().In(a.Location))[0]
	q, err := a.Search.Parse("Slot", url.Values{"identifier": {pas.SlotSystem(demoPASInstance) + "|" + first.id}, "schedule": {"Schedule/" + demoPASSchedule}}, search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	page, err := a.Store.Search(ctx, q)
	if err != nil || len(page.Resources) != 1 {
		t.Fatalf("the feed's first slot: %v, %v", page, err)
	}

	// The next start feeds the same slots again: nothing is created or
	// changed (the slot the SIU booked, once inbound SIU is applied, is
	// skipped).
	if err := d.run(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "40 rows: 0 created, 0 updated") {
		t.Errorf("the second run changed slots:\n%s", out.String())
	}

	// A message the instance delivers from the outbox reaches the stand-in.
	msg, err := hl7v2.Parse([]byte("MSH|^~\\&|SIGNPOST|R9901|PAS|R9901|20261207100000||SIU^S12^SIU_S12|DEMO-OUT-1|P|2.5.1\rSCH|appt-demo^SIGNPOST\rAIL|1||KB-CARD"))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Writes.Update(write.AsServer(ctx), func(ctx context.Context, tx *write.Tx) error {
		_, err := tx.Tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: demoPASInstance, Key: "Appointment/appt-demo",
			ControlID: "DEMO-OUT-1", ContentType: "x-application/hl7-v2+er7", Payload: msg.Encode()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(15 * time.Second) // the dispatcher's poll, without a wake-up
	for len(d.pas.Received()) == 0 {
		select {
		case <-d.pas.Arrived():
		case <-deadline:
			t.Fatalf("the stand-in received nothing:\n%s", out.String())
		}
	}
	if !strings.Contains(out.String(), "demo PAS ← SIU^S12 DEMO-OUT-1, appointment appt-demo") {
		t.Errorf("the delivery was not logged:\n%s", out.String())
	}
}
