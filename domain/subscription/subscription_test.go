package subscription_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/adapters/resthook"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/subscription"
	"github.com/signpost-fhir/signpost/store"
)

// receiver is a rest-hook endpoint in the test process: it records every
// notification, and answers 503 while down.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	got   []note
	down  bool
	hooks map[string]bool
}

// note is one notification received.
type note struct {
	Path, Signature, Auth string
	Body                  []byte
	At                    time.Time
	bundle                notification
}

type notification struct {
	Type  string `json:"type"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method, URL string
		} `json:"request"`
	} `json:"entry"`
}

// status returns the first entry's status Parameters as name → value
// (valueString, valueCode, valueCanonical or the reference), with the
// notification events' parts as "event.<part>" (of the first event).
func (n note) status() map[string]string {
	out := map[string]string{}
	if len(n.bundle.Entry) == 0 {
		return out
	}
	var p struct {
		Parameter []paramView `json:"parameter"`
	}
	_ = json.Unmarshal(n.bundle.Entry[0].Resource, &p)
	for _, x := range p.Parameter {
		out[x.Name] = x.value()
		if x.Name == "notification-event" {
			for _, part := range x.Part {
				out["event."+part.Name] = part.value()
			}
		}
	}
	return out
}

type paramView struct {
	Name           string                     `json:"name"`
	ValueString    string                     `json:"valueString"`
	ValueCode      string                     `json:"valueCode"`
	ValueCanonical string                     `json:"valueCanonical"`
	ValueInstant   string                     `json:"valueInstant"`
	ValueReference struct{ Reference string } `json:"valueReference"`
	Part           []paramView                `json:"part"`
}

func (p paramView) value() string {
	return p.ValueString + p.ValueCode + p.ValueCanonical + p.ValueInstant + p.ValueReference.Reference
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		n := note{Path: req.URL.Path, Signature: req.Header.Get(resthook.SignatureHeader), Auth: req.Header.Get("Authorization"),
			Body: body, At: time.Now()}
		_ = json.Unmarshal(body, &n.bundle)
		r.got = append(r.got, n)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// on returns the notifications received at path, in order.
func (r *receiver) on(path string) []note {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []note
	for _, n := range r.got {
		if n.Path == path {
			out = append(out, n)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fixture is a server whose subscriptions may notify the receiver.
type fixture struct {
	t    testing.TB
	a    *app.App
	base string
	rcv  *receiver
	// admin is the token the fixture reads with when authorisation is on.
	admin string
	slots int // free slots to seed, at least 10
}

func newFixture(t testing.TB, cfg app.Config) *fixture { return newFixtureSlots(t, cfg, 10) }

func newFixtureSlots(t testing.TB, cfg app.Config, slots int) *fixture {
	rcv := newReceiver(t)
	tlsCfg := rcv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.Subscriptions.Allow = append(cfg.Subscriptions.Allow, netip.MustParsePrefix("127.0.0.1/32"))
	cfg.Subscriptions.TLS = tlsCfg
	cfg.Subscriptions.MinHeartbeat = time.Second
	cfg.Subscriptions.Tick = 100 * time.Millisecond
	cfg.Subscriptions.Backoff = dispatch.Backoff{Base: 50 * time.Millisecond, Factor: 2, Max: 200 * time.Millisecond}
	a, ts := apptest.New(t, cfg)
	f := &fixture{t: t, a: a, base: ts.URL + "/fhir", rcv: rcv, slots: slots}
	f.seed()
	return f
}

func (f *fixture) do(method, path, token string, body any) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	ctype := "application/fhir+json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
		if strings.HasPrefix(b, "[") {
			ctype = "application/json-patch+json"
		}
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	url := f.base + path
	if strings.HasPrefix(path, "http") {
		url = path
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/fhir+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// seed writes two patients, a service with a schedule and free slots
// s0…s9 tomorrow (and more, named on from s10, with f.slots).
func (f *fixture) seed() {
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(33 * time.Hour)
	res := []map[string]any{
		{"resourceType": "Patient", "id": "p1", "name": []any{map[string]any{"family": "One"}}},
		{"resourceType": "Patient", "id": "p2", "name": []any{map[string]any{"family": "Two"}}},
		{"resourceType": "HealthcareService", "id": "hs1", "name": "Clinic"},
		{"resourceType": "Schedule", "id": "sc1", "active": true, "actor": []any{map[string]any{"reference": "HealthcareService/hs1"}}},
	}
	for i := range max(10, f.slots) {
		st := start.Add(time.Duration(i) * 15 * time.Minute)
		res = append(res, map[string]any{"resourceType": "Slot", "id": fmt.Sprintf("s%d", i), "schedule": map[string]any{"reference": "Schedule/sc1"},
			"status": "free", "start": st.Format(time.RFC3339), "end": st.Add(15 * time.Minute).Format(time.RFC3339)})
	}
	apptest.Seed(f.t, f.a, res...)
}

// subscribe creates a Subscription and returns its id.
func (f *fixture) subscribe(token string, s map[string]any) string {
	f.t.Helper()
	code, body := f.do("POST", "/Subscription", token, s)
	if code != http.StatusCreated {
		f.t.Fatalf("creating a Subscription: %d %s", code, body)
	}
	var r struct{ ID, Status string }
	_ = json.Unmarshal(body, &r)
	if r.Status != "requested" {
		f.t.Fatalf("a new Subscription is %q, want requested", r.Status)
	}
	return r.ID
}

// topicSub is a backport topic-based Subscription to the receiver at path.
func (f *fixture) topicSub(topic, path, content string, filters ...string) map[string]any {
	s := map[string]any{"resourceType": "Subscription", "status": "requested", "reason": "test",
		"meta":     map[string]any{"profile": []string{subscription.ProfileBackport}},
		"criteria": subscription.TopicBase + topic,
		"channel": map[string]any{"type": "rest-hook", "endpoint": f.rcv.URL + path, "payload": "application/fhir+json",
			"_payload": map[string]any{"extension": []any{map[string]any{"url": subscription.ExtPayloadContent, "valueCode": content}}}}}
	if len(filters) > 0 {
		var exts []any
		for _, fl := range filters {
			exts = append(exts, map[string]any{"url": subscription.ExtFilterCriteria, "valueString": fl})
		}
		s["_criteria"] = map[string]any{"extension": exts}
	}
	return s
}

// statusOf is Subscription/id's status, from the store (a Subscription
// is its owner's alone through the API).
func (f *fixture) statusOf(id string) string {
	f.t.Helper()
	var r struct{ Status string }
	if res, err := f.a.Store.Read(context.Background(), "Subscription", id); err == nil {
		_ = json.Unmarshal(res.JSON, &r)
	}
	return r.Status
}

// book books slot for patient and returns the Appointment's id.
func (f *fixture) book(token, slot, patient string) string {
	f.t.Helper()
	code, body := f.do("POST", "/Appointment", token, fmt.Sprintf(`{"resourceType":"Appointment","status":"booked",`+
		`"slot":[{"reference":"Slot/%s"}],"participant":[{"actor":{"reference":"Patient/%s"},"status":"accepted"},`+
		`{"actor":{"reference":"HealthcareService/hs1"},"status":"accepted"}]}`, slot, patient))
	if code != http.StatusCreated {
		f.t.Fatalf("booking %s: %d %s", slot, code, body)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(body, &r)
	return r.ID
}

func (f *fixture) cancel(token, id string) {
	f.t.Helper()
	code, body := f.do("PATCH", "/Appointment/"+id, token,
		`[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"test"}}]`)
	if code != http.StatusOK {
		f.t.Fatalf("cancelling %s: %d %s", id, code, body)
	}
}

// idle waits until the outbox holds nothing for the subscriptions.
func (f *fixture) idle() {
	f.t.Helper()
	admin := f.a.Store.(store.OutboxAdmin)
	waitFor(f.t, "the notifications to be sent", 10*time.Second, func() bool {
		bl, err := admin.Backlog(context.Background(), time.Now())
		if err != nil {
			f.t.Fatal(err)
		}
		for _, b := range bl {
			if b.Destination == subscription.Destination && (b.Pending > 0 || b.InFlight > 0) {
				return false
			}
		}
		return true
	})
}

// handshake waits for a subscription's handshake and its activation.
func (f *fixture) handshake(id, path string) {
	f.t.Helper()
	waitFor(f.t, "the handshake of "+id, 5*time.Second, func() bool { return len(f.rcv.on(path)) > 0 })
	n := f.rcv.on(path)[0]
	if got := n.status(); got["type"] != "handshake" || !strings.HasSuffix(got["subscription"], "/Subscription/"+id) {
		f.t.Fatalf("first notification: %v, want the handshake of %s", got, id)
	}
	waitFor(f.t, id+" to become active", 5*time.Second, func() bool { return f.statusOf(id) == "active" })
}

// TestTopicNotificationDelivered: a topic-based subscription is
// handshaken and activated, hears of a booking of its patient within 5 s
// with the appointment in full, signed with a JWS that verifies against
// the published JWKS, gets heartbeats, and $status reports its events.
func TestTopicNotificationDelivered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	s := f.topicSub("appointment-booked", "/booked", "full-resource", "Appointment?patient=Patient/p1")
	s["channel"].(map[string]any)["extension"] = []any{map[string]any{"url": subscription.ExtHeartbeatPeriod, "valueUnsignedInt": 1}}
	s["channel"].(map[string]any)["header"] = []string{"Authorization: Bearer receiver-secret"}
	id := f.subscribe("", s)
	f.handshake(id, "/booked")

	f.book("", "s1", "p2") // another patient: filtered out
	start := time.Now()
	appt := f.book("", "s0", "p1")
	var n note
	waitFor(t, "the booking's notification", 5*time.Second, func() bool {
		for _, x := range f.rcv.on("/booked") {
			if x.status()["type"] == "event-notification" {
				n = x
				return true
			}
		}
		return false
	})
	if lag := n.At.Sub(start); lag > 5*time.Second {
		t.Errorf("notification after %v, want within 5 s", lag)
	}
	st := n.status()
	want := map[string]string{"type": "event-notification", "status": "active", "topic": subscription.TopicBase + "appointment-booked",
		"events-since-subscription-start": "1", "event.event-number": "1", "event.focus": f.base + "/Appointment/" + appt}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("status %s = %q, want %q", k, st[k], v)
		}
	}
	if n.bundle.Type != "history" || len(n.bundle.Entry) != 2 {
		t.Fatalf("notification: type %q with %d entries, want history with status and focus: %s", n.bundle.Type, len(n.bundle.Entry), n.Body)
	}
	var focus struct{ ResourceType, ID, Status string }
	_ = json.Unmarshal(n.bundle.Entry[1].Resource, &focus)
	if focus.ResourceType != "Appointment" || focus.ID != appt || focus.Status != "booked" {
		t.Errorf("focus entry: %+v, want the booked Appointment/%s", focus, appt)
	}
	if n.bundle.Entry[0].Request.Method != "GET" || !strings.HasSuffix(n.bundle.Entry[0].Request.URL, "/Subscription/"+id+"/$status") {
		t.Errorf("status entry request: %+v", n.bundle.Entry[0].Request)
	}
	if n.Auth != "Bearer receiver-secret" {
		t.Errorf("channel.header not sent: Authorization %q", n.Auth)
	}

	// The signature verifies against the JWKS Signpost publishes, and not
	// over another body.
	code, raw := f.do("GET", strings.TrimSuffix(f.base, "/fhir")+app.JWKSPath, "", nil)
	if code != http.StatusOK {
		t.Fatalf("JWKS: %d %s", code, raw)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %v %s", err, raw)
	}
	if err := resthook.Verify(set, n.Signature, n.Body); err != nil {
		t.Errorf("signature %q does not verify: %v", n.Signature, err)
	}
	if err := resthook.Verify(set, n.Signature, append(bytes.Clone(n.Body), ' ')); err == nil {
		t.Error("the signature verifies over a changed body")
	}

	// Heartbeats follow while nothing happens.
	waitFor(t, "a heartbeat", 5*time.Second, func() bool {
		for _, x := range f.rcv.on("/booked") {
			if x.status()["type"] == "heartbeat" {
				return x.status()["events-since-subscription-start"] == "1"
			}
		}
		return false
	})

	// $status, on the instance.
	code, raw = f.do("GET", "/Subscription/"+id+"/$status", "", nil)
	var b struct {
		Type  string
		Entry []struct{ Resource json.RawMessage }
	}
	_ = json.Unmarshal(raw, &b)
	if code != http.StatusOK || b.Type != "searchset" || len(b.Entry) != 1 {
		t.Fatalf("$status: %d %s", code, raw)
	}
	sn := note{bundle: notification{Entry: []struct {
		FullURL  string                       `json:"fullUrl"`
		Resource json.RawMessage              `json:"resource"`
		Request  struct{ Method, URL string } `json:"request"`
	}{{Resource: b.Entry[0].Resource}}}}
	if got := sn.status(); got["type"] != "query-status" || got["status"] != "active" || got["events-since-subscription-start"] != "1" {
		t.Errorf("$status: %v", got)
	}
}

// TestPayloadShapes: the same booking notified as empty, id-only and
// full-resource, to a topic-based and to an R4 criteria subscription.
func TestPayloadShapes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	ids := map[string]string{}
	for _, c := range []string{"empty", "id-only", "full-resource"} {
		ids[c] = f.subscribe("", f.topicSub("appointment-booked", "/"+c, c))
		f.handshake(ids[c], "/"+c)
	}
	r4 := f.subscribe("", map[string]any{"resourceType": "Subscription", "status": "requested", "reason": "R4 criteria",
		"criteria": "Appointment?status=booked&patient=Patient/p1",
		"channel":  map[string]any{"type": "rest-hook", "endpoint": f.rcv.URL + "/r4", "payload": "application/fhir+json"}})
	f.handshake(r4, "/r4")
	appt := f.book("", "s2", "p1")
	f.idle()
	for _, tc := range []struct {
		path      string
		entries   int
		focus     bool
		resources bool
	}{{"/empty", 1, false, false}, {"/id-only", 2, true, false}, {"/full-resource", 2, true, true}, {"/r4", 2, true, true}} {
		got := f.rcv.on(tc.path)
		if len(got) != 2 {
			t.Errorf("%s: %d notifications, want handshake and event", tc.path, len(got))
			continue
		}
		n := got[1]
		st := n.status()
		if st["type"] != "event-notification" || st["event.event-number"] != "1" {
			t.Errorf("%s: %v", tc.path, st)
		}
		if len(n.bundle.Entry) != tc.entries {
			t.Errorf("%s: %d entries, want %d: %s", tc.path, len(n.bundle.Entry), tc.entries, n.Body)
			continue
		}
		if hasFocus := st["event.focus"] == f.base+"/Appointment/"+appt; hasFocus != tc.focus {
			t.Errorf("%s: focus %q, want it: %v", tc.path, st["event.focus"], tc.focus)
		}
		if tc.entries > 1 {
			e := n.bundle.Entry[1]
			if e.FullURL != f.base+"/Appointment/"+appt || e.Request.Method != "POST" {
				t.Errorf("%s: focus entry %s %+v", tc.path, e.FullURL, e.Request)
			}
			if (len(e.Resource) > 0) != tc.resources {
				t.Errorf("%s: resource in the entry: %s, want %v", tc.path, e.Resource, tc.resources)
			}
		}
		if _, ok := st["topic"]; ok != (tc.path != "/r4") {
			t.Errorf("%s: topic %q", tc.path, st["topic"])
		}
	}
}

// TestRetriedInOrder: while the receiver is down, notifications wait and
// the subscription is in error; once it is back each is delivered, in
// order, and the subscription is active again.
func TestRetriedInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	id := f.subscribe("", f.topicSub("appointment-cancelled", "/cancelled", "id-only"))
	f.handshake(id, "/cancelled")
	booked := f.subscribe("", f.topicSub("appointment-booked", "/booked", "id-only"))
	f.handshake(booked, "/booked")
	f.rcv.setDown(true)
	var appts []string
	for i := range 4 {
		appts = append(appts, f.book("", fmt.Sprintf("s%d", i), "p1"))
	}
	for _, a := range appts {
		f.cancel("", a)
	}
	waitFor(t, "the subscriptions to be in error", 5*time.Second, func() bool {
		return f.statusOf(id) == "error" && f.statusOf(booked) == "error"
	})
	_, raw := f.do("GET", "/Subscription/"+id, "", nil)
	if !strings.Contains(string(raw), "503") {
		t.Errorf("the subscription in error does not say why: %s", raw)
	}
	f.rcv.setDown(false)
	f.idle()
	for path, sub := range map[string]string{"/cancelled": id, "/booked": booked} {
		got := f.rcv.on(path)[1:]
		if len(got) != len(appts) {
			t.Fatalf("%s: %d events, want %d", path, len(got), len(appts))
		}
		for i, n := range got {
			st := n.status()
			if st["event.event-number"] != fmt.Sprint(i+1) || st["event.focus"] != f.base+"/Appointment/"+appts[i] {
				t.Errorf("%s: event %d: %v, want number %d on %s", path, i, st, i+1, appts[i])
			}
		}
		waitFor(t, sub+" to be active again", 5*time.Second, func() bool { return f.statusOf(sub) == "active" })
	}
}

// TestNoDeliveryWhenOffOrEnded: a subscription turned off, or past its
// end, hears of nothing more.
func TestNoDeliveryWhenOffOrEnded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	off := f.subscribe("", f.topicSub("appointment-booked", "/off", "id-only"))
	f.handshake(off, "/off")
	s := f.topicSub("appointment-booked", "/ending", "id-only")
	s["end"] = time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	ending := f.subscribe("", s)
	f.handshake(ending, "/ending")
	sentinel := f.subscribe("", f.topicSub("appointment-booked", "/sentinel", "id-only"))
	f.handshake(sentinel, "/sentinel")

	_, raw := f.do("GET", "/Subscription/"+off, "", nil)
	var obj map[string]any
	_ = json.Unmarshal(raw, &obj)
	obj["status"] = "off"
	if code, body := f.do("PUT", "/Subscription/"+off, "", obj); code != http.StatusOK {
		t.Fatalf("turning off: %d %s", code, body)
	}
	waitFor(t, "the subscription past its end to be turned off", 5*time.Second, func() bool { return f.statusOf(ending) == "off" })
	f.book("", "s3", "p1")
	waitFor(t, "the sentinel's notification", 5*time.Second, func() bool { return len(f.rcv.on("/sentinel")) == 2 })
	f.idle()
	for _, path := range []string{"/off", "/ending"} {
		if got := f.rcv.on(path); len(got) != 1 {
			t.Errorf("%s: %d notifications, want the handshake only", path, len(got))
		}
	}
}

// TestSubscriptionRefused: a client's mistakes are 422s that say where;
// a private address is allowed only when the deployment allows it.
func TestSubscriptionRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	good := func() map[string]any { return f.topicSub("slot-freed", "/x", "id-only") }
	for _, tc := range []struct {
		name  string
		edit  func(s map[string]any)
		where string
	}{
		{"end beyond 30 days", func(s map[string]any) {
			s["end"] = time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)
		}, "Subscription.end"},
		{"private address", func(s map[string]any) {
			s["channel"].(map[string]any)["endpoint"] = "https://10.1.2.3/hook"
		}, "Subscription.channel.endpoint"},
		{"link-local address", func(s map[string]any) {
			s["channel"].(map[string]any)["endpoint"] = "https://[fe80::1]/hook"
		}, "Subscription.channel.endpoint"},
		{"plain http", func(s map[string]any) {
			s["channel"].(map[string]any)["endpoint"] = "http://example.org/hook"
		}, "Subscription.channel.endpoint"},
		{"other channel", func(s map[string]any) { s["channel"].(map[string]any)["type"] = "email" }, "Subscription.channel.type"},
		{"unknown topic", func(s map[string]any) { s["criteria"] = subscription.TopicBase + "nothing" }, "Subscription.criteria"},
		{"bad filter", func(s map[string]any) {
			s["_criteria"] = map[string]any{"extension": []any{map[string]any{"url": subscription.ExtFilterCriteria, "valueString": "Slot?nonsense=1"}}}
		}, "Subscription.criteria.extension('" + subscription.ExtFilterCriteria + "')[0]"},
		{"filter on another type", func(s map[string]any) {
			s["_criteria"] = map[string]any{"extension": []any{map[string]any{"url": subscription.ExtFilterCriteria, "valueString": "Appointment?status=booked"}}}
		}, "Subscription.criteria.extension('" + subscription.ExtFilterCriteria + "')[0]"},
		{"bad criteria", func(s map[string]any) { s["criteria"] = "Appointment?frobnicate=1"; delete(s, "_criteria") }, "Subscription.criteria"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.edit(s)
			code, body := f.do("POST", "/Subscription", "", s)
			var oo struct {
				ResourceType string
				Issue        []struct{ Expression []string }
			}
			_ = json.Unmarshal(body, &oo)
			if code != http.StatusUnprocessableEntity || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 ||
				len(oo.Issue[0].Expression) == 0 || oo.Issue[0].Expression[0] != tc.where {
				t.Errorf("got %d %s, want 422 at %s", code, body, tc.where)
			}
		})
	}
	code, body := f.do("GET", "/Subscription", "", nil)
	if code != http.StatusOK || strings.Contains(string(body), `"resourceType":"Subscription"`) {
		t.Errorf("a refused Subscription was stored: %s", body)
	}
	// A deployment that allows 10.1.2.0/24 and http accepts them.
	allowed := newFixture(t, app.Config{Subscriptions: app.SubscriptionsConfig{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")}, AllowHTTP: true}})
	s := allowed.topicSub("slot-freed", "/x", "id-only")
	s["channel"].(map[string]any)["endpoint"] = "http://10.1.2.3/hook"
	if code, body := allowed.do("POST", "/Subscription", "", s); code != http.StatusCreated {
		t.Errorf("allowed address: %d %s", code, body)
	}
}

var _ = tls.VersionTLS12

// TestOwnerReach: with authorisation on, a patient's subscription hears
// only of what the patient may read (not another patient's appointment),
// a full-resource notification whose focus the patient can no longer read
// when it is sent carries none of it, the owner recorded is the token's,
// whatever the client sent, and the subscription of a client that is not
// (or no longer) registered stops.
func TestOwnerReach(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{Auth: true})
	mint := func(o devserver.TokenOptions) string {
		tok, err := devserver.MintToken(f.a.Config.Data, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	backend := mint(devserver.TokenOptions{Client: "test-backend", Scope: "system/*.cruds"})
	f.admin = backend
	// Patient p1, with the patient app.
	patient := mint(devserver.TokenOptions{Patient: "p1", Scope: "patient/Appointment.rs patient/Subscription.cruds"})

	s := f.topicSub("appointment-booked", "/p1", "full-resource")
	s["extension"] = []any{map[string]any{"url": subscription.ExtOwner, "extension": []any{
		map[string]any{"url": "server", "valueBoolean": true}}}} // forged: ignored
	id := f.subscribe(patient, s)
	f.handshake(id, "/p1")
	code, raw := f.do("GET", "/Subscription/"+id, patient, nil)
	if code != http.StatusOK || strings.Contains(string(raw), `"server"`) || !strings.Contains(string(raw), `"valueString":"p1"`) {
		t.Errorf("the owner reading their subscription: %d, or the owner is not the token's: %s", code, raw)
	}
	// A Subscription is its owner's alone: another client, even with
	// system scopes, neither reads, finds, changes nor deletes it.
	for _, req := range []struct{ method, path string }{{"GET", "/Subscription/" + id}, {"DELETE", "/Subscription/" + id}} {
		if code, body := f.do(req.method, req.path, backend, nil); code != http.StatusNotFound {
			t.Errorf("%s by another client: %d %s, want 404", req.method, code, body)
		}
	}
	if code, body := f.do("GET", "/Subscription?_id="+id, backend, nil); code != http.StatusOK || strings.Contains(string(body), `"id":"`+id+`"`) {
		t.Errorf("another client's search found it: %d %s", code, body)
	}
	if code, body := f.do("GET", "/Subscription?_id="+id, patient, nil); code != http.StatusOK || !strings.Contains(string(body), `"id":"`+id+`"`) {
		t.Errorf("the owner's search did not find it: %d %s", code, body)
	}

	other := f.book(backend, "s4", "p2")
	mine := f.book(backend, "s5", "p1")
	f.idle()
	got := f.rcv.on("/p1")[1:]
	if len(got) != 1 || got[0].status()["event.focus"] != f.base+"/Appointment/"+mine {
		t.Fatalf("patient p1 heard of %d events (%v), want only Appointment/%s, never Appointment/%s", len(got), got, mine, other)
	}
	if strings.Contains(string(got[0].Body), "Patient/p2") {
		t.Errorf("p1's notification mentions p2: %s", got[0].Body)
	}

	// Queued while p1 could read it, sent after p1 no longer can.
	f.rcv.setDown(true)
	third := f.book(backend, "s6", "p1")
	waitFor(t, "the subscription in error", 5*time.Second, func() bool { return f.statusOf(id) == "error" })
	if code, body := f.do("DELETE", "/Appointment/"+third, backend, nil); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("deleting: %d %s", code, body)
	}
	f.rcv.setDown(false)
	f.idle()
	got = f.rcv.on("/p1")
	last := got[len(got)-1]
	if st := last.status(); st["event.event-number"] != "2" || st["event.focus"] != "" || len(last.bundle.Entry) != 1 {
		t.Errorf("a notification of what the owner can no longer read: %v %s", st, last.Body)
	}

	// A client that is not registered: its subscription stops.
	ghost := mint(devserver.TokenOptions{Client: "removed-app", Scope: "user/Subscription.cruds system/Appointment.rs"})
	gid := f.subscribe(ghost, f.topicSub("appointment-booked", "/ghost", "id-only"))
	waitFor(t, "the removed client's subscription to stop", 5*time.Second, func() bool { return f.statusOf(gid) == "off" })
	f.book(backend, "s7", "p1")
	f.idle()
	if n := len(f.rcv.on("/ghost")); n != 0 {
		t.Errorf("the removed client's subscription got %d notifications", n)
	}
}

// TestRescheduleTopics: Appointment/$reschedule is one transaction that
// is three events on three topics: the new appointment rescheduled, the
// old one cancelled, its slot freed. The topics are served read-only.
func TestRescheduleTopics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	topics := []string{"appointment-rescheduled", "appointment-cancelled", "slot-freed", "appointment-booked"}
	for _, tp := range topics {
		id := f.subscribe("", f.topicSub(tp, "/"+tp, "id-only"))
		f.handshake(id, "/"+tp)
	}
	old := f.book("", "s8", "p1")
	code, body := f.do("POST", "/Appointment/"+old+"/$reschedule", "",
		`{"resourceType":"Parameters","parameter":[{"name":"slot","valueReference":{"reference":"Slot/s9"}}]}`)
	if code != http.StatusOK {
		t.Fatalf("$reschedule: %d %s", code, body)
	}
	f.idle()
	focus := func(path string) []string {
		var out []string
		for _, n := range f.rcv.on(path)[1:] {
			out = append(out, strings.TrimPrefix(n.status()["event.focus"], f.base+"/"))
		}
		return out
	}
	booked, resch := focus("/appointment-booked"), focus("/appointment-rescheduled")
	if len(booked) != 1 || booked[0] != "Appointment/"+old {
		t.Errorf("booked: %v, want only Appointment/%s", booked, old)
	}
	if len(resch) != 1 || resch[0] == "Appointment/"+old || !strings.HasPrefix(resch[0], "Appointment/") {
		t.Errorf("rescheduled: %v, want the new appointment", resch)
	}
	if got := focus("/appointment-cancelled"); len(got) != 1 || got[0] != "Appointment/"+old {
		t.Errorf("cancelled: %v, want Appointment/%s", got, old)
	}
	if got := focus("/slot-freed"); len(got) != 1 || got[0] != "Slot/s8" {
		t.Errorf("slot freed: %v, want Slot/s8", got)
	}
	code, body = f.do("GET", "/SubscriptionTopic/slot-freed", "", nil)
	var topic struct{ ResourceType, URL string }
	_ = json.Unmarshal(body, &topic)
	if code != http.StatusOK || topic.ResourceType != "SubscriptionTopic" || topic.URL != subscription.TopicBase+"slot-freed" {
		t.Errorf("GET SubscriptionTopic/slot-freed: %d %.200s", code, body)
	}
}

// TestCapabilityStatement: Subscription is advertised with the Backport
// IG's profile and $status.
func TestCapabilityStatement(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	_, body := f.do("GET", "/metadata", "", nil)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type             string
				SupportedProfile []string
				Operation        []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(body, &cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	for _, r := range cs.Rest[0].Resource {
		if r.Type != "Subscription" {
			continue
		}
		if len(r.SupportedProfile) != 1 || r.SupportedProfile[0] != subscription.ProfileBackport {
			t.Errorf("supportedProfile %v", r.SupportedProfile)
		}
		for _, op := range r.Operation {
			if op.Name == "status" {
				code, def := f.do("GET", op.Definition[strings.Index(op.Definition, "/fhir")+5:], "", nil)
				if code != http.StatusOK || !strings.Contains(string(def), "backport-subscription-status") {
					t.Errorf("$status definition %s: %d", op.Definition, code)
				}
				return
			}
		}
		t.Errorf("no $status on Subscription: %v", r.Operation)
	}
}
