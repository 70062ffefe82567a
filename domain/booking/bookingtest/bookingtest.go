// Package bookingtest is the booking stress workload of issue 4, in one
// place for the tests that run it: against an in-process server
// (domain/booking's TestStress) and against a real signpost process killed
// with SIGKILL in the middle of the run (cmd/signpost's
// TestBookingSurvivesSIGKILL).
//
// The workload seeds free slots over a number of services, then many
// clients try to book random slots; of what they book, they cancel some
// and reschedule some to another random slot, and keep the rest. It
// records only what the server acknowledged (a response received in
// full), so that afterwards — even after a crash — every acknowledged
// outcome can be checked against the server with [Workload.Verify].
//
// It speaks plain HTTP to a FHIR base URL (".../fhir") and nothing else.
package bookingtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Workload is a stress run's shape. The zero value of a field means its
// value in [Issue4], except Attempts (0: no limit) and ServerMayVanish.
type Workload struct {
	Slots    int // free ten-minute slots seeded
	Services int // HealthcareServices hs<k>, each with Schedule sc<k>; slot i is in schedule i mod Services
	Clients  int // concurrent clients

	// Attempts is the number of booking attempts in all; with 0, the
	// clients go on until the context ends or the server is gone.
	Attempts int

	// CancelPercent and ReschedulePercent are the shares of successful
	// bookings a client cancels (PATCH to cancelled with a
	// cancelationReason) and reschedules ($reschedule to a random slot);
	// the rest it keeps.
	CancelPercent, ReschedulePercent int

	// Patient is the id of the Patient booked for; Seed writes it.
	Patient string

	// RandomSeed makes the clients' choices reproducible.
	RandomSeed uint64

	// ServerMayVanish is the "server gone" mode: a request that gets no
	// response (connection refused or reset) ends its client quietly
	// instead of counting as an error. Such a request is never counted as
	// acknowledged.
	ServerMayVanish bool

	// Client sends the requests; nil means one keeping an idle connection
	// per client.
	Client *http.Client
}

// Issue4 is the run issue 4 asks for: 64 clients making 20,000 booking
// attempts on 2,000 slots over 40 services, cancelling a fifth and
// rescheduling a fifth of what they book.
func Issue4() Workload {
	return Workload{Slots: 2000, Services: 40, Clients: 64, Attempts: 20000,
		CancelPercent: 20, ReschedulePercent: 20, Patient: "stress-patient", RandomSeed: 7}
}

// withDefaults fills the zero fields from Issue4.
func (w Workload) withDefaults() Workload {
	d := Issue4()
	if w.Slots == 0 {
		w.Slots = d.Slots
	}
	if w.Services == 0 {
		w.Services = d.Services
	}
	if w.Clients == 0 {
		w.Clients = d.Clients
	}
	if w.CancelPercent == 0 && w.ReschedulePercent == 0 {
		w.CancelPercent, w.ReschedulePercent = d.CancelPercent, d.ReschedulePercent
	}
	if w.Patient == "" {
		w.Patient = d.Patient
	}
	if w.Client == nil {
		w.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: w.Clients}, Timeout: time.Minute}
	}
	return w
}

// SlotID is the id of the i-th seeded slot.
func SlotID(i int) string { return fmt.Sprintf("x%d", i) }

// Resources returns what the workload books into, as FHIR JSON: the
// patient, the services and their schedules, then the slots, ten minutes
// each from start, slot i in schedule i mod Services.
func (w Workload) Resources(start time.Time) [][]byte {
	w = w.withDefaults()
	out := [][]byte{[]byte(`{"resourceType":"Patient","id":"` + w.Patient + `","name":[{"family":"Stress","given":["Patient"]}]}`)}
	for k := range w.Services {
		out = append(out,
			fmt.Appendf(nil, `{"resourceType":"HealthcareService","id":"hs%d","name":"Clinic hs%d"}`, k, k),
			fmt.Appendf(nil, `{"resourceType":"Schedule","id":"sc%d","active":true,"actor":[{"reference":"HealthcareService/hs%d"}]}`, k, k))
	}
	for i := range w.Slots {
		st := start.Add(time.Duration(i/w.Services) * 10 * time.Minute)
		out = append(out, fmt.Appendf(nil,
			`{"resourceType":"Slot","id":"%s","schedule":{"reference":"Schedule/sc%d"},"status":"free","start":"%s","end":"%s"}`,
			SlotID(i), i%w.Services, st.Format(time.RFC3339), st.Add(10*time.Minute).Format(time.RFC3339)))
	}
	return out
}

// FirstStart is when Seed's first slots begin: 09:00 UTC the day after
// now.
func FirstStart(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 9*time.Hour)
}

// Seed writes [Workload.Resources] from [FirstStart] to the server at base
// with PUTs in transaction Bundles of up to 500 entries.
func (w Workload) Seed(ctx context.Context, base string) error {
	w = w.withDefaults()
	all := w.Resources(FirstStart(time.Now()))
	for from := 0; from < len(all); from += 500 {
		var entries []string
		for _, raw := range all[from:min(len(all), from+500)] {
			var head struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return fmt.Errorf("seeding: %w", err)
			}
			entries = append(entries, `{"resource":`+string(raw)+`,"request":{"method":"PUT","url":"`+head.ResourceType+"/"+head.ID+`"}}`)
		}
		body := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
		st, b, err := w.send(ctx, "POST", base, "application/fhir+json", body)
		if err != nil {
			return fmt.Errorf("seeding: %w", err)
		}
		if st != http.StatusOK {
			return fmt.Errorf("seeding: transaction of entries %d-%d: status %d: %s", from, from+len(entries)-1, st, b)
		}
	}
	return nil
}

// Counts are a run's tallies, of acknowledged requests except Unanswered.
type Counts struct {
	Attempts    int // booking attempts answered (201 or 409)
	Booked      int // bookings acknowledged with 201
	Conflicts   int // bookings refused with 409 (the slot was taken)
	Cancelled   int // cancels acknowledged with 200
	Rescheduled int // reschedules acknowledged with 200
	Unanswered  int // requests sent whose response was not received
}

// Reschedule is one acknowledged $reschedule: From is now cancelled, To
// booked.
type Reschedule struct{ From, To string }

// Result is what a run's clients were acknowledged.
type Result struct {
	Counts
	Appointments []string     // every Appointment id acknowledged with 201
	Cancels      []string     // Appointments whose cancel was acknowledged with 200
	Reschedules  []Reschedule // acknowledged reschedules
	// Unsettled are booked Appointments whose cancel or reschedule was sent
	// but not answered: each is either still booked or cancelled.
	Unsettled []string
	// Errors are unexpected answers, and requests without an answer unless
	// ServerMayVanish.
	Errors  []error
	Elapsed time.Duration
}

// LiveBounds returns how many live appointments the server may hold after
// the run: at least those acknowledged as booked and not since cancelled,
// at most that plus one for each unanswered request (each may have booked
// one, or left one booked).
func (r *Result) LiveBounds() (lo, hi int) {
	lo = r.Booked - r.Cancelled - len(r.Unsettled)
	return lo, lo + r.Unanswered
}

// Run is a workload under way.
type Run struct {
	w     Workload
	start time.Time
	wg    sync.WaitGroup
	next  atomic.Int64

	attempts, booked, conflicts, cancelled, rescheduled, unanswered atomic.Int64

	mu  sync.Mutex
	res Result
}

// Start starts the clients against the server at base (seeded with
// [Workload.Seed]). They stop after Attempts, when ctx ends, or, with
// ServerMayVanish, when the server stops answering.
func (w Workload) Start(ctx context.Context, base string) *Run {
	r := &Run{w: w.withDefaults(), start: time.Now()}
	for c := range r.w.Clients {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.client(ctx, base, rand.New(rand.NewPCG(r.w.RandomSeed, uint64(c))))
		}()
	}
	return r
}

// Progress returns the tallies so far; it may be called while the run goes
// on.
func (r *Run) Progress() Counts {
	return Counts{Attempts: int(r.attempts.Load()), Booked: int(r.booked.Load()), Conflicts: int(r.conflicts.Load()),
		Cancelled: int(r.cancelled.Load()), Rescheduled: int(r.rescheduled.Load()), Unanswered: int(r.unanswered.Load())}
}

// Wait waits for every client to stop and returns what they were
// acknowledged.
func (r *Run) Wait() *Result {
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.res
	res.Counts = r.Progress()
	res.Elapsed = time.Since(r.start)
	return &res
}

// errGone ends a client whose request got no response.
var errGone = errors.New("no response")

// client is one client's loop.
func (r *Run) client(ctx context.Context, base string, rng *rand.Rand) {
	for ctx.Err() == nil && (r.w.Attempts == 0 || r.next.Add(1) <= int64(r.w.Attempts)) {
		body := fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/%s"}],`+
			`"participant":[{"actor":{"reference":"Patient/%s"},"status":"accepted"}]}`, SlotID(rng.IntN(r.w.Slots)), r.w.Patient)
		st, b, err := r.do(ctx, "POST", base+"/Appointment", "application/fhir+json", body)
		if err != nil {
			return
		}
		switch st {
		case http.StatusConflict:
			r.attempts.Add(1)
			r.conflicts.Add(1)
			continue
		case http.StatusCreated:
		default:
			r.fail(fmt.Errorf("booking: status %d: %s", st, b))
			return
		}
		var a struct{ ID string }
		if json.Unmarshal(b, &a) != nil || a.ID == "" {
			r.fail(fmt.Errorf("booking: 201 without an id: %s", b))
			return
		}
		r.attempts.Add(1)
		r.booked.Add(1)
		r.mu.Lock()
		r.res.Appointments = append(r.res.Appointments, a.ID)
		r.mu.Unlock()
		switch x := rng.IntN(100); {
		case x < r.w.CancelPercent:
			st, b, err := r.do(ctx, "PATCH", base+"/Appointment/"+a.ID, "application/json-patch+json",
				`[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"stress"}}]`)
			if err != nil {
				r.unsettled(a.ID)
				return
			}
			if st != http.StatusOK {
				r.fail(fmt.Errorf("cancelling Appointment/%s: status %d: %s", a.ID, st, b))
				return
			}
			r.cancelled.Add(1)
			r.mu.Lock()
			r.res.Cancels = append(r.res.Cancels, a.ID)
			r.mu.Unlock()
		case x < r.w.CancelPercent+r.w.ReschedulePercent:
			st, b, err := r.do(ctx, "POST", base+"/Appointment/"+a.ID+"/$reschedule", "application/fhir+json",
				`{"resourceType":"Parameters","parameter":[{"name":"slot","valueReference":{"reference":"Slot/`+SlotID(rng.IntN(r.w.Slots))+`"}}]}`)
			if err != nil {
				r.unsettled(a.ID)
				return
			}
			switch st {
			case http.StatusConflict: // the new slot was taken: the appointment is kept
			case http.StatusOK:
				var bundle struct {
					Entry []struct {
						Resource struct{ ID string }
						Search   struct{ Mode string }
					}
				}
				_ = json.Unmarshal(b, &bundle)
				if len(bundle.Entry) == 0 || bundle.Entry[0].Search.Mode != "match" || bundle.Entry[0].Resource.ID == "" {
					r.fail(fmt.Errorf("rescheduling Appointment/%s: 200 without the new appointment: %s", a.ID, b))
					return
				}
				r.rescheduled.Add(1)
				r.mu.Lock()
				r.res.Reschedules = append(r.res.Reschedules, Reschedule{From: a.ID, To: bundle.Entry[0].Resource.ID})
				r.mu.Unlock()
			default:
				r.fail(fmt.Errorf("rescheduling Appointment/%s: status %d: %s", a.ID, st, b))
				return
			}
		}
	}
}

// do sends one request and reads the whole response. A request without a
// response is counted as unanswered and returns errGone; it is an error of
// the run unless the server may vanish or ctx ended.
func (r *Run) do(ctx context.Context, method, url, contentType, body string) (int, []byte, error) {
	st, b, err := r.w.send(ctx, method, url, contentType, body)
	if err != nil {
		r.unanswered.Add(1)
		if !r.w.ServerMayVanish && ctx.Err() == nil {
			r.fail(err)
		}
		return 0, nil, errGone
	}
	return st, b, nil
}

func (r *Run) fail(err error) {
	r.mu.Lock()
	r.res.Errors = append(r.res.Errors, err)
	r.mu.Unlock()
}

func (r *Run) unsettled(id string) {
	r.mu.Lock()
	r.res.Unsettled = append(r.res.Unsettled, id)
	r.mu.Unlock()
}

// send sends one request; its body is read in full, or it is an error.
func (w Workload) send(ctx context.Context, method, url, contentType, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := w.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: reading the response: %w", method, url, err)
	}
	return resp.StatusCode, b, nil
}

// Verify reads back from the server at base every outcome res records as
// acknowledged and returns what differs: every Appointment acknowledged
// with 201 exists; one whose cancel was acknowledged is cancelled; of an
// acknowledged reschedule, the old one is cancelled and the new one
// booked; one whose cancel or reschedule went unanswered is booked or
// cancelled; every other is booked.
func (w Workload) Verify(ctx context.Context, base string, res *Result) []error {
	w = w.withDefaults()
	want := map[string]string{} // id → status; "" for booked or cancelled
	for _, id := range res.Appointments {
		want[id] = "booked"
	}
	for _, id := range res.Unsettled {
		want[id] = ""
	}
	for _, id := range res.Cancels {
		want[id] = "cancelled"
	}
	for _, rs := range res.Reschedules {
		want[rs.From], want[rs.To] = "cancelled", "booked"
	}
	ids := make(chan string)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range min(w.Clients, 32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				st, b, err := w.send(ctx, "GET", base+"/Appointment/"+id, "", "")
				var a struct{ Status string }
				if err == nil && st == http.StatusOK {
					err = json.Unmarshal(b, &a)
				}
				switch {
				case err != nil:
				case st != http.StatusOK:
					err = fmt.Errorf("acknowledged Appointment/%s: status %d: %s", id, st, b)
				case want[id] == "" && a.Status != "booked" && a.Status != "cancelled":
					err = fmt.Errorf("Appointment/%s, cancelled or rescheduled without an answer, is %s, want booked or cancelled", id, a.Status)
				case want[id] != "" && a.Status != want[id]:
					err = fmt.Errorf("Appointment/%s is %s, want %s", id, a.Status, want[id])
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for id := range want {
		ids <- id
	}
	close(ids)
	wg.Wait()
	return errs
}

// Census counts, through search with _summary=count, the live
// Appointments (those holding slots: pending, booked, arrived, checked-in,
// fulfilled, noshow) and the busy or busy-tentative Slots on the server at
// base.
func (w Workload) Census(ctx context.Context, base string) (live, busy int, err error) {
	w = w.withDefaults()
	count := func(query string) (int, error) {
		st, b, err := w.send(ctx, "GET", base+"/"+query+"&_summary=count", "", "")
		if err != nil {
			return 0, err
		}
		var bundle struct{ Total *int }
		if st != http.StatusOK || json.Unmarshal(b, &bundle) != nil || bundle.Total == nil {
			return 0, fmt.Errorf("GET %s: status %d without a total: %s", query, st, b)
		}
		return *bundle.Total, nil
	}
	if live, err = count("Appointment?status=pending,booked,arrived,checked-in,fulfilled,noshow"); err != nil {
		return 0, 0, err
	}
	busy, err = count("Slot?status=busy,busy-tentative")
	return live, busy, err
}

// String summarises the tallies.
func (c Counts) String() string {
	return fmt.Sprintf("%d attempts: %d booked, %d conflicts, %d cancelled, %d rescheduled, %d unanswered",
		c.Attempts, c.Booked, c.Conflicts, c.Cancelled, c.Rescheduled, c.Unanswered)
}
