package reminder_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/notify"
	"github.com/signpost-fhir/signpost/adapters/notify/notifytest"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// clock is a settable clock shared by reminders and dispatchers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// receiver is a webhook endpoint over TLS that records what it is sent
// and answers with the statuses queued in answers (200 once they run out).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	answers []int
}

type received struct {
	body     []byte
	delivery string
	ctype    string
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		code := 200
		if len(r.answers) > 0 {
			code, r.answers = r.answers[0], r.answers[1:]
		}
		if code == 200 {
			r.got = append(r.got, received{b, req.Header.Get("X-Signpost-Delivery"), req.Header.Get("Content-Type")})
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) answer(codes ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers = append(r.answers, codes...)
}

// fixture is a real server with reminders at 7 d and 1 d by SMS (a
// double) and webhook (a real receiver), and a service, schedule and
// location to book in.
type fixture struct {
	t     testing.TB
	data  string
	a     *app.App
	srv   *httptest.Server
	clock *clock
	gw    *notifytest.Gateway
	hook  *receiver
	token string
	auth  bool
	t0    time.Time
}

const howToChange = "call 0300 123 4567 or visit https://trust.example/appointments"

func newFixture(t testing.TB, auth bool) *fixture {
	f := &fixture{t: t, data: t.TempDir(), clock: &clock{}, gw: &notifytest.Gateway{}, hook: newReceiver(t), auth: auth}
	f.t0 = time.Now().UTC().Truncate(time.Minute)
	f.clock.Set(f.t0)
	f.start()
	return f
}

// file is the reminders configuration of the fixture.
func (f *fixture) file() *notify.File {
	pool := x509.NewCertPool()
	pool.AddCert(f.hook.srv.Certificate())
	return &notify.File{
		Leads:       []notify.Lead{notify.Lead(7 * 24 * time.Hour), notify.Lead(24 * time.Hour)},
		HowToChange: howToChange,
		Channels: []notify.ChannelConfig{
			{Kind: "sms"},
			{Kind: "webhook", Webhook: &notify.WebhookConfig{URL: f.hook.srv.URL + "/reminders", AllowPrivate: true}},
		},
		SweepEvery: notify.Duration(time.Hour), // the tests sweep themselves
		Delivery:   notify.Delivery{PollInterval: notify.Duration(time.Hour), MaxAttempts: 3},
		Hooks:      notify.Hooks{Now: f.clock.Now, SMS: f.gw, RootCAs: pool, RandJitter: func() float64 { return 0 }, Manual: true},
	}
}

// start starts (or restarts) the server over the fixture's data.
func (f *fixture) start() {
	f.a, f.srv = apptest.New(f.t, app.Config{Data: f.data, Reminders: f.file(), Auth: f.auth})
}

// stop stops the server, as a shutdown would.
func (f *fixture) stop() {
	f.srv.Close()
	if err := f.a.Close(); err != nil {
		f.t.Fatal(err)
	}
}

// do sends a request with the fixture's token and returns status and body.
func (f *fixture) do(method, path string, body any) (int, []byte) {
	f.t.Helper()
	return f.doAs(f.token, method, path, body)
}

func (f *fixture) doAs(token, method, path string, body any) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.srv.URL+"/fhir"+path, rd)
	req.Header.Set("Content-Type", "application/fhir+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// must sends a request and fails the test unless it answers want.
func (f *fixture) must(want int, method, path string, body any) map[string]any {
	f.t.Helper()
	code, b := f.do(method, path, body)
	if code != want {
		f.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// basics seeds the service, its location and schedule.
func (f *fixture) basics() {
	apptest.Seed(f.t, f.a,
		map[string]any{"resourceType": "Location", "id": "loc", "name": "St Mary's Hospital",
			"address": map[string]any{"line": []any{"1 High Street"}, "city": "Leeds", "postalCode": "LS1 1AA"}},
		map[string]any{"resourceType": "HealthcareService", "id": "hs", "name": "Dermatology Clinic"},
		map[string]any{"resourceType": "Schedule", "id": "sc", "active": true,
			"actor": []any{map[string]any{"reference": "HealthcareService/hs"}, map[string]any{"reference": "Location/loc"}}},
	)
}

// patient seeds a patient with telecom.
func (f *fixture) patient(id string, telecom ...map[string]any) {
	p := map[string]any{"resourceType": "Patient", "id": id, "name": []any{map[string]any{"family": "Patient", "given": []any{id}}}}
	if len(telecom) > 0 {
		p["telecom"] = telecom
	}
	apptest.Seed(f.t, f.a, p)
}

func mobile(n string) map[string]any {
	return map[string]any{"system": "phone", "use": "mobile", "value": n}
}

// book books patient into a new 15-minute slot starting at start and
// returns the appointment's id.
func (f *fixture) book(patient, slot string, start time.Time) string {
	f.t.Helper()
	apptest.Seed(f.t, f.a, map[string]any{"resourceType": "Slot", "id": slot, "schedule": map[string]any{"reference": "Schedule/sc"},
		"status": "free", "start": start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)})
	a := f.must(201, "POST", "/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot":        []any{map[string]any{"reference": "Slot/" + slot}},
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patient}, "status": "accepted"}}})
	return a["id"].(string)
}

// sweep runs a sweep at the clock's time.
func (f *fixture) sweep() (queued, notDone int) {
	f.t.Helper()
	res, err := f.a.Reminders.Sweep(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, n := range res.Queued {
		queued += n
	}
	return queued, res.NotDone
}

// deliver has the dispatchers send what is due, until nothing is.
func (f *fixture) deliver() {
	f.t.Helper()
	for range 10 {
		n, err := f.a.Reminders.Deliver(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// comm is a reminder Communication as the tests read it.
type comm struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	StatusReason *struct {
		Coding []struct{ System, Code string }
	} `json:"statusReason"`
	About     []struct{ Reference string } `json:"about"`
	Recipient []struct{ Reference string } `json:"recipient"`
	Medium    []struct {
		Coding []struct{ System, Code string }
	} `json:"medium"`
	Payload []struct {
		ContentString string `json:"contentString"`
	} `json:"payload"`
	Sent       string `json:"sent"`
	Identifier []struct{ System, Value string }
}

func (c comm) reason() string {
	if c.StatusReason == nil || len(c.StatusReason.Coding) == 0 {
		return ""
	}
	return c.StatusReason.Coding[0].Code
}

func (c comm) channel() string {
	for _, m := range c.Medium {
		for _, cd := range m.Coding {
			if strings.HasSuffix(cd.System, "reminder-channel") {
				return cd.Code
			}
		}
	}
	return ""
}

// reminders returns the Communications about Appointment/id, read from
// the store, oldest first.
func (f *fixture) reminders(id string) []comm {
	f.t.Helper()
	q, err := f.a.Search.Parse("Communication", url.Values{"about": {"Appointment/" + id}, "_count": {"100"}}, search.ParseOptions{Strict: true})
	if err != nil {
		f.t.Fatal(err)
	}
	page, err := f.a.Store.Search(context.Background(), q)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []comm
	for _, r := range page.Resources {
		var c comm
		if err := json.Unmarshal(r.JSON, &c); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}
