package reminder_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/domain/reminder"
	"github.com/signpost-fhir/signpost/store"
)

// A booked appointment gets its reminders at 7 d and 1 d before, each
// once, by the patient's channel, with the date, time, place and how to
// cancel or rebook; none after it started.
func TestRemindersAtLeads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	f.basics()
	f.patient("p1", mobile("07700 900123"))
	start := f.t0.Add(10*24*time.Hour + 3*time.Hour)
	id := f.book("p1", "s1", start)

	steps := []struct {
		at            time.Time
		queued, total int // reminders queued by the sweep, SMS sent in all
	}{
		{f.t0, 0, 0},
		{start.Add(-7*24*time.Hour - time.Minute), 0, 0}, // just before the 7 d lead
		{start.Add(-7*24*time.Hour + time.Minute), 1, 1}, // the 7 d reminder
		{start.Add(-3 * 24 * time.Hour), 0, 1},           // made already: no second one
		{start.Add(-24*time.Hour + time.Minute), 1, 2},   // the 1 d reminder
		{start.Add(-time.Hour), 0, 2},
		{start.Add(time.Minute), 0, 2}, // started: nothing
	}
	for i, s := range steps {
		f.clock.Set(s.at)
		if q, _ := f.sweep(); q != s.queued {
			t.Fatalf("step %d (%s): sweep queued %d, want %d", i, s.at, q, s.queued)
		}
		f.deliver()
		if got := len(f.gw.Sent()); got != s.total {
			t.Fatalf("step %d: %d SMS sent, want %d", i, got, s.total)
		}
	}
	sent := f.gw.Sent()
	local := start.In(mustLoad(t, "Europe/London"))
	for _, want := range []string{local.Format("Monday 2 January 2006"), local.Format("15:04"), "Dermatology Clinic",
		"St Mary's Hospital, 1 High Street, Leeds, LS1 1AA", howToChange} {
		if !strings.Contains(sent[0].Body, want) {
			t.Errorf("SMS %q does not say %q", sent[0].Body, want)
		}
	}
	if sent[0].To != "07700 900123" || sent[0].IdempotencyKey == sent[1].IdempotencyKey {
		t.Errorf("SMS to %q with keys %q, %q", sent[0].To, sent[0].IdempotencyKey, sent[1].IdempotencyKey)
	}
	rs := f.reminders(id)
	if len(rs) != 2 {
		t.Fatalf("%d reminders, want 2", len(rs))
	}
	for _, c := range rs {
		if c.Status != "completed" || c.Sent == "" || c.channel() != "sms" || c.Recipient[0].Reference != "Patient/p1" ||
			c.About[0].Reference != "Appointment/"+id || sent[0].Reference == "" {
			t.Errorf("reminder %+v", c)
		}
	}
	if !strings.HasSuffix(rs[0].Identifier[0].Value, "/168h0m0s") || !strings.HasSuffix(rs[1].Identifier[0].Value, "/24h0m0s") {
		t.Errorf("identifiers %+v", rs)
	}
	// Metrics: two queued by SMS, two delivered.
	if got := metric(t, f, "signpost_reminders_total", "outcome", "queued", "channel", "sms"); got != 2 {
		t.Errorf("signpost_reminders_total queued sms = %v, want 2", got)
	}
	if got := metric(t, f, "signpost_reminder_deliveries_total", "channel", "sms", "result", "delivered"); got != 2 {
		t.Errorf("signpost_reminder_deliveries_total sms delivered = %v, want 2", got)
	}
	// The reminder is a valid R4 Communication: the API, which validates
	// what it is sent, takes it back unchanged.
	c := f.must(200, "GET", "/Communication/"+rs[0].ID, nil)
	f.must(200, "PUT", "/Communication/"+rs[0].ID, c)
	if found := f.must(200, "GET", "/Communication?about=Appointment/"+id+"&category=reminder&status=completed", nil); len(found["entry"].([]any)) != 2 {
		t.Errorf("searching the reminders: %v", found)
	}
}

// Booked inside the last lead, an appointment gets one reminder (the
// latest lead due), not one per lead passed.
func TestBookedLateGetsOneReminder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	f.basics()
	f.patient("p1", mobile("07700 900123"))
	id := f.book("p1", "s1", f.t0.Add(5*time.Hour))
	if q, _ := f.sweep(); q != 1 {
		t.Fatalf("queued %d, want 1", q)
	}
	f.deliver()
	rs := f.reminders(id)
	if len(rs) != 1 || !strings.HasSuffix(rs[0].Identifier[0].Value, "/24h0m0s") || len(f.gw.Sent()) != 1 {
		t.Fatalf("reminders %+v, sent %v", rs, f.gw.Sent())
	}
}

// Without a phone, the reminder goes to the webhook: the Communication's
// JSON over HTTPS, retried while the receiver fails, with the same
// delivery id each time; a refusal makes it a dead letter and the
// Communication not-done.
func TestWebhook(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	f.basics()
	f.patient("p1")
	f.patient("p2")
	id := f.book("p1", "s1", f.t0.Add(30*time.Hour))
	f.clock.Set(f.t0.Add(7 * time.Hour))
	f.hook.answer(503)
	if q, _ := f.sweep(); q != 1 {
		t.Fatalf("queued %d, want 1", q)
	}
	f.deliver()
	if got := f.hook.received(); len(got) != 0 {
		t.Fatalf("received %d while answering 503", len(got))
	}
	if rs := f.reminders(id); rs[0].Status != "in-progress" {
		t.Fatalf("after a failed attempt the reminder is %s, want in-progress", rs[0].Status)
	}
	f.clock.Set(f.t0.Add(7*time.Hour + time.Minute)) // past the 30 s back-off
	f.deliver()
	got := f.hook.received()
	if len(got) != 1 {
		t.Fatalf("received %d, want 1", len(got))
	}
	var posted struct {
		ResourceType, Status, ID string
		About                    []struct{ Reference string }
	}
	if err := json.Unmarshal(got[0].body, &posted); err != nil {
		t.Fatal(err)
	}
	if posted.ResourceType != "Communication" || posted.Status != "in-progress" || posted.About[0].Reference != "Appointment/"+id ||
		got[0].ctype != "application/fhir+json" || got[0].delivery != "reminder-"+posted.ID {
		t.Errorf("posted %+v with headers %q %q", posted, got[0].ctype, got[0].delivery)
	}
	if rs := f.reminders(id); rs[0].Status != "completed" || rs[0].channel() != "webhook" {
		t.Errorf("reminder %+v", rs[0])
	}

	// A refusal (400): a dead letter, the Communication not-done.
	id2 := f.book("p2", "s2", f.t0.Add(30*time.Hour))
	f.hook.answer(400)
	f.sweep()
	f.deliver()
	if rs := f.reminders(id2); rs[0].Status != "not-done" || rs[0].reason() != "system-error" {
		t.Errorf("refused reminder %+v", rs[0])
	}
	if st := f.a.Reminders.Status()[reminder.Webhook]; st.DeadLettered != 1 || st.Retried != 1 || st.Delivered != 1 {
		t.Errorf("webhook dispatcher status %+v", st)
	}

	// Failing at every attempt (maxAttempts 3): not-done after the third.
	f.patient("p3")
	id3 := f.book("p3", "s3", f.t0.Add(30*time.Hour))
	f.hook.answer(503, 503, 503)
	f.sweep()
	at := f.t0.Add(7*time.Hour + time.Minute)
	for attempt := 1; attempt <= 3; attempt++ {
		f.deliver()
		want := "in-progress"
		if attempt == 3 {
			want = "not-done"
		}
		if rs := f.reminders(id3); rs[0].Status != want {
			t.Fatalf("after attempt %d the reminder is %s, want %s", attempt, rs[0].Status, want)
		}
		at = at.Add(10 * time.Minute) // past the back-off
		f.clock.Set(at)
	}
	if st := f.a.Reminders.Status()[reminder.Webhook]; st.DeadLettered != 2 {
		t.Errorf("webhook dispatcher status %+v, want a second dead letter", st)
	}
	if got := len(f.hook.received()); got != 1 {
		t.Errorf("received %d, want still 1", got)
	}

	// The operator replays the dead letters (the receiver is fixed): the
	// reminders are sent and completed.
	admin := f.a.Store.(store.OutboxAdmin)
	dead, err := admin.DeadLetters(t.Context(), reminder.Destination(reminder.Webhook), 10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters %v, %v", dead, err)
	}
	for _, d := range dead {
		if err := admin.Replay(t.Context(), d.ID, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	f.deliver()
	for _, id := range []string{id2, id3} {
		if rs := f.reminders(id); rs[0].Status != "completed" || rs[0].StatusReason != nil {
			t.Errorf("replayed reminder %+v", rs[0])
		}
	}
	if got := len(f.hook.received()); got != 3 {
		t.Errorf("received %d, want 3", got)
	}
}

// A cancelled appointment's pending reminder is withdrawn and never
// sent; a rescheduled one's too, and the new appointment gets reminders
// for its new time.
func TestCancelAndMoveWithdrawPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	f.basics()
	f.patient("p1", mobile("07700 900123"))
	f.patient("p2", mobile("07700 900456"))
	start := f.t0.Add(30 * time.Hour)
	cancelled := f.book("p1", "s1", start)
	moved := f.book("p2", "s2", start)
	f.clock.Set(f.t0.Add(7 * time.Hour))
	if q, _ := f.sweep(); q != 2 {
		t.Fatalf("queued %d, want 2", q)
	}
	// Cancelled and rescheduled before the dispatcher sends.
	a := f.must(200, "GET", "/Appointment/"+cancelled, nil)
	a["status"] = "cancelled"
	a["cancelationReason"] = map[string]any{"text": "patient cancelled"}
	f.must(200, "PUT", "/Appointment/"+cancelled, a)
	newStart := start.Add(48 * time.Hour)
	f.must(201, "PUT", "/Slot/s3", map[string]any{"resourceType": "Slot", "id": "s3", "schedule": map[string]any{"reference": "Schedule/sc"},
		"status": "free", "start": newStart.Format(time.RFC3339), "end": newStart.Add(15 * time.Minute).Format(time.RFC3339)})
	f.must(200, "POST", "/Appointment/"+moved+"/$reschedule", map[string]any{"resourceType": "Parameters",
		"parameter": []any{map[string]any{"name": "slot", "valueReference": map[string]any{"reference": "Slot/s3"}}}})
	f.deliver()
	if sent := f.gw.Sent(); len(sent) != 0 {
		t.Fatalf("sent %v for withdrawn reminders", sent)
	}
	for id, want := range map[string]string{cancelled: "appointment-cancelled", moved: "appointment-cancelled"} {
		rs := f.reminders(id)
		if len(rs) != 1 || rs[0].Status != "not-done" || rs[0].reason() != want {
			t.Errorf("reminders of %s: %+v, want one not-done %s", id, rs, want)
		}
	}
	// The new appointment's reminders come for its new time: the 7 d
	// lead's now (it is 3 days away), the 1 d lead's then.
	local := newStart.In(mustLoad(t, "Europe/London"))
	for i, at := range []time.Time{f.t0.Add(7 * time.Hour), newStart.Add(-24*time.Hour + time.Minute)} {
		f.clock.Set(at)
		if q, _ := f.sweep(); q != 1 {
			t.Fatalf("sweep %d: queued %d, want 1", i, q)
		}
		f.deliver()
		sent := f.gw.Sent()
		if len(sent) != i+1 || sent[i].To != "07700 900456" || !strings.Contains(sent[i].Body, local.Format("Monday 2 January 2006")) ||
			!strings.Contains(sent[i].Body, local.Format("15:04")) {
			t.Fatalf("sweep %d: sent %+v", i, sent)
		}
	}
}

// A reminder queued before a shutdown whose appointment has started when
// the server comes back is not sent; one that came due during the
// downtime is made and sent after the restart.
func TestRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	f.basics()
	f.patient("p1", mobile("07700 900123"))
	f.patient("p2", mobile("07700 900456"))
	f.patient("p3", mobile("07700 900789"))
	soon := f.book("p1", "s1", f.t0.Add(2*time.Hour))
	laterStart := f.t0.Add(7*24*time.Hour + 20*time.Hour)
	later := f.book("p2", "s2", laterStart)
	gone := f.book("p3", "s3", f.t0.Add(20*time.Hour))
	if q, _ := f.sweep(); q != 2 { // soon and gone; later's 7 d lead is 20 h away
		t.Fatalf("queued %d, want 2", q)
	}
	f.stop()
	// Down until 2 h before later's start: soon and gone started, and
	// both of later's leads passed.
	f.clock.Set(laterStart.Add(-2 * time.Hour))
	f.start()
	f.sweep()
	f.deliver()
	sent := f.gw.Sent()
	if len(sent) != 1 || sent[0].To != "07700 900456" {
		t.Fatalf("sent %+v, want only p2's reminder", sent)
	}
	for id, want := range map[string]string{soon: "appointment-past", gone: "appointment-past"} {
		if rs := f.reminders(id); len(rs) != 1 || rs[0].Status != "not-done" || rs[0].reason() != want {
			t.Errorf("reminders of %s: %+v", id, rs)
		}
	}
	if rs := f.reminders(later); len(rs) != 1 || rs[0].Status != "completed" || !strings.HasSuffix(rs[0].Identifier[0].Value, "/24h0m0s") {
		t.Errorf("reminders of %s: %+v", later, rs)
	}
}

// Sweeps racing make one reminder per appointment and lead.
func TestSweepsRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	f.basics()
	const n = 8
	var ids []string
	for i := range n {
		p := "p" + string(rune('a'+i))
		f.patient(p, mobile("07700 90000"+string(rune('0'+i))))
		ids = append(ids, f.book(p, "s"+p, f.t0.Add(time.Duration(10+i)*time.Hour)))
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.a.Reminders.Sweep(t.Context()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f.deliver()
	for _, id := range ids {
		if rs := f.reminders(id); len(rs) != 1 {
			t.Errorf("appointment %s has %d reminders, want 1", id, len(rs))
		}
	}
	if got := len(f.gw.Sent()); got != n {
		t.Errorf("%d SMS sent, want %d", got, n)
	}
}

// metric returns the value of the counter name with the label pairs in
// f's registry (-1 when there is none).
func metric(t *testing.T, f *fixture, name string, labels ...string) float64 {
	t.Helper()
	fams, err := f.a.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
	next:
		for _, m := range fam.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func mustLoad(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
