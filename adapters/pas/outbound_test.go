package pas_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// TestOutboundNotify: each change made through the API to an appointment
// the PAS owns reaches the PAS as the SIU of what happened, with the
// patient's NHS and PAS numbers, the appointment's ids and filler status,
// the clinic and the referral's UBRN; what it does not own, holds, and
// what the instance did itself reach it not at all.
func TestOutboundNotify(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	f.seedOther()
	ids := map[string]string{} // step name → appointment id
	const past = -200          // a slot two days ago: a no-show needs the appointment over
	type msg struct {
		Event, SCH1, Status string
		Slot                any // the slot's number in want, AIS-4 in got
	}
	for _, step := range []struct {
		name string
		do   func() string // returns the appointment id, for later steps
		want []msg         // the messages the PAS receives; SCH1 names a step
	}{
		{"book", func() string { return f.book(0) },
			[]msg{{"S12", "book", "Booked", 0}}},
		{"reschedule", func() string { return f.reschedule(ids["book"], 1) },
			[]msg{{"S13", "book", "Booked", 1}}}, // one S13, not a cancellation and a booking
		{"past", func() string { return f.recordPast(past) }, // recorded without slots: no clinic
			[]msg{{"S12", "past", "Booked", past}}},
		{"no-show", func() string { f.setStatus(ids["past"], "noshow", devserver.ClientProvider); return "" },
			[]msg{{"S26", "past", "Noshow", past}}},
		{"hold", func() string { return f.hold(2) }, nil}, // a hold is not announced
		{"$book the hold", func() string { return f.bookHold(ids["hold"]) },
			[]msg{{"S12", "hold", "Booked", 2}}},
		{"book-2", func() string { return f.book(3) },
			[]msg{{"S12", "book-2", "Booked", 3}}},
		{"modify", func() string {
			f.edit(ids["book-2"], devserver.ClientCallCentre, func(a map[string]any) { a["comment"] = "wheelchair access" })
			return ""
		}, []msg{{"S14", "book-2", "Booked", 3}}},
		{"cancel", func() string { f.setStatus(ids["book-2"], "cancelled", devserver.ClientCallCentre); return "" },
			[]msg{{"S15", "book-2", "Cancelled", 3}}},
		{"other service", func() string { return f.bookOther() }, nil},
		{"moved in from the other service", func() string { return f.reschedule(ids["other service"], 0) }, // slot-0, freed by the first reschedule
			[]msg{{"S12", "moved in from the other service", "Booked", 0}}}, // a booking of its own, not another service's chain
		{"by the instance itself", func() string {
			n := len(f.Peer.Applied())
			id := f.book(4)
			f.Peer.WaitApplied(n + 1) // the booking's S12 first, so that the PAS could hear of a cancellation after it
			f.asInstance(func(ctx context.Context, tx *write.Tx) error {
				res, err := tx.Read(ctx, "Appointment", id)
				if err != nil {
					return err
				}
				obj, _ := fhir.ParseObject(res.JSON)
				obj.Set("status", "cancelled")
				obj.Set("cancelationReason", map[string]any{"text": "cancelled in the PAS"})
				_, _, err = tx.Put(ctx, "Appointment", id, obj, 0)
				return err
			})
			return id
		}, []msg{{"S12", "by the instance itself", "Booked", 4}}}, // the booking, not the PAS's own cancellation
		{"last", func() string { return f.book(5) },
			[]msg{{"S12", "last", "Booked", 5}}},
	} {
		before := len(f.Peer.Applied())
		ids[step.name] = step.do()
		if step.want == nil {
			continue
		}
		got := f.Peer.WaitApplied(before + len(step.want))[before:]
		var gotM, wantM []msg
		for _, m := range got {
			_, ev := m.Type()
			gotM = append(gotM, msg{ev, m.Get("SCH-1.1"), m.Get("SCH-25.1"), m.Get("AIS-4")})
		}
		for _, w := range step.want {
			wantM = append(wantM, msg{w.Event, ids[w.SCH1], w.Status, hl7v2.FormatTime(f.SlotStart(w.Slot.(int)))})
		}
		if d := cmp.Diff(wantM, gotM); d != "" {
			t.Errorf("%s: messages (-want +got):\n%s", step.name, d)
		}
		for _, m := range got {
			if m.Get("SCH-1.1") != ids["past"] && m.Get("AIL-3.1") != clinic {
				t.Errorf("%s: AIL-3.1 is %q, want the clinic %q", step.name, m.Get("AIL-3.1"), clinic)
			}
			for path, want := range map[string]string{
				"MSH-3": "SIGNPOST", "MSH-5": "PAS", "MSH-6": devserver.DemoProvider,
				"PID-3[1].1": nhsNumber, "PID-3[1].4": "NHS", "PID-3[1].5": "NH",
				"PID-3[2].1": pasNumber, "PID-3[2].5": "PI", "PID-5.1": "Jones", "PID-7": "19800517",
				"AIS-3.1": service,
			} {
				if got := m.Get(path); got != want {
					t.Errorf("%s: %s is %q, want %q\n%s", step.name, path, got, want, m)
				}
			}
		}
	}
	if n := len(f.Peer.Received()); n != 11 {
		t.Errorf("the PAS received %d messages, want 11", n)
	}
}

// TestOutboundReferral: a referral to the PAS's trust accepted, rejected or
// redirected reaches the PAS as REF^I13 with the table 0283 status and
// its UBRN.
func TestOutboundReferral(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	f.seedOther()
	for i, tc := range []struct {
		op     string
		params []any
		status string // RF1-1
		reason string // RF1-10.1
		cancel bool   // the referral's booking is cancelled too (SIU^S15)
	}{
		{"accept", nil, "A", "", false},
		{"reject", []any{map[string]any{"name": "reason", "valueString": "not our specialty"}}, "R", "", true},
		{"redirect", []any{map[string]any{"name": "service", "valueString": "HealthcareService/" + other}}, "P", "redirected", true},
	} {
		t.Run(tc.op, func(t *testing.T) {
			sr, ubrn := f.refer(i)
			before := len(f.Peer.Applied())
			st, out := f.Do(f.Token(devserver.ClientProvider, apptest.SystemScopes), "POST", "/ServiceRequest/"+sr+"/$"+tc.op,
				map[string]any{"resourceType": "Parameters", "parameter": tc.params})
			if st != 200 {
				t.Fatalf("$%s: %d %v", tc.op, st, out)
			}
			n := 1
			if tc.cancel {
				n = 2
			}
			var ref *hl7v2.Message
			var events []string
			for _, m := range f.Peer.WaitApplied(before + n)[before:] {
				code, ev := m.Type()
				events = append(events, code+"^"+ev)
				if code == "REF" {
					ref = m
				}
			}
			want := []string{"REF^I13"}
			if tc.cancel {
				want = []string{"SIU^S15", "REF^I13"}
			}
			if d := cmp.Diff(want, events); d != "" || ref == nil {
				t.Fatalf("messages (-want +got):\n%s", d)
			}
			got := []string{ref.Get("MSH-9.2"), ref.Get("RF1-1.1"), ref.Get("RF1-6.1"), ref.Get("RF1-10.1"), ref.Get("PID-3[1].1"), ref.Get("PRD[2]-1.1")}
			want = []string{"I13", tc.status, ubrn, tc.reason, nhsNumber, "RT"}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("REF (-want +got):\n%s\n%s", d, ref)
			}
		})
	}
}

// TestOutboundDelivery: the PAS goes away; Signpost keeps booking; when it
// comes back every message arrives, in order per appointment, each applied
// once. An AE is retried (the same control id) until AA; an AR makes a
// dead letter with the reason, holds that appointment's later messages
// while others flow, and a replay releases them in order.
func TestOutboundDelivery(t *testing.T) {
	t.Run("peer away", func(t *testing.T) {
		f := newFixture(t, pas.ModeSignpostConfirmed, nil)
		f.Peer.Stop()
		a, b, c := f.book(0), f.book(1), f.book(2)
		f.setStatus(a, "cancelled", devserver.ClientCallCentre)
		b2 := f.reschedule(b, 3)
		f.setStatus(b2, "cancelled", devserver.ClientCallCentre)
		f.Peer.Restart()
		got := f.Peer.WaitApplied(6)
		want := map[string][]string{a: {"S12", "S15"}, b: {"S12", "S13", "S15"}, c: {"S12"}}
		if d := cmp.Diff(want, byAppointment(got)); d != "" {
			t.Errorf("per appointment (-want +got):\n%s", d)
		}
		if n := len(f.Peer.Received()); n != 6 {
			t.Errorf("received %d messages, want 6", n)
		}
	})
	t.Run("AE retried", func(t *testing.T) {
		f := newFixture(t, pas.ModeSignpostConfirmed, nil)
		tries := map[string]int{}
		f.Peer.Answer(func(m *hl7v2.Message) hl7v2.Ack {
			if tries[m.ControlID()]++; tries[m.ControlID()] <= 2 {
				return hl7v2.Ack{Outcome: hl7v2.OutcomeError, Text: "PAS busy"}
			}
			return hl7v2.Ack{Outcome: hl7v2.OutcomeAccept}
		})
		a := f.book(0)
		f.setStatus(a, "cancelled", devserver.ClientCallCentre)
		got := f.Peer.WaitApplied(2)
		if d := cmp.Diff(map[string][]string{a: {"S12", "S15"}}, byAppointment(got)); d != "" {
			t.Errorf("applied (-want +got):\n%s", d)
		}
		rec := f.Peer.Received()
		if len(rec) != 6 || rec[0].ControlID() != rec[2].ControlID() || rec[3].ControlID() != rec[5].ControlID() {
			t.Errorf("received %d messages, want each sent three times with its control id", len(rec))
		}
	})
	t.Run("AR dead-lettered, replayed", func(t *testing.T) {
		f := newFixture(t, pas.ModeSignpostConfirmed, nil)
		reject := true
		f.Peer.Answer(func(m *hl7v2.Message) hl7v2.Ack {
			if _, ev := m.Type(); reject && ev == "S12" && m.Get("AIS-4") == hl7v2.FormatTime(f.SlotStart(0)) {
				return hl7v2.Ack{Outcome: hl7v2.OutcomeReject, Text: "clinic closed", Issues: []*hl7v2.Issue{{Location: hl7v2.Path{Segment: "AIL", SegRep: 1, Field: 3}, Code: hl7v2.CodeUnknownKey}}}
			}
			return hl7v2.Ack{Outcome: hl7v2.OutcomeAccept}
		})
		a := f.book(0)
		ob := f.App.Store.(store.Outbox)
		dead := f.waitDead(ob, 1)
		if !strings.Contains(dead[0].LastError, "AR") || !strings.Contains(dead[0].LastError, "clinic closed") {
			t.Errorf("dead letter's reason %q", dead[0].LastError)
		}
		f.setStatus(a, "cancelled", devserver.ClientCallCentre) // held behind the dead letter
		b := f.book(1)                                          // flows
		got := f.Peer.WaitApplied(1)
		if d := cmp.Diff(map[string][]string{b: {"S12"}}, byAppointment(got)); d != "" {
			t.Errorf("while a's booking is dead (-want +got):\n%s", d)
		}
		f.Peer.mu.Lock()
		reject = false
		f.Peer.mu.Unlock()
		if err := ob.Replay(context.Background(), dead[0].ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		f.PAS.Wake()
		got = f.Peer.WaitApplied(3)
		if d := cmp.Diff(map[string][]string{a: {"S12", "S15"}, b: {"S12"}}, byAppointment(got)); d != "" {
			t.Errorf("after the replay (-want +got):\n%s", d)
		}
	})
}

// cardiology is the SNOMED CT specialty the referral tests' services and
// referrals share.
const cardiology = "394579002"

// byAppointment groups messages by SCH-1 into their trigger events, in
// order.
func byAppointment(ms []*hl7v2.Message) map[string][]string {
	out := map[string][]string{}
	for _, m := range ms {
		_, ev := m.Type()
		out[m.Get("SCH-1.1")] = append(out[m.Get("SCH-1.1")], ev)
	}
	return out
}

// The outbound tests' helpers.

// seedOther seeds a schedule of the service the PAS does not own, with
// slot-other, and gives both services the specialty the tests' referrals
// ask for.
func (f *fixture) seedOther() {
	start := f.SlotStart(0)
	specialty := func(code string) []any {
		return []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": code}}}}
	}
	apptest.Seed(f.T, f.App,
		map[string]any{"resourceType": "HealthcareService", "id": service, "name": "Cardiology", "providedBy": ref("Organization/trust"), "specialty": specialty(cardiology)},
		map[string]any{"resourceType": "HealthcareService", "id": other, "name": "Dermatology", "providedBy": ref("Organization/trust"), "specialty": specialty(cardiology)},
		otherSchedule(), slotRes("slot-other", "sched-other", start, slotLength))
}

// book books slot-i for the patient as the call centre and returns the
// appointment's id.
func (f *fixture) book(i int) string {
	f.T.Helper()
	return f.create(bookBody(fmt.Sprintf("Slot/slot-%d", i), "booked"))
}

// hold holds slot-i (a pending appointment).
func (f *fixture) hold(i int) string {
	f.T.Helper()
	return f.create(bookBody(fmt.Sprintf("Slot/slot-%d", i), "pending"))
}

func (f *fixture) bookOther() string {
	f.T.Helper()
	return f.create(bookBody("Slot/slot-other", "booked"))
}

func (f *fixture) create(body map[string]any) string {
	f.T.Helper()
	st, out := f.Do(f.Token(devserver.ClientCallCentre, apptest.SystemScopes), "POST", "/Appointment", body)
	if st != 201 {
		f.T.Fatalf("booking: %d %v", st, out)
	}
	return out["id"].(string)
}

func bookBody(slot, status string) map[string]any {
	return map[string]any{"resourceType": "Appointment", "status": status, "slot": []any{ref(slot)},
		"participant": []any{map[string]any{"actor": ref("Patient/" + patientID), "status": "accepted"}}}
}

// bookHold books the hold id with $book and returns its id.
func (f *fixture) bookHold(id string) string {
	f.T.Helper()
	st, out := f.Do(f.Token(devserver.ClientCallCentre, apptest.SystemScopes), "POST", "/Appointment/$book", map[string]any{
		"resourceType": "Parameters", "parameter": []any{
			map[string]any{"name": "appointment-reference", "valueString": "Appointment/" + id},
			map[string]any{"name": "patient-reference", "valueString": "Patient/" + patientID}}})
	if st != 200 {
		f.T.Fatalf("$book: %d %v", st, out)
	}
	return id
}

// reschedule moves appointment id to slot-i with $reschedule and returns
// the new appointment's id.
func (f *fixture) reschedule(id string, i int) string {
	f.T.Helper()
	st, out := f.Do(f.Token(devserver.ClientCallCentre, apptest.SystemScopes), "POST", "/Appointment/"+id+"/$reschedule", map[string]any{
		"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "slot", "valueString": fmt.Sprintf("Slot/slot-%d", i)}}})
	if st != 200 {
		f.T.Fatalf("$reschedule: %d %v", st, out)
	}
	for _, e := range out["entry"].([]any) {
		e := e.(map[string]any)
		if e["search"].(map[string]any)["mode"] == "match" {
			return e["resource"].(map[string]any)["id"].(string)
		}
	}
	f.T.Fatalf("$reschedule answered no appointment: %v", out)
	return ""
}

// edit changes appointment id with change and PUTs it as client.
func (f *fixture) edit(id, client string, change func(map[string]any)) {
	f.T.Helper()
	a := f.Read("Appointment", id)
	delete(a, "meta")
	change(a)
	if st, out := f.Do(f.Token(client, apptest.SystemScopes), "PUT", "/Appointment/"+id, a); st != 200 {
		f.T.Fatalf("PUT Appointment/%s: %d %v", id, st, out)
	}
}

func (f *fixture) setStatus(id, status, client string) {
	f.T.Helper()
	f.edit(id, client, func(a map[string]any) {
		a["status"] = status
		if status == "cancelled" {
			a["cancelationReason"] = map[string]any{"text": "patient asked"}
		}
	})
}

// recordPast records, as the call centre, an appointment of the PAS's
// service booked without slots (made elsewhere) at SlotStart(i), and
// returns its id.
func (f *fixture) recordPast(i int) string {
	f.T.Helper()
	start := f.SlotStart(i)
	return f.create(map[string]any{"resourceType": "Appointment", "status": "booked",
		"start": start.Format(time.RFC3339), "end": start.Add(slotLength).Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": ref("Patient/" + patientID), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}})
}

// asInstance runs fn in a write transaction acting as the instance, as
// its inbound messages do.
func (f *fixture) asInstance(fn func(ctx context.Context, tx *write.Tx) error) {
	f.T.Helper()
	scopes, raw := auth.ParseScopes("system/*.cruds")
	p := &auth.Principal{Subject: adapters.ClientIDPrefix + instance, ClientID: adapters.ClientIDPrefix + instance,
		Scopes: scopes, RawScopes: raw, Organization: devserver.DemoProvider, Role: "provider"}
	if err := f.App.Writes.Update(auth.NewContext(context.Background(), p), fn); err != nil {
		f.T.Fatal(err)
	}
}

// refer creates a referral from the demo GP practice to the PAS's
// service, books it on slot-<slot> (so the provider can act on it) and
// returns its id
// and UBRN.
func (f *fixture) refer(slot int) (id, ubrn string) {
	f.T.Helper()
	st, out := f.Do(f.Token(devserver.ClientGPSystem, apptest.SystemScopes), "POST", "/ServiceRequest", map[string]any{
		"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"subject": ref("Patient/" + patientID), "requester": ref("Organization/gp-a"),
		"performer":     []any{ref("HealthcareService/" + service)},
		"performerType": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": cardiology}}},
		"category":      []any{map[string]any{"coding": []any{map[string]any{"system": referral.Base + "/CodeSystem/referral-source", "code": "gp"}}}},
		"authoredOn":    time.Now().UTC().Format("2006-01-02")})
	if st != 201 {
		f.T.Fatalf("referral: %d %v", st, out)
	}
	id = out["id"].(string)
	for _, x := range out["identifier"].([]any) {
		if x := x.(map[string]any); x["system"] == referral.UBRNSystem {
			ubrn = x["value"].(string)
		}
	}
	body := bookBody(fmt.Sprintf("Slot/slot-%d", slot), "booked")
	body["basedOn"] = []any{ref("ServiceRequest/" + id)}
	before := len(f.Peer.Applied())
	bid := f.create(body)
	if m := f.Peer.WaitApplied(before + 1)[before]; m.Get("SCH-26.1") != ubrn || m.Get("SCH-1.1") != bid {
		f.T.Errorf("the booking of the referral: SCH-26 %q, want its UBRN %q\n%s", m.Get("SCH-26.1"), ubrn, m)
	}
	return id, ubrn
}

// waitDead waits up to 10 s for n dead letters of the instance.
func (f *fixture) waitDead(ob store.OutboxAdmin, n int) []store.Queued {
	f.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dead, err := ob.DeadLetters(context.Background(), instance, 100)
		if err != nil {
			f.T.Fatal(err)
		}
		if len(dead) >= n {
			return dead
		}
		if time.Now().After(deadline) {
			f.T.Fatalf("%d dead letters, want %d", len(dead), n)
		}
		select {
		case <-f.Peer.arrived:
		case <-time.After(20 * time.Millisecond):
		}
	}
}
