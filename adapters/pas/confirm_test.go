package pas_test

// pas-confirmed bookings through the real HTTP API: the PAS's answer to
// SRM^S01 decides them.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// answerS01 answers SRM^S01 with outcome (and text), everything else
// (the compensating SRM^S04) with AA.
func answerS01(outcome hl7v2.Outcome, text string) func(*hl7v2.Message) hl7v2.Ack {
	return func(m *hl7v2.Message) hl7v2.Ack {
		if _, ev := m.Type(); ev == pas.EventRequestBooking {
			return hl7v2.Ack{Outcome: outcome, Text: text}
		}
		return hl7v2.Ack{Outcome: hl7v2.OutcomeAccept}
	}
}

// TestPASConfirmedBooking: a booking of the PAS's slot, made by the
// referrer through POST Appointment, is answered as the PAS answers
// SRM^S01: AA books it (201, booked, slot busy, the referral booked); AE
// and AR give 502 PAS_RESPONDED_WITH_ERROR, no answer in time 504
// PAS_NOT_RESPONDING, and in those the appointment is cancelled, its slot
// free, SRM^S04 delivered to the PAS and the referral on the provider's
// slot-issues worklist.
func TestPASConfirmedBooking(t *testing.T) {
	for _, c := range []struct {
		name       string
		answer     func(*hl7v2.Message) hl7v2.Ack // nil: the PAS never answers in time
		wantStatus int
		wantCode   string
	}{
		{"AA", answerS01(hl7v2.OutcomeAccept, ""), http.StatusCreated, ""},
		{"AE", answerS01(hl7v2.OutcomeError, "clinic closed that day"), http.StatusBadGateway, pas.ErrPASRespondedWithError},
		{"AR", answerS01(hl7v2.OutcomeReject, "slot not known"), http.StatusBadGateway, pas.ErrPASRespondedWithError},
		{"timeout", nil, http.StatusGatewayTimeout, pas.ErrPASNotResponding},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newConfirmFixture(t, c.answer == nil)
			if c.answer != nil {
				f.Peer.Answer(c.answer)
			}
			sr := f.referral()
			status, body := f.Do(f.Token(devserver.ClientGPSystem, apptest.SystemScopes), "POST", "/Appointment", f.appointment(0, sr))
			if status != c.wantStatus {
				t.Fatalf("POST Appointment: %d %v, want %d", status, body, c.wantStatus)
			}
			if c.answer == nil {
				f.release() // the PAS answers AA at last, too late
			}
			s01 := f.Peer.Received()[0]
			if code, ev := s01.Type(); code != "SRM" || ev != pas.EventRequestBooking {
				t.Fatalf("the PAS was sent %s^%s first, want SRM^S01", code, ev)
			}
			id := s01.Get("ARQ-1.1")
			appt := f.Read("Appointment", id)
			task := f.task(sr)
			if c.wantCode == "" {
				if body["status"] != "booked" || body["id"] != id {
					t.Errorf("answered %v %v, want the booked Appointment/%s", body["id"], body["status"], id)
				}
				if appt["status"] != "booked" || booking.AwaitsConfirmation(mustJSON(appt)) != "" {
					t.Errorf("Appointment/%s is %v, want booked (no longer awaiting)", id, appt["status"])
				}
				if got := f.Read("Slot", "slot-0")["status"]; got != "busy" {
					t.Errorf("slot-0 is %v, want busy", got)
				}
				if got := state(task); got != string(referral.Booked) {
					t.Errorf("the referral is %s, want booked", got)
				}
				if n := len(f.Peer.Received()); n != 1 {
					t.Errorf("the PAS received %d messages, want only SRM^S01", n)
				}
				return
			}
			if got := apptest.DetailsCode(body); got != c.wantCode {
				t.Errorf("answered %v, want the code %s", body, c.wantCode)
			}
			if appt["status"] != "cancelled" {
				t.Errorf("Appointment/%s is %v, want cancelled", id, appt["status"])
			}
			if got := f.Read("Slot", "slot-0")["status"]; got != "free" {
				t.Errorf("slot-0 is %v, want free", got)
			}
			if got := state(task); got != string(referral.SlotIssue) {
				t.Errorf("the referral is %s, want slot-issue", got)
			}
			if got := worklist(task); got != string(referral.SlotIssues) {
				t.Errorf("the referral's Task is on worklist %q, want %s", got, referral.SlotIssues)
			}
			if got := task["owner"].(map[string]any)["reference"]; got != "HealthcareService/"+service {
				t.Errorf("the referral's Task is owned by %v, want the PAS's service", got)
			}
			s04 := f.waitRequest(pas.EventRequestCancel, "")
			if got := s04.Get("ARQ-1.1"); got != id {
				t.Errorf("SRM^S04 cancels %q, want %s", got, id)
			}
			if c.answer == nil {
				if got := f.Read("Appointment", id)["status"]; got != "cancelled" {
					t.Errorf("after the late AA, Appointment/%s is %v, want cancelled still", id, got)
				}
				if got := f.Read("Slot", "slot-0")["status"]; got != "free" {
					t.Errorf("after the late AA, slot-0 is %v, want free still", got)
				}
			}
		})
	}
}

// pasSpecialty is the specialty (SNOMED CT) of the PAS's service and of
// the referrals to it.
var pasSpecialty = map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "394579002"}}}

// confirmFixture is the fixture in mode pas-confirmed, with a PAS that,
// when it is slow, holds its answers to SRM^S01 until release.
type confirmFixture struct {
	*fixture
	hold chan struct{} // closed by release
}

// newConfirmFixture starts the fixture in mode pas-confirmed. A slow PAS
// holds every answer until release, and the instance waits for it only
// briefly; a prompt one is waited for long enough for a loaded machine.
func newConfirmFixture(t *testing.T, slow bool) *confirmFixture {
	timeout := 20 * time.Second
	if slow {
		timeout = 300 * time.Millisecond
	}
	f := &confirmFixture{fixture: newFixture(t, pas.ModePASConfirmed, func(s *pas.Settings) {
		s.ConfirmTimeout = adapters.Duration(timeout)
	}), hold: make(chan struct{})}
	f.giveSpecialty()
	if slow {
		f.Peer.Answer(func(m *hl7v2.Message) hl7v2.Ack {
			<-f.hold
			return hl7v2.Ack{Outcome: hl7v2.OutcomeAccept}
		})
		t.Cleanup(f.release)
	}
	return f
}

// release lets a slow PAS answer.
func (f *confirmFixture) release() {
	select {
	case <-f.hold:
	default:
		close(f.hold)
	}
}

// task returns the workflow Task of referral sr, from the store.
func (f *confirmFixture) task(sr string) map[string]any {
	f.T.Helper()
	status, b := f.Do(f.Token(devserver.ClientGPSystem, apptest.SystemScopes), "GET", "/Task?focus="+sr+"&code="+referral.TaskCodeSystem+"|"+referral.TaskCode, nil)
	entries, _ := b["entry"].([]any)
	if status != http.StatusOK || len(entries) != 1 {
		f.T.Fatalf("the Task of %s: %d %v", sr, status, b)
	}
	return entries[0].(map[string]any)["resource"].(map[string]any)
}

// waitRequest waits until the PAS has applied an SRM of event (about
// the placer id id, when not "") and returns the first.
func (f *confirmFixture) waitRequest(event, id string) *hl7v2.Message {
	f.T.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, m := range f.Peer.Applied() {
			if code, ev := m.Type(); code == "SRM" && ev == event && (id == "" || m.Get("ARQ-1.1") == id) {
				return m
			}
		}
		select {
		case <-f.Peer.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			f.T.Fatalf("the PAS applied no SRM^%s", event)
		}
	}
}

func state(task map[string]any) string {
	bs, _ := task["businessStatus"].(map[string]any)
	codings, _ := bs["coding"].([]any)
	if len(codings) == 0 {
		return ""
	}
	s, _ := codings[0].(map[string]any)["code"].(string)
	return s
}

func worklist(task map[string]any) string {
	exts, _ := task["extension"].([]any)
	for _, e := range exts {
		e := e.(map[string]any)
		if e["url"] == referral.WorklistExtension {
			code, _ := e["valueCoding"].(map[string]any)["code"].(string)
			return code
		}
	}
	return ""
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestPASConfirmedPaths: every way of booking the PAS's slot waits for
// the PAS and answers with its outcome: POST, PUT, a transaction Bundle,
// a batch Bundle, $book of an appointment-resource and $book of a hold
// (a pending Appointment).
func TestPASConfirmedPaths(t *testing.T) {
	type path struct {
		name string
		// book books slot-i for the referral sr and returns the status and
		// the Appointment answered (nil when the answer is an error).
		book func(f *confirmFixture, tok string, i int, sr string) (int, map[string]any, map[string]any)
	}
	paths := []path{
		{"POST", func(f *confirmFixture, tok string, i int, sr string) (int, map[string]any, map[string]any) {
			st, b := f.Do(tok, "POST", "/Appointment", f.appointment(i, sr))
			return st, resourceOr(st, b), b
		}},
		{"PUT", func(f *confirmFixture, tok string, i int, sr string) (int, map[string]any, map[string]any) {
			a := f.appointment(i, sr)
			a["id"] = fmt.Sprintf("put-%d", i)
			st, b := f.Do(tok, "PUT", "/Appointment/"+a["id"].(string), a)
			return st, resourceOr(st, b), b
		}},
		{"transaction", func(f *confirmFixture, tok string, i int, sr string) (int, map[string]any, map[string]any) {
			st, b := f.Do(tok, "POST", "", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"resource": f.appointment(i, sr), "request": map[string]any{"method": "POST", "url": "Appointment"}}}})
			if st != http.StatusOK {
				return st, nil, b
			}
			return http.StatusCreated, entryResource(b, 0), b
		}},
		{"batch", func(f *confirmFixture, tok string, i int, sr string) (int, map[string]any, map[string]any) {
			st, b := f.Do(tok, "POST", "", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
				map[string]any{"resource": f.appointment(i, sr), "request": map[string]any{"method": "POST", "url": "Appointment"}}}})
			if st != http.StatusOK {
				f.T.Fatalf("batch: %d %v", st, b)
			}
			e := b["entry"].([]any)[0].(map[string]any)
			var code int
			fmt.Sscan(e["response"].(map[string]any)["status"].(string), &code)
			if code != http.StatusCreated {
				oo, _ := e["response"].(map[string]any)["outcome"].(map[string]any)
				return code, nil, oo
			}
			return code, e["resource"].(map[string]any), b
		}},
		{"$book resource", func(f *confirmFixture, tok string, i int, sr string) (int, map[string]any, map[string]any) {
			a := f.appointment(i, sr)
			a["status"] = "proposed"
			st, b := f.Do(tok, "POST", "/Appointment/$book", parameters(
				map[string]any{"name": "appointment-resource", "resource": a},
				map[string]any{"name": "patient-reference", "valueReference": map[string]any{"reference": "Patient/" + patientID}}))
			if st != http.StatusOK {
				return st, nil, b
			}
			return http.StatusCreated, entryResource(b, 0), b
		}},
		{"$book hold", func(f *confirmFixture, tok string, i int, sr string) (int, map[string]any, map[string]any) {
			a := f.appointment(i, sr)
			a["status"] = "pending"
			sent := len(f.Peer.Received())
			st, hold := f.Do(tok, "POST", "/Appointment", a)
			if st != http.StatusCreated || hold["status"] != "pending" || booking.AwaitsConfirmation(mustJSON(hold)) != "" {
				f.T.Fatalf("a hold of the PAS's slot: %d %v, want a plain hold (the PAS is not asked)", st, hold)
			}
			if n := len(f.Peer.Received()); n != sent {
				f.T.Fatalf("a hold sent the PAS %d messages", n-sent)
			}
			st, b := f.Do(tok, "POST", "/Appointment/$book", parameters(
				map[string]any{"name": "appointment-reference", "valueReference": map[string]any{"reference": "Appointment/" + hold["id"].(string)}}))
			if st != http.StatusOK {
				return st, nil, b
			}
			return http.StatusCreated, entryResource(b, 0), b
		}},
	}
	// One PAS accepts every booking, each of its own slot; another refuses
	// them, and a refused booking's slot is free again for the next.
	accepting, refusing := newConfirmFixture(t, false), newConfirmFixture(t, false)
	refusing.Peer.Answer(answerS01(hl7v2.OutcomeReject, "no"))
	for i, p := range paths {
		for _, accept := range []bool{true, false} {
			name := p.name + "/AA"
			if !accept {
				name = p.name + "/AR"
			}
			t.Run(name, func(t *testing.T) {
				f, n := accepting.on(t), i
				if !accept {
					f, n = refusing.on(t), 1
				}
				slotID := fmt.Sprintf("slot-%d", n)
				sr := f.referral()
				st, appt, body := p.book(f, f.Token(devserver.ClientGPSystem, apptest.SystemScopes), n, sr)
				slot := f.Read("Slot", slotID)["status"]
				if accept {
					if st != http.StatusCreated || appt == nil || appt["status"] != "booked" {
						t.Fatalf("answered %d %v, want the booked Appointment", st, body)
					}
					if stored := f.Read("Appointment", appt["id"].(string)); stored["status"] != "booked" {
						t.Errorf("Appointment/%v is %v, want booked", appt["id"], stored["status"])
					}
					if slot != "busy" {
						t.Errorf("%s is %v, want busy", slotID, slot)
					}
					return
				}
				if st != http.StatusBadGateway || apptest.DetailsCode(body) != pas.ErrPASRespondedWithError {
					t.Fatalf("answered %d %v, want 502 %s", st, body, pas.ErrPASRespondedWithError)
				}
				if slot != "free" {
					t.Errorf("%s is %v, want free", slotID, slot)
				}
				if got := state(f.task(sr)); got != string(referral.SlotIssue) {
					t.Errorf("the referral is %s, want slot-issue", got)
				}
				var asked string // the appointment of the last SRM^S01
				for _, m := range f.Peer.Received() {
					if _, ev := m.Type(); ev == pas.EventRequestBooking {
						asked = m.Get("ARQ-1.1")
					}
				}
				f.waitRequest(pas.EventRequestCancel, asked)
			})
		}
	}
}

// on returns the fixture for the (sub)test t.
func (f *confirmFixture) on(t *testing.T) *confirmFixture {
	c := *f.fixture
	c.T = t
	return &confirmFixture{fixture: &c, hold: f.hold}
}

// resourceOr returns b when st is a success, else nil.
func resourceOr(st int, b map[string]any) map[string]any {
	if st >= 300 {
		return nil
	}
	return b
}

// entryResource returns the resource of a Bundle's entry i.
func entryResource(b map[string]any, i int) map[string]any {
	entries, _ := b["entry"].([]any)
	if i >= len(entries) {
		return nil
	}
	r, _ := entries[i].(map[string]any)["resource"].(map[string]any)
	return r
}

// parameters is a Parameters resource of params.
func parameters(params ...map[string]any) map[string]any {
	ps := make([]any, len(params))
	for i, p := range params {
		ps[i] = p
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

// TestPASConfirmedIdempotency: a booking the PAS refused is not
// remembered under its Idempotency-Key (the client may retry it, and the
// retry books anew); one it accepted is, as the booked Appointment.
func TestPASConfirmedIdempotency(t *testing.T) {
	f := newConfirmFixture(t, false)
	f.Peer.Answer(answerS01(hl7v2.OutcomeError, "try later"))
	tok := f.Token(devserver.ClientGPSystem, apptest.SystemScopes)
	sr := f.referral()
	body := f.appointment(2, sr)
	st, replayed, first := f.doKey(tok, "POST", "/Appointment", body, "key-1")
	if st != http.StatusBadGateway || replayed {
		t.Fatalf("first attempt: %d (replayed %v) %v, want 502", st, replayed, first)
	}
	f.Peer.Answer(nil) // the PAS accepts from now on
	st, replayed, second := f.doKey(tok, "POST", "/Appointment", body, "key-1")
	if st != http.StatusCreated || replayed || second["status"] != "booked" {
		t.Fatalf("retry after the refusal: %d (replayed %v) %v, want a new booking, 201", st, replayed, second)
	}
	st, replayed, third := f.doKey(tok, "POST", "/Appointment", body, "key-1")
	if st != http.StatusCreated || !replayed || third["id"] != second["id"] || third["status"] != "booked" {
		t.Fatalf("retry after the acceptance: %d (replayed %v) %v %v, want the booked Appointment/%v replayed", st, replayed, third["id"], third["status"], second["id"])
	}
	f.waitRequest(pas.EventRequestCancel, "") // the refused booking's, delivered by the outbox
	if n := len(f.Peer.Received()); n != 3 {  // S01 refused, S04 for it, S01 accepted
		t.Errorf("the PAS received %d messages, want 3", n)
	}
}

// TestPASConfirmedChanges: a cancellation of a booked appointment of the
// PAS's service is queued as SRM^S04, a $reschedule as one SRM^S03 (no
// S04) about the moved appointment under its first placer id; the
// client is answered at once. A hold released is not sent.
func TestPASConfirmedChanges(t *testing.T) {
	f := newConfirmFixture(t, false)
	tok := f.Token(devserver.ClientGPSystem, apptest.SystemScopes)
	// A hold the PAS never heard of is released without a word to it.
	h := f.appointment(5, "")
	h["status"] = "pending"
	st, hold := f.Do(tok, "POST", "/Appointment", h)
	if st != http.StatusCreated {
		t.Fatalf("a hold: %d %v", st, hold)
	}
	hold["status"], hold["cancelationReason"] = "cancelled", map[string]any{"text": "not needed"}
	if st, b := f.Do(tok, "PUT", "/Appointment/"+hold["id"].(string), hold); st != http.StatusOK {
		t.Fatalf("releasing the hold: %d %v", st, b)
	}
	st, a := f.Do(tok, "POST", "/Appointment", f.appointment(3, ""))
	if st != http.StatusCreated || a["status"] != "booked" {
		t.Fatalf("booking: %d %v", st, a)
	}
	id := a["id"].(string)
	st, b := f.Do(tok, "POST", "/Appointment/"+id+"/$reschedule", parameters(
		map[string]any{"name": "slot", "valueReference": map[string]any{"reference": "Slot/slot-4"}}))
	if st != http.StatusOK {
		t.Fatalf("$reschedule: %d %v", st, b)
	}
	moved := entryResource(b, 0)
	if moved["status"] != "booked" {
		t.Fatalf("the rescheduled appointment is %v, want booked at once", moved["status"])
	}
	s03 := f.waitRequest(pas.EventRequestModify, "")
	if got := s03.Get("ARQ-1.1"); got != id {
		t.Errorf("SRM^S03's placer id is %q, want the first appointment's %s", got, id)
	}
	cancelled := moved
	cancelled["status"] = "cancelled"
	cancelled["cancelationReason"] = map[string]any{"text": "patient asked"}
	if st, b := f.Do(tok, "PUT", "/Appointment/"+moved["id"].(string), cancelled); st != http.StatusOK || b["status"] != "cancelled" {
		t.Fatalf("cancelling: %d %v", st, b)
	}
	s04 := f.waitRequest(pas.EventRequestCancel, "")
	if got := s04.Get("ARQ-1.1"); got != id {
		t.Errorf("SRM^S04's placer id is %q, want %s", got, id)
	}
	var events []string
	for _, m := range f.Peer.Applied() {
		_, ev := m.Type()
		events = append(events, ev)
	}
	if want := []string{"S01", "S03", "S04"}; fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("the PAS applied %v, want %v", events, want)
	}
	if got := f.Read("Slot", "slot-4")["status"]; got != "free" {
		t.Errorf("slot-4 is %v after the cancellation, want free", got)
	}
}

// doKey is fixture.Do with an Idempotency-Key; it reports whether the
// answer was a replay.
func (f *confirmFixture) doKey(token, method, path string, body any, key string) (int, bool, map[string]any) {
	f.T.Helper()
	resp, b := f.Send(token, method, path, body, "Idempotency-Key", key)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header.Get("Idempotent-Replayed") == "true", out
}

// TestPASErrorCodes: the codes a refused booking answers with are in the
// CodeSystem the server serves.
func TestPASErrorCodes(t *testing.T) {
	f := newFixture(t, pas.ModePASConfirmed, nil)
	st, cs := f.Do(f.Token(devserver.ClientGPSystem, apptest.SystemScopes), "GET", "/CodeSystem/error", nil)
	if st != http.StatusOK {
		t.Fatalf("GET CodeSystem/error: %d", st)
	}
	have := map[string]bool{}
	for _, c := range cs["concept"].([]any) {
		have[c.(map[string]any)["code"].(string)] = true
	}
	for _, code := range []string{pas.ErrPASRespondedWithError, pas.ErrPASNotResponding, pas.ErrPASConfirmsAlone} {
		if !have[code] {
			t.Errorf("CodeSystem error has no %s", code)
		}
	}
}

// TestPASConfirmedBundleAlone: a transaction Bundle that would book a slot
// the PAS confirms beside another entry is refused whole (422, nothing
// written, the PAS not asked): the PAS answers after the commit, and a
// refusal could not undo the other entries. Alone in its Bundle, it books.
func TestPASConfirmedBundleAlone(t *testing.T) {
	f := newConfirmFixture(t, false)
	tok := f.Token(devserver.ClientGPSystem, apptest.SystemScopes)
	before := apptest.Versions(t, f.App, "Appointment", "Slot", "ServiceRequest", "Task")
	asked := len(f.Peer.Received())
	st, b := f.Do(tok, "POST", "", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": f.appointment(3, ""), "request": map[string]any{"method": "POST", "url": "Appointment"}},
		map[string]any{"resource": f.appointment(4, ""), "request": map[string]any{"method": "POST", "url": "Appointment"}}}})
	if st != http.StatusUnprocessableEntity || apptest.DetailsCode(b) != pas.ErrPASConfirmsAlone {
		t.Fatalf("a transaction of two PAS bookings: %d %v, want 422 %s", st, b, pas.ErrPASConfirmsAlone)
	}
	if after := apptest.Versions(t, f.App, "Appointment", "Slot", "ServiceRequest", "Task"); !maps.Equal(before, after) {
		t.Errorf("the refused Bundle wrote something")
	}
	if n := len(f.Peer.Received()); n != asked {
		t.Errorf("the PAS was sent %d messages for a refused Bundle", n-asked)
	}
	st, b = f.Do(tok, "POST", "", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": f.appointment(3, ""), "request": map[string]any{"method": "POST", "url": "Appointment"}}}})
	if st != http.StatusOK || entryResource(b, 0)["status"] != "booked" {
		t.Fatalf("a transaction of one PAS booking: %d %v, want it booked", st, b)
	}
}

// TestPASConfirmedFillerID: a PAS that answers SRM^S01 with SRR^S01 gives
// its own id of the appointment (SCH-2); the booked Appointment keeps it
// (identifier FillerSystem), and the later SRM^S04 names it (ARQ-2).
func TestPASConfirmedFillerID(t *testing.T) {
	srr := newSRRPeer(t)
	f := &confirmFixture{fixture: newFixture(t, pas.ModePASConfirmed, func(s *pas.Settings) {
		s.Send, s.ConfirmTimeout = srr.addr, adapters.Duration(20*time.Second)
	})}
	tok := f.Token(devserver.ClientGPSystem, apptest.SystemScopes)
	st, a := f.Do(tok, "POST", "/Appointment", f.appointment(5, ""))
	if st != http.StatusCreated || a["status"] != "booked" {
		t.Fatalf("booking: %d %v", st, a)
	}
	id := a["id"].(string)
	want := "F-" + id
	var kept string
	for _, x := range a["identifier"].([]any) {
		if x := x.(map[string]any); x["system"] == pas.FillerSystem(instance) {
			kept, _ = x["value"].(string)
		}
	}
	if kept != want {
		t.Errorf("the booked Appointment keeps filler id %q, want %q (%v)", kept, want, a["identifier"])
	}
	a["status"], a["cancelationReason"] = "cancelled", map[string]any{"text": "patient asked"}
	if st, b := f.Do(tok, "PUT", "/Appointment/"+id, a); st != http.StatusOK {
		t.Fatalf("cancelling: %d %v", st, b)
	}
	s04 := srr.wait(t, pas.EventRequestCancel)
	if got := s04.Get("ARQ-2.1"); got != want {
		t.Errorf("SRM^S04 names filler id %q, want %q", got, want)
	}
}

// srrPeer is a PAS answering SRM^S01 with SRR^S01, its filler id "F-"
// and the placer id, and everything else with an ACK.
type srrPeer struct {
	addr string
	mu   sync.Mutex
	got  []*hl7v2.Message
	more chan struct{}
}

func newSRRPeer(t *testing.T) *srrPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &srrPeer{addr: ln.Addr().String(), more: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	srv := &mllp.Server{AllowAnyPeer: true, Handler: func(_ context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
		m, err := hl7v2.Parse(raw)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.got = append(p.got, m)
		p.mu.Unlock()
		select {
		case p.more <- struct{}{}:
		default:
		}
		ack, err := hl7v2.BuildAck(m, hl7v2.Ack{Outcome: hl7v2.OutcomeAccept})
		if err != nil {
			return nil, err
		}
		if _, ev := m.Type(); ev == pas.EventRequestBooking {
			for _, set := range [][2]string{{"MSH-9.1", "SRR"}, {"MSH-9.3", "SRR_S01"},
				{"SCH-1.1", m.Get("ARQ-1.1")}, {"SCH-2.1", "F-" + m.Get("ARQ-1.1")}, {"SCH-2.2", "PAS"}} {
				if err := ack.Set(set[0], set[1]); err != nil {
					return nil, err
				}
			}
		}
		return ack.Encode(), nil
	}}
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// wait waits until the peer has received an SRM of event and returns it.
func (p *srrPeer) wait(t *testing.T, event string) *hl7v2.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		p.mu.Lock()
		for _, m := range p.got {
			if _, ev := m.Type(); ev == event {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the PAS received no SRM^%s", event)
		}
	}
}

// TestPASConfirmedMovedIn: an appointment of another service rescheduled
// into the PAS's slot is, to the PAS, a new booking: it waits for its
// SRM^S01 (and is refused with it), rather than being told as a move.
func TestPASConfirmedMovedIn(t *testing.T) {
	f := newConfirmFixture(t, false)
	start := f.SlotStart(0).Add(-time.Hour)
	apptest.Seed(t, f.App,
		otherSchedule(), slotRes("other-0", "sched-other", start, slotLength))
	tok := f.Token(devserver.ClientGPSystem, apptest.SystemScopes)
	a := f.appointment(0, "")
	a["slot"] = []any{map[string]any{"reference": "Slot/other-0"}}
	a["start"], a["end"] = start.Format(time.RFC3339), start.Add(slotLength).Format(time.RFC3339)
	a["participant"] = []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patientID}, "status": "accepted"}}
	st, booked := f.Do(tok, "POST", "/Appointment", a)
	if st != http.StatusCreated || booked["status"] != "booked" || len(f.Peer.Received()) != 0 {
		t.Fatalf("booking another service: %d %v (the PAS received %d messages)", st, booked, len(f.Peer.Received()))
	}
	f.Peer.Answer(answerS01(hl7v2.OutcomeReject, "unknown patient"))
	st, b := f.Do(tok, "POST", "/Appointment/"+booked["id"].(string)+"/$reschedule", parameters(
		map[string]any{"name": "slot", "valueReference": map[string]any{"reference": "Slot/slot-2"}}))
	if st != http.StatusBadGateway || apptest.DetailsCode(b) != pas.ErrPASRespondedWithError {
		t.Fatalf("$reschedule into the PAS's slot: %d %v, want 502", st, b)
	}
	if _, ev := f.Peer.Received()[0].Type(); ev != pas.EventRequestBooking {
		t.Errorf("the PAS was sent SRM^%s, want S01", ev)
	}
	if got := f.Read("Slot", "slot-2")["status"]; got != "free" {
		t.Errorf("slot-2 is %v, want free", got)
	}
}

// TestPASConfirmedHoldExpiry: a booking left awaiting the PAS when
// Signpost stopped before the answer (here: stored so, as a crash would
// leave it) is released when its hold expires, and the PAS is told to
// cancel it (SRM^S04), in case it had accepted.
func TestPASConfirmedHoldExpiry(t *testing.T) {
	f := newConfirmFixture(t, false)
	start := f.SlotStart(4)
	expired := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	appt := map[string]any{"resourceType": "Appointment", "id": "left", "status": "pending",
		"slot": []any{map[string]any{"reference": "Slot/slot-4"}}, "start": start.Format(time.RFC3339), "end": start.Add(slotLength).Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patientID}, "status": "accepted"}},
		"extension": []any{
			map[string]any{"url": booking.ExtAwaitingConfirmation, "valueString": instance},
			map[string]any{"url": booking.ExtHoldExpires, "valueInstant": expired}}}
	slot := f.Read("Slot", "slot-4")
	slot["status"] = "busy-tentative"
	f.store(slot, appt)
	if n, err := f.App.Booking.Sweep(write.AsServer(context.Background())); err != nil || n != 1 { // as the server sweeps
		t.Fatalf("Sweep released %d holds (%v), want 1", n, err)
	}
	s04 := f.waitRequest(pas.EventRequestCancel, "left")
	if _, ev := s04.Type(); ev != pas.EventRequestCancel {
		t.Errorf("the PAS was sent %s", ev)
	}
	if got := f.Read("Slot", "slot-4")["status"]; got != "free" {
		t.Errorf("slot-4 is %v, want free", got)
	}
}

// store writes resources straight to the store with their index entries,
// without the write path's rules: the state a crash leaves.
func (f *confirmFixture) store(resources ...map[string]any) {
	f.T.Helper()
	err := f.App.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, r := range resources {
			typ, id := r["resourceType"].(string), r["id"].(string)
			var version int64 = 1
			if cur, err := tx.Read(ctx, typ, id); err == nil {
				version = cur.Version + 1
			}
			raw, err := json.Marshal(r)
			if err != nil {
				return err
			}
			idx, err := f.App.Search.Extract(typ, raw)
			if err != nil {
				return err
			}
			res := &fhir.Resource{Type: typ, ID: id, Version: version, LastUpdated: time.Now().UTC(), JSON: raw}
			if err := tx.Put(ctx, &store.Write{Resource: res, Index: idx}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.T.Fatalf("storing: %v", err)
	}
}
