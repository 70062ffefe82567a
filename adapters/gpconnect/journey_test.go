package gpconnect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/gpconnect"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/standin"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/booking"
)

// interactionOf is the GP Connect interaction a request the stand-in
// received is (by method and path, and for a PUT its body's status).
func interactionOf(r standin.Request) string {
	switch {
	case r.Method == "GET" && r.Path == "/Slot":
		return stu3.InteractionSearchSlots
	case r.Method == "GET" && r.Path == "/Patient":
		return stu3.InteractionFindPatient
	case r.Method == "POST" && r.Path == "/Patient/$gpc.registerpatient":
		return stu3.InteractionRegisterPatient
	case r.Method == "POST" && r.Path == "/Appointment":
		return stu3.InteractionBookAppointment
	case r.Method == "GET" && strings.HasPrefix(r.Path, "/Appointment/"):
		return stu3.InteractionReadAppointment
	case r.Method == "PUT" && strings.HasPrefix(r.Path, "/Appointment/"):
		var v struct{ Status string }
		_ = json.Unmarshal(r.Body, &v)
		if v.Status == "cancelled" {
			return stu3.InteractionCancelAppointment
		}
		return stu3.InteractionAmendAppointment
	case r.Method == "GET" && strings.HasPrefix(r.Path, "/Patient/") && strings.HasSuffix(r.Path, "/Appointment"):
		return stu3.InteractionPatientAppointments
	}
	return "?"
}

// checkRequests checks every request the stand-in received: the GP
// Connect headers (a fresh UUID Ssp-TraceID each, the ASIDs, the
// interaction's id, the media types) and the JWT's claims, which name
// the instance for its polls and the Signpost client who asked for the
// rest. It returns the interactions in order.
func checkRequests(t *testing.T, gp *standin.Server, client, clientOrg string) []string {
	t.Helper()
	traces := map[string]bool{}
	var out []string
	for i, r := range gp.Requests() {
		at := fmt.Sprintf("request %d (%s %s)", i, r.Method, r.Path)
		want := interactionOf(r)
		out = append(out, want)
		h := r.Header
		if id := h.Get("Ssp-TraceID"); uuid.Validate(id) != nil || traces[id] {
			t.Errorf("%s: Ssp-TraceID %q is not a fresh UUID", at, id)
		} else {
			traces[id] = true
		}
		if h.Get("Ssp-From") != consumerASID || h.Get("Ssp-To") != practiceASID {
			t.Errorf("%s: Ssp-From %q, Ssp-To %q", at, h.Get("Ssp-From"), h.Get("Ssp-To"))
		}
		if got := h.Get("Ssp-InteractionID"); got != want {
			t.Errorf("%s: Ssp-InteractionID %q, want %q", at, got, want)
		}
		if h.Get("Accept") != gpconnect.FHIRJSON || (len(r.Body) > 0 && h.Get("Content-Type") != gpconnect.FHIRJSON) {
			t.Errorf("%s: Accept %q, Content-Type %q", at, h.Get("Accept"), h.Get("Content-Type"))
		}
		if r.Code == stu3.CodeBadRequest || r.Code == stu3.CodeInvalidResource && r.Claims == nil {
			t.Errorf("%s: the stand-in refused it: %d %s", at, r.Status, r.Code)
		}
		c, _, err := stu3.DecodeUnsigned(strings.TrimPrefix(h.Get("Authorization"), "Bearer "))
		if err != nil {
			t.Errorf("%s: the JWT: %v", at, err)
			continue
		}
		who, org := client, clientOrg
		if want == stu3.InteractionSearchSlots {
			who, org = adapters.ClientIDPrefix+instance, practice
		}
		if c.Sub != who || c.RequestingPractitioner == nil || c.RequestingPractitioner.ID != who {
			t.Errorf("%s: sub %q, requesting_practitioner %+v; want %s", at, c.Sub, c.RequestingPractitioner, who)
		}
		if c.RequestingOrganization == nil || len(c.RequestingOrganization.Identifier) == 0 || c.RequestingOrganization.Identifier[0].Value != org {
			t.Errorf("%s: requesting_organization %+v, want ODS %s", at, c.RequestingOrganization, org)
		}
		if c.RequestingDevice == nil || c.RequestingDevice.Model != "Signpost" {
			t.Errorf("%s: requesting_device %+v", at, c.RequestingDevice)
		}
		if c.RequestedScope != stu3.ScopeOf(want) || c.Aud != stu3.Audience || c.ReasonForRequest != stu3.ReasonDirectCare {
			t.Errorf("%s: requested_scope %q, aud %q, reason %q", at, c.RequestedScope, c.Aud, c.ReasonForRequest)
		}
	}
	return out
}

// TestJourney: the whole journey through the real HTTP stack, the SQLite
// store and the stand-in: the practice's free slots are copied into
// Signpost; a 111 call handler books one for a patient registered there
// (found there first, booked there, then booked in Signpost with the
// practice's appointment id); amends its comment and cancels it with a
// reason, each reaching the practice; a slot the practice gave away
// meanwhile is 409 SLOT_NOT_AVAILABLE; a patient not registered there
// 422 PATIENT_NOT_REGISTERED. Every request the stand-in received
// carried GP Connect's headers and the JWT of who asked.
func TestJourney(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	gp := f.Practice
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	tok := f.Token(devserver.ClientCallCentre, apptest.SystemScopes)

	// Poll: Signpost's free slots are the practice's.
	free := gp.FreeSlots()
	var want []string
	horizon := time.Now().Add(bookDays * 24 * time.Hour)
	for _, s := range free {
		if st, _ := time.Parse(time.RFC3339, s.End); st.Before(horizon) {
			want = append(want, "gpc-"+practice+"-"+s.ID)
		}
	}
	slots := f.slots(tok)
	var got []string
	for _, s := range slots {
		got = append(got, s["id"].(string))
		if identifier(s, gpconnect.SlotSystem) == "" {
			t.Fatalf("Slot/%s has no %s identifier", s["id"], gpconnect.SlotSystem)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) == 0 || !slices.Equal(want, got) {
		t.Fatalf("Signpost's free slots %v, want the practice's %v", got, want)
	}
	sched := f.Read("Schedule", strings.TrimPrefix(slots[0]["schedule"].(map[string]any)["reference"].(string), "Schedule/"))
	if ph, _ := sched["planningHorizon"].(map[string]any); ph == nil || ph["end"] == nil {
		t.Errorf("the Schedule has no planning horizon: %v", sched)
	}

	// Book.
	slot := slots[0]
	practiceSlot := strings.TrimPrefix(slot["id"].(string), "gpc-"+practice+"-")
	st, appt := f.Do(tok, "POST", "/Appointment", appointment(slot))
	if st != http.StatusCreated || appt["status"] != "booked" {
		t.Fatalf("booking: %d %v", st, appt)
	}
	practiceAppt := identifier(appt, gpconnect.AppointmentSystem)
	pa, ok := gp.Appointment(strings.TrimPrefix(practiceAppt, practice+"/"))
	if !ok || pa.Status != "booked" || len(pa.Slot) != 1 || pa.Slot[0].Reference != "Slot/"+practiceSlot {
		t.Fatalf("the practice's appointment %q: %+v", practiceAppt, pa)
	}
	if s := f.Read("Slot", slot["id"].(string)); s["status"] != "busy" {
		t.Errorf("the booked slot is %v", s["status"])
	}

	// Amend.
	appt["comment"] = "Prefers a call back first"
	if st, b := f.Do(tok, "PUT", "/Appointment/"+appt["id"].(string), appt); st != http.StatusOK {
		t.Fatalf("amending: %d %v", st, b)
	} else {
		appt = b
	}
	f.waitFor("the practice's appointment amended", func() bool {
		pa, _ := gp.Appointment(pa.ID)
		return pa.Comment == "Prefers a call back first"
	})
	// What GP Connect cannot amend is refused.
	moved := map[string]any{}
	for k, v := range appt {
		moved[k] = v
	}
	moved["slot"] = []any{ref("Slot/" + slots[1]["id"].(string))}
	moved["start"], moved["end"] = slots[1]["start"], slots[1]["end"]
	if st, b := f.Do(tok, "PUT", "/Appointment/"+appt["id"].(string), moved); st != http.StatusUnprocessableEntity || apptest.DetailsCode(b) != booking.ErrNotAmendable {
		t.Errorf("moving the appointment: %d %v, want 422 %s", st, b, booking.ErrNotAmendable)
	}

	// Cancel.
	appt["status"] = "cancelled"
	appt["cancelationReason"] = map[string]any{"text": "Patient feels better"}
	if st, b := f.Do(tok, "PUT", "/Appointment/"+appt["id"].(string), appt); st != http.StatusOK {
		t.Fatalf("cancelling: %d %v", st, b)
	}
	f.waitFor("the practice's appointment cancelled", func() bool {
		pa, _ := gp.Appointment(pa.ID)
		for _, x := range pa.Extension {
			if x.URL == stu3.ExtCancellationReason && x.ValueString != nil && *x.ValueString == "Patient feels better" {
				return pa.Status == "cancelled"
			}
		}
		return false
	})

	// The practice's 409: a slot its staff booked after the poll.
	taken := slots[2]
	if !gp.SetSlotStatus(strings.TrimPrefix(taken["id"].(string), "gpc-"+practice+"-"), "busy") {
		t.Fatal("no such slot at the practice")
	}
	st, b := f.Do(tok, "POST", "/Appointment", appointment(taken))
	if st != http.StatusConflict || apptest.DetailsCode(b) != booking.ErrSlotNotAvailable {
		t.Fatalf("booking a slot the practice gave away: %d %v, want 409 %s", st, b, booking.ErrSlotNotAvailable)
	}
	// The next poll marks it busy in Signpost.
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	if s := f.Read("Slot", taken["id"].(string)); s["status"] != "busy" {
		t.Errorf("the slot the practice gave away is %v after the poll, want busy", s["status"])
	}
	// The cancelled appointment's slot is free at the practice again, and
	// so in Signpost.
	if s := f.Read("Slot", slot["id"].(string)); s["status"] != "free" {
		t.Errorf("the cancelled appointment's slot is %v after the poll, want free", s["status"])
	}

	// A patient the practice does not know, and it takes no temporaries.
	gp.SetAcceptTemporary(false)
	st, b = f.Do(tok, "POST", "/Appointment", appointmentFor(slots[3], visitorID))
	if st != http.StatusUnprocessableEntity || apptest.DetailsCode(b) != gpconnect.ErrPatientNotRegistered {
		t.Fatalf("booking for a patient not registered: %d %v, want 422 %s", st, b, gpconnect.ErrPatientNotRegistered)
	}

	seq := checkRequests(t, gp, devserver.ClientCallCentre, devserver.DemoCallCentre)
	var asked []string
	for _, s := range seq {
		if s != stu3.InteractionSearchSlots {
			asked = append(asked, s[strings.LastIndex(s, ":")+1:])
		}
	}
	wantAsked := []string{"patient-1", "appointment-1", // book
		"appointment-1", "appointment-1", // amend: read, update
		"appointment-1", "appointment-1", // cancel: read, cancel
		"patient-1", "appointment-1", // the practice's 409
		"patient-1"} // not registered
	if !slices.Equal(asked, wantAsked) {
		t.Errorf("the practice was asked %v, want %v", asked, wantAsked)
	}
}

// TestTemporaryPatient: a practice that accepts temporary patients has a
// patient not registered with it registered ($gpc.registerpatient) and
// booked.
func TestTemporaryPatient(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(s *gpconnect.Settings, _ *standin.Server) { s.TemporaryPatients = true })
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	tok := f.Token(devserver.ClientCallCentre, apptest.SystemScopes)
	slots := f.slots(tok)
	st, b := f.Do(tok, "POST", "/Appointment", appointmentFor(slots[0], visitorID))
	if st != http.StatusCreated || b["status"] != "booked" {
		t.Fatalf("booking for a temporary patient: %d %v", st, b)
	}
	seq := checkRequests(t, f.Practice, devserver.ClientCallCentre, devserver.DemoCallCentre)
	if !slices.Contains(seq, stu3.InteractionRegisterPatient) {
		t.Errorf("the patient was not registered at the practice: %v", seq)
	}
}

// TestPracticeDown: a practice that does not answer leaves its slots as
// they were; the instance is degraded with the error in the operator view
// and /readyz, and recovers at the next poll that works.
func TestPracticeDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	tok := f.Token(devserver.ClientCallCentre, apptest.SystemScopes)
	before := f.slots(tok)
	for _, mode := range []standin.Mode{standin.Refusing, standin.Failing} {
		if err := f.Practice.SetMode(mode); err != nil {
			t.Fatal(err)
		}
		if err := f.poll(); err == nil {
			t.Fatalf("mode %d: the poll succeeded", mode)
		}
		after := f.slots(tok)
		if len(after) != len(before) {
			t.Fatalf("mode %d: %d free slots after a failed poll, %d before", mode, len(after), len(before))
		}
		for i := range after {
			if after[i]["meta"].(map[string]any)["versionId"] != before[i]["meta"].(map[string]any)["versionId"] {
				t.Errorf("mode %d: Slot/%s changed", mode, after[i]["id"])
			}
		}
		st := f.GP.Status(context.Background())
		if st.State != adapters.StateDegraded || !strings.Contains(st.Detail, "polls fail since") || !strings.Contains(st.LastError, "polling the practice") {
			t.Errorf("mode %d: status %+v", mode, st)
		}
		_, readyz := f.GetPage("/readyz")
		if !strings.Contains(string(readyz), "adapter "+instance+" (gpconnect): degraded") {
			t.Errorf("mode %d: /readyz says\n%s", mode, readyz)
		}
		if last, msg := f.GP.LastPoll(); last.IsZero() || msg == "" {
			t.Errorf("mode %d: LastPoll %v %q", mode, last, msg)
		}
	}
	// The operator view shows it too.
	st, b := f.Do(f.Token(devserver.ClientOperator, apptest.SystemScopes), "GET", "/$adapters", nil)
	if raw, _ := json.Marshal(b); st != http.StatusOK || !strings.Contains(string(raw), "polling the practice") {
		t.Errorf("$adapters: %d %s", st, raw)
	}
	if err := f.Practice.SetMode(standin.Up); err != nil {
		t.Fatal(err)
	}
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	if st := f.GP.Status(context.Background()); st.State != adapters.StateUp {
		t.Errorf("after the practice came back: %+v", st)
	}
	checkRequests(t, f.Practice, "", "")
}

// TestPracticeSlow: a practice answering after the timeout gives 504
// GP_PRACTICE_NOT_RESPONDING, the Signpost appointment is cancelled, and
// the booking the practice made all the same is cancelled there through
// the outbox (found among the patient's appointments by slot). A booking
// the client cancels while the practice books it is cancelled there too.
func TestPracticeSlow(t *testing.T) {
	t.Parallel()
	// The practice answers a booking long after the timeout (which is long
	// enough for its other answers on a loaded machine).
	slow := &slowBooking{delay: time.Minute}
	f := newFixture(t, func(s *gpconnect.Settings, gp *standin.Server) {
		slow.h = gp
		srv := httptest.NewServer(slow)
		t.Cleanup(srv.Close)
		s.Endpoint = srv.URL + gp.BasePath()
		s.Timeout = adapters.Duration(2 * time.Second)
	})
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	tok := f.Token(devserver.ClientCallCentre, apptest.SystemScopes)
	slots := f.slots(tok)
	st, b := f.Do(tok, "POST", "/Appointment", appointment(slots[0]))
	if st != http.StatusGatewayTimeout || apptest.DetailsCode(b) != gpconnect.ErrPracticeNotResponding {
		t.Fatalf("booking at a slow practice: %d %v, want 504 %s", st, b, gpconnect.ErrPracticeNotResponding)
	}
	practiceSlot := strings.TrimPrefix(slots[0]["id"].(string), "gpc-"+practice+"-")
	f.waitFor("the practice's booking cancelled by the reconciliation", func() bool {
		booked := false
		for _, a := range f.Practice.Appointments() {
			if a.Slot[0].Reference == "Slot/"+practiceSlot && a.Status != "cancelled" {
				booked = true
			}
		}
		s, _ := f.Practice.Slot(practiceSlot)
		return !booked && s.Status == "free"
	})
	if n := len(f.Practice.Appointments()); n != 1 {
		t.Errorf("the practice has %d appointments, want the one booked late (and cancelled)", n)
	}
	// In Signpost: no live appointment on the slot, which is free again.
	if s := f.Read("Slot", slots[0]["id"].(string)); s["status"] != "free" {
		t.Errorf("the slot is %v in Signpost", s["status"])
	}
	st, list := f.Do(tok, "GET", "/Appointment?slot=Slot/"+slots[0]["id"].(string)+"&status=booked,pending", nil)
	if st != http.StatusOK || list["total"] != nil && list["total"].(float64) != 0 || len(entries(list)) != 0 {
		t.Errorf("live appointments on the slot: %d %v", st, list)
	}
	seq := checkRequests(t, f.Practice, devserver.ClientCallCentre, devserver.DemoCallCentre)
	if !slices.Contains(seq, stu3.InteractionPatientAppointments) || !slices.Contains(seq, stu3.InteractionCancelAppointment) {
		t.Errorf("the reconciliation did not find and cancel the booking: %v", seq)
	}
	if st := f.GP.Status(context.Background()); st.LastError == "" {
		t.Errorf("the timeout is not in the operator view: %+v", st)
	}
}

// slowBooking serves the stand-in h, answering its bookings (POST
// Appointment) only delay after the stand-in made them: the practice
// books, but too late for Signpost.
type slowBooking struct {
	h     http.Handler
	delay time.Duration
	gate  chan struct{} // when not nil, the answer waits for it instead
}

func (s *slowBooking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/Appointment") {
		s.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, r)
	wait := time.After(s.delay)
	if s.gate != nil {
		wait = nil
	}
	select {
	case <-wait:
	case <-s.gate:
	case <-r.Context().Done():
		return // the client gave up: the practice booked all the same
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// TestCancelledWhileBooking: a booking the client cancels while the
// practice books it cannot be kept: the client is answered 409, and the
// booking the practice made is cancelled there through the outbox (its
// id known).
func TestCancelledWhileBooking(t *testing.T) {
	t.Parallel()
	slow := &slowBooking{gate: make(chan struct{})}
	f := newFixture(t, func(s *gpconnect.Settings, gp *standin.Server) {
		slow.h = gp
		srv := httptest.NewServer(slow)
		t.Cleanup(srv.Close)
		s.Endpoint = srv.URL + gp.BasePath()
	})
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	tok := f.Token(devserver.ClientCallCentre, apptest.SystemScopes)
	slot := f.slots(tok)[0]
	type answer struct {
		st int
		b  map[string]any
	}
	done := make(chan answer, 1)
	go func() {
		st, b := f.Do(tok, "POST", "/Appointment", appointment(slot))
		done <- answer{st, b}
	}()
	var pending map[string]any
	f.waitFor("the booking pending at the practice", func() bool {
		_, list := f.Do(tok, "GET", "/Appointment?status=pending&slot=Slot/"+slot["id"].(string), nil)
		if e := entries(list); len(e) == 1 && len(f.Practice.Appointments()) == 1 {
			pending = e[0].(map[string]any)["resource"].(map[string]any)
			return true
		}
		return false
	})
	pending["status"] = "cancelled"
	pending["cancelationReason"] = map[string]any{"text": "Patient rang back: not needed"}
	if st, b := f.Do(tok, "PUT", "/Appointment/"+pending["id"].(string), pending); st != http.StatusOK {
		t.Fatalf("cancelling the pending booking: %d %v", st, b)
	}
	close(slow.gate)
	got := <-done
	if got.st != http.StatusConflict {
		t.Fatalf("the booking cancelled meanwhile answered %d %v, want 409", got.st, got.b)
	}
	f.waitFor("the practice's booking cancelled", func() bool {
		as := f.Practice.Appointments()
		return len(as) == 1 && as[0].Status == "cancelled"
	})
	if s := f.Read("Slot", slot["id"].(string)); s["status"] != "free" {
		t.Errorf("the slot is %v in Signpost", s["status"])
	}
	checkRequests(t, f.Practice, devserver.ClientCallCentre, devserver.DemoCallCentre)
}

// TestPracticeError: a practice answering an error other than a
// duplicate gives 502 GP_PRACTICE_RESPONDED_WITH_ERROR; the Signpost
// appointment is cancelled and its slot free.
func TestPracticeError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	tok := f.Token(devserver.ClientCallCentre, apptest.SystemScopes)
	slot := f.slots(tok)[0]
	if err := f.Practice.SetMode(standin.Failing); err != nil {
		t.Fatal(err)
	}
	st, b := f.Do(tok, "POST", "/Appointment", appointment(slot))
	if st != http.StatusBadGateway || apptest.DetailsCode(b) != gpconnect.ErrPracticeRespondedWithError {
		t.Fatalf("booking at a failing practice: %d %v, want 502 %s", st, b, gpconnect.ErrPracticeRespondedWithError)
	}
	if s := f.Read("Slot", slot["id"].(string)); s["status"] != "free" {
		t.Errorf("the slot is %v in Signpost", s["status"])
	}
	_, list := f.Do(tok, "GET", "/Appointment?status=cancelled&slot=Slot/"+slot["id"].(string), nil)
	if len(entries(list)) != 1 {
		t.Errorf("the refused booking is not cancelled in Signpost: %v", list)
	}
	checkRequests(t, f.Practice, devserver.ClientCallCentre, devserver.DemoCallCentre)
}

func entries(b map[string]any) []any { e, _ := b["entry"].([]any); return e }

// TestRace: two Signpost clients booking one practice slot at once give
// one booking, at the practice and in Signpost; the other is 409.
func TestRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	toks := []string{f.Token(devserver.ClientCallCentre, apptest.SystemScopes), f.Token(devserver.ClientCallCentre, apptest.SystemScopes)}
	slot := f.slots(toks[0])[0]
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() { codes[i], _ = f.Do(toks[i], "POST", "/Appointment", appointment(slot)) })
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != http.StatusCreated || codes[1] != http.StatusConflict {
		t.Fatalf("the two bookings answered %v, want one 201 and one 409", codes)
	}
	practiceSlot := strings.TrimPrefix(slot["id"].(string), "gpc-"+practice+"-")
	n := 0
	for _, a := range f.Practice.Appointments() {
		if a.Slot[0].Reference == "Slot/"+practiceSlot && a.Status == "booked" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the practice has %d bookings of the slot, want 1", n)
	}
	st, list := f.Do(toks[0], "GET", "/Appointment?slot=Slot/"+slot["id"].(string)+"&status=booked", nil)
	if st != http.StatusOK || len(entries(list)) != 1 {
		t.Errorf("Signpost's bookings of the slot: %d %v, want 1", st, list)
	}
	checkRequests(t, f.Practice, devserver.ClientCallCentre, devserver.DemoCallCentre)
}
