package booking_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// newSecureBooking returns a server with authorisation and audit on, as
// the call centre (user/*.cruds), over service hs, schedule sc, patients
// p1 and p2 and the given free 15-minute slots from tomorrow 09:00, of
// which those in busy are already booked (for p2).
func newSecureBooking(t *testing.T, free []string, busy ...string) *server {
	t.Helper()
	data := t.TempDir()
	seed := newServer(t, app.Config{Data: data}) // open: the fixtures are not under test
	seed.basic()
	for i, id := range free {
		seed.put(slotAt(id, "sc", tomorrow9().Add(time.Duration(i)*15*time.Minute), 15*time.Minute))
	}
	for _, id := range busy {
		must(t, "booking "+id, seed.do("POST", "/Appointment", booked("p2", id)), http.StatusCreated)
	}
	seed.app.Close()
	s := newServer(t, app.Config{Data: data, Auth: true})
	s.token = s.mint(devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	return s
}

// mint returns a development-server token for the server's data.
func (s *server) mint(opts devserver.TokenOptions) string {
	s.t.Helper()
	tok, err := devserver.MintToken(s.app.Config.Data, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// holdWriter starts a write transaction that waits, so that every other
// store transaction queues behind it until release is called (at the end
// of the test at the latest).
func (s *server) holdWriter() (release func()) {
	in, out, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var entered, released sync.Once
	go func() {
		done <- s.app.Writes.Update(context.Background(), func(context.Context, *write.Tx) error {
			entered.Do(func() { close(in) })
			<-out
			return nil
		})
	}()
	<-in
	release = func() {
		released.Do(func() {
			close(out)
			if err := <-done; err != nil {
				s.t.Errorf("the transaction holding the writer: %v", err)
			}
		})
	}
	s.t.Cleanup(release)
	return release
}

// answerWithin sends a request and returns its answer, or nil when there
// is none within d (with the writer held: when it waits for the writer).
func (s *server) answerWithin(d time.Duration, method, path string, body any, headers ...string) *response {
	got := make(chan *response, 1)
	go func() { got <- s.do(method, path, body, headers...) }()
	select {
	case r := <-got:
		return r
	case <-time.After(d):
		return nil
	}
}

// issue is an OperationOutcome issue as a client reads it.
type issue struct {
	Severity, Code, Diagnostics string
	Details                     string
	Expression                  []string
}

func issues(t *testing.T, r *response) []issue {
	t.Helper()
	var oo struct {
		ResourceType string
		Issue        []struct {
			Severity, Code, Diagnostics string
			Details                     struct {
				Coding []struct{ System, Code string }
			}
			Expression []string
		}
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", r.body)
	}
	var out []issue
	for _, is := range oo.Issue {
		x := issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression}
		for _, c := range is.Details.Coding {
			if c.System == fhir.ErrorSystem {
				x.Details = c.Code
			}
		}
		out = append(out, x)
	}
	return out
}

// slotTaken is the answer to a booking whose slot at is taken.
func slotTaken(slot, status, at string) []issue {
	return []issue{{Severity: "error", Code: "conflict", Details: booking.ErrSlotNotAvailable, Expression: []string{at},
		Diagnostics: "Slot/" + slot + " is not available: it is " + status}}
}

// refusedCreates counts the audit trail's records of refused
// interactions (outcome 4) of subtype sub.
func (s *server) refusedRecords(sub string) int {
	s.t.Helper()
	s.app.API.Flush()
	q, err := s.app.Search.Parse("AuditEvent", url.Values{"outcome": {"4"}, "subtype": {sub}, "_count": {"1000"}}, search.ParseOptions{Strict: true})
	if err != nil {
		s.t.Fatal(err)
	}
	page, err := s.app.Store.Search(context.Background(), q)
	if err != nil {
		s.t.Fatal(err)
	}
	return len(page.Resources)
}

// TestTakenSlotRefusedWithoutTheWriter: with authorisation and audit on,
// a booking (POST Appointment, $book of an appointment-resource or of a
// proposal, $hold) of a slot already taken is answered while the store's
// writer is busy with another transaction: the precheck refuses it on
// the committed state. The answer is the transaction's (POST Appointment
// with If-None-Exist, which is not prechecked, gives the same bytes), the
// failed attempt is audited as before, and no appointment is written.
func TestTakenSlotRefusedWithoutTheWriter(t *testing.T) {
	s := newSecureBooking(t, []string{"a", "b", "c", "d", "e"}, "a")
	// Proposals for d and e, then d and e taken by others.
	var proposals = map[string]string{}
	for _, a := range entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs", nil), 200)) {
		proposals[slotOf(a)] = a["id"].(string)
	}
	for _, id := range []string{"d", "e"} {
		if proposals[id] == "" {
			t.Fatalf("$find proposed no appointment in Slot/%s: %v", id, proposals)
		}
		must(t, "booking "+id, s.do("POST", "/Appointment", booked("p2", id)), http.StatusCreated)
	}
	resource := func(slots ...string) map[string]any {
		a := booked("p1", slots...)
		a["status"] = "proposed"
		return a
	}
	for _, c := range []struct {
		name, path string
		body       any
		sub        string // the audit record's subtype
		want       []issue
	}{
		{"POST Appointment", "/Appointment", booked("p1", "a"), "create", slotTaken("a", "busy", "Appointment.slot[0]")},
		{"POST Appointment, second slot taken", "/Appointment", booked("p1", "b", "a"), "create", slotTaken("a", "busy", "Appointment.slot[1]")},
		{"$book appointment-resource", "/Appointment/$book", params("appointment-resource", resource("a")), "operation", slotTaken("a", "busy", "Appointment.slot[0]")},
		{"$book proposal", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+proposals["d"]), "patient-reference", ref("Patient/p1")), "operation", slotTaken("d", "busy", "Appointment.slot[0]")},
		{"$hold proposal", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+proposals["e"])), "operation", slotTaken("e", "busy", "Appointment.slot[0]")},
	} {
		t.Run(c.name, func(t *testing.T) {
			audited := s.refusedRecords(c.sub)
			release := s.holdWriter()
			r := s.answerWithin(20*time.Second, "POST", c.path, c.body)
			release()
			if r == nil {
				t.Fatalf("no answer within 20s while the store's writer was busy")
			}
			must(t, c.name, r, http.StatusConflict)
			if diff := cmp.Diff(c.want, issues(t, r)); diff != "" {
				t.Errorf("OperationOutcome (-want +got):\n%s", diff)
			}
			if c.path == "/Appointment" { // the transaction's answer to the same request
				tr := must(t, "the same, conditional", s.do("POST", c.path, c.body, "If-None-Exist", "identifier=urn:x|none"), http.StatusConflict)
				if string(tr.body) != string(r.body) {
					t.Errorf("the precheck answered\n%s\nthe transaction\n%s", r.body, tr.body)
				}
				audited++
			}
			if got := s.refusedRecords(c.sub); got != audited+1 {
				t.Errorf("%d refused %s records in the audit trail after the request, want %d", got, c.sub, audited+1)
			}
		})
	}
	if n := s.count("/Appointment?patient=Patient/p1"); n != 0 {
		t.Errorf("%d appointments for p1, want none", n)
	}
	s.check()
}

// TestPrecheckKeepsAuthorisationFirst: a client that may not book is
// refused as before, whether or not the slot is taken (so the refusal
// says nothing about the slot), and a patient booking for another patient
// is refused for that, not for the slot.
func TestPrecheckKeepsAuthorisationFirst(t *testing.T) {
	s := newSecureBooking(t, []string{"a", "b"}, "a")
	readOnly := s.mint(devserver.TokenOptions{Scope: "user/*.rs", Client: devserver.ClientCallCentre})
	patient := s.mint(devserver.TokenOptions{Patient: "p2", Scope: "patient/*.cruds"})
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"read-only token", readOnly, http.StatusForbidden},
		{"another patient's token", patient, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.token = c.token
			taken := s.do("POST", "/Appointment", booked("p1", "a"))
			free := s.do("POST", "/Appointment", booked("p1", "b"))
			if taken.status != c.want || free.status != c.want {
				t.Fatalf("status %d for a taken slot, %d for a free one, want %d for both\n%s\n%s", taken.status, free.status, c.want, taken.body, free.body)
			}
			a, b := issues(t, taken), issues(t, free)
			for i := range b {
				b[i].Diagnostics = strings.ReplaceAll(b[i].Diagnostics, "Slot/b", "Slot/a")
			}
			if diff := cmp.Diff(b, a); diff != "" || strings.Contains(string(taken.body), "busy") {
				t.Errorf("the refusal for a taken slot differs from the one for a free slot (-free +taken):\n%s%s", diff, taken.body)
			}
		})
	}
	if got := s.slotStatus("b"); got != "free" {
		t.Errorf("Slot/b is %s, want free", got)
	}
}

// TestPrecheckIdempotencyKey: a booking refused by the precheck records
// nothing under its Idempotency-Key, as a refusal never did: the same
// request is refused again (not replayed), and the key books another
// slot.
func TestPrecheckIdempotencyKey(t *testing.T) {
	s := newSecureBooking(t, []string{"a", "b"}, "a")
	key := []string{"Idempotency-Key", "k-1"}
	for i := range 2 {
		r := must(t, fmt.Sprintf("attempt %d", i+1), s.do("POST", "/Appointment", booked("p1", "a"), key...), http.StatusConflict)
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("attempt %d: a refusal was replayed", i+1)
		}
		if diff := cmp.Diff(slotTaken("a", "busy", "Appointment.slot[0]"), issues(t, r)); diff != "" {
			t.Errorf("attempt %d (-want +got):\n%s", i+1, diff)
		}
	}
	first := must(t, "the key for slot b", s.do("POST", "/Appointment", booked("p1", "b"), key...), http.StatusCreated)
	again := must(t, "retried", s.do("POST", "/Appointment", booked("p1", "b"), key...), http.StatusCreated)
	if again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("the retry was not the replay of %s: %v", first.header.Get("Location"), again.header)
	}
}

// TestPrecheckRace: with authorisation on, clients race for each slot by
// POST Appointment and $book at once: each slot is booked exactly once,
// every other attempt is refused with the same OperationOutcome (whether
// the precheck or the transaction refused it), and the slots and
// appointments agree.
func TestPrecheckRace(t *testing.T) {
	const slots, racers = 6, 10
	var ids []string
	for i := range slots {
		ids = append(ids, fmt.Sprintf("r%d", i))
	}
	s := newSecureBooking(t, ids)
	for _, id := range ids {
		var wg sync.WaitGroup
		answers := make([]*response, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					answers[i] = s.do("POST", "/Appointment", booked("p1", id))
					return
				}
				a := booked("p1", id)
				a["status"] = "proposed"
				answers[i] = s.do("POST", "/Appointment/$book", params("appointment-resource", a))
			}()
		}
		wg.Wait()
		won := 0
		for i, r := range answers {
			switch r.status {
			case http.StatusCreated, http.StatusOK:
				won++
			case http.StatusConflict:
				if diff := cmp.Diff(slotTaken(id, "busy", "Appointment.slot[0]"), issues(t, r)); diff != "" {
					t.Errorf("Slot/%s, racer %d (-want +got):\n%s", id, i, diff)
				}
			default:
				t.Errorf("Slot/%s, racer %d: %d %s", id, i, r.status, r.body)
			}
		}
		if won != 1 {
			t.Errorf("Slot/%s booked %d times, want once", id, won)
		}
	}
	if sum := s.check(); sum.LiveAppointments != slots || sum.BusySlots != slots {
		t.Errorf("%d live appointments and %d busy slots, want %d of each", sum.LiveAppointments, sum.BusySlots, slots)
	}
}
