package adapters_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/store"
)

// sinkKind is a kind made for these tests: an instance with no peer, so
// the outbox messages of its destination stay as a test puts them, whose
// status the test sets, and which counts its wake-ups.
const sinkKind = "test-sink"

func init() { adapters.Register(sinkKind, newSink) }

var (
	sinksMu sync.Mutex
	sinks   = map[string]*sink{} // by instance name, the last built
)

type sink struct {
	mu     sync.Mutex
	status adapters.Status
	wakes  int
}

func newSink(env adapters.Env, settings json.RawMessage) (adapters.Adapter, error) {
	var set struct {
		State  string `json:"state"`
		Detail string `json:"detail"`
	}
	if err := adapters.Decode(settings, &set); err != nil {
		return nil, err
	}
	s := &sink{status: adapters.Status{State: adapters.State(set.State), Detail: set.Detail}}
	sinksMu.Lock()
	sinks[env.Name] = s
	sinksMu.Unlock()
	return s, nil
}

func sinkNamed(name string) *sink {
	sinksMu.Lock()
	defer sinksMu.Unlock()
	return sinks[name]
}

func (s *sink) Start(context.Context) error { return nil }
func (s *sink) Stop(context.Context) error  { return nil }
func (s *sink) Status(context.Context) adapters.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}
func (s *sink) Wake() { s.mu.Lock(); s.wakes++; s.mu.Unlock() }
func (s *sink) Wakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakes
}

// downPort is a 127.0.0.1 address nothing listens on: a PAS that is down.
func downPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// opsServer is the real server, authorisation on, with a sink instance
// ("sink", degraded with a detail) and a PAS instance ("pas-rh8") whose
// PAS is down.
type opsServer struct {
	apptest.Client
}

func newOpsServer(t *testing.T) *opsServer {
	t.Helper()
	src := fmt.Sprintf(`adapters:
  - name: sink
    kind: %s
    principal: {role: provider, organization: %s}
    settings: {state: degraded, detail: "PAS not answering since 10:02"}
  - name: pas-rh8
    kind: hl7v2-pas
    principal: {role: provider, organization: %s}
    settings:
      send: %s
      services: [hs-pas]
      pas_number_system: https://harbour.example/Id/pas-number
      mode: signpost-confirmed
`, sinkKind, devserver.DemoProvider, devserver.DemoProvider, downPort(t))
	f, err := adapters.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a, ts := apptest.New(t, app.Config{Auth: true, Adapters: f})
	return &opsServer{apptest.NewClient(t, a, ts)}
}

// params is a Parameters body with string inputs (name, value pairs).
func params(nv ...string) map[string]any {
	var ps []any
	for i := 0; i+1 < len(nv); i += 2 {
		ps = append(ps, map[string]any{"name": nv[i], "valueString": nv[i+1]})
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

// seedOutbox puts, for destination sink: k1's m1 (dead letter) and m2
// (pending behind it), k2's m3 (delivered); for "gone" (no instance) one
// pending message. It returns the ids by control id.
func (s *opsServer) seedOutbox(now time.Time) map[string]int64 {
	s.T.Helper()
	ob := s.App.Store.(store.Outbox)
	ctx := context.Background()
	ids := map[string]int64{}
	err := s.App.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, m := range []store.Message{
			{Destination: "sink", Key: "Appointment/k1", ControlID: "m1"}, {Destination: "sink", Key: "Appointment/k1", ControlID: "m2"},
			{Destination: "sink", Key: "Appointment/k2", ControlID: "m3"}, {Destination: "gone", Key: "Appointment/k9", ControlID: "g1"},
		} {
			m.ContentType, m.Payload, m.Created = "application/hl7-v2", []byte("MSH|^~\\&|SIGNPOST\rPID|1||9990000018^^^NHS^NH"), now.Add(-time.Hour)
			id, err := tx.(store.OutboxTx).Enqueue(ctx, m)
			if err != nil {
				return err
			}
			ids[m.ControlID] = id
		}
		return nil
	})
	if err != nil {
		s.T.Fatal(err)
	}
	got, err := ob.Claim(ctx, "sink", now, time.Minute, 10)
	if err != nil || len(got) != 2 {
		s.T.Fatalf("Claim = %v, %v", got, err)
	}
	if err := ob.DeadLetter(ctx, got[0].ID, got[0].Claim, "rejected: AR unknown patient", now); err != nil {
		s.T.Fatal(err)
	}
	if err := ob.Delivered(ctx, got[1].ID, got[1].Claim, now); err != nil {
		s.T.Fatal(err)
	}
	return ids
}

// parts returns the parts of a Parameters answer named name, each as a
// map from part name to its value (the value[x]'s JSON, decoded).
func parts(t *testing.T, body []byte, name string) []map[string]any {
	t.Helper()
	var p struct {
		ResourceType string           `json:"resourceType"`
		Parameter    []map[string]any `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		t.Fatalf("not Parameters (%v): %s", err, body)
	}
	var out []map[string]any
	for _, x := range p.Parameter {
		if x["name"] != name {
			continue
		}
		m := map[string]any{}
		if ps, ok := x["part"].([]any); ok {
			for _, y := range ps {
				y := y.(map[string]any)
				for k, v := range y {
					if strings.HasPrefix(k, "value") {
						m[y["name"].(string)] = v
					}
					if k == "part" {
						sub := map[string]any{}
						for _, z := range v.([]any) {
							z := z.(map[string]any)
							for zk, zv := range z {
								if strings.HasPrefix(zk, "value") {
									sub[z["name"].(string)] = zv
								}
							}
						}
						m[y["name"].(string)] = sub
					}
				}
			}
		} else {
			for k, v := range x {
				if strings.HasPrefix(k, "value") {
					m[name] = v
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// TestOperatorViewAccess: the operator view's operations answer the
// operator role only: no token is 401, and every other caller 403 (a
// backend service without a role included), audited as such.
func TestOperatorViewAccess(t *testing.T) {
	s := newOpsServer(t)
	calls := []struct {
		method, path string
		body         any
	}{
		{"GET", "/$adapters", nil},
		{"POST", "/$adapters", params()},
		{"GET", "/$adapter-dead-letters", nil},
		{"POST", "/$adapter-replay", params("id", "999999")},
		{"POST", "/$adapter-discard", params("id", "999999")},
	}
	for _, who := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"provider", s.Token(devserver.ClientProvider, "system/*.cruds"), http.StatusForbidden},
		{"referrer", s.Token(devserver.ClientGPSystem, "system/*.cruds"), http.StatusForbidden},
		{"auditor", s.Token(devserver.ClientAuditor, ""), http.StatusForbidden},
		{"commissioner", s.Token(devserver.ClientCommissioner, ""), http.StatusForbidden},
		{"backend service without a role", s.Token("script", "system/*.cruds"), http.StatusForbidden},
		{"patient", s.Token(devserver.ClientPatientApp, "patient/*.rs"), http.StatusForbidden},
	} {
		for _, c := range calls {
			if code, body := s.Request(who.token, c.method, c.path, c.body); code != who.want {
				t.Errorf("%s: %s %s = %d %s, want %d", who.name, c.method, c.path, code, body, who.want)
			}
		}
	}
	op := s.Token(devserver.ClientOperator, "")
	for _, c := range calls {
		want := http.StatusOK
		if strings.Contains(c.path, "replay") || strings.Contains(c.path, "discard") {
			want = http.StatusNotFound // allowed in; no such message
		}
		if code, body := s.Request(op, c.method, c.path, c.body); code != want {
			t.Errorf("operator: %s %s = %d %s, want %d", c.method, c.path, code, body, want)
		}
	}
	if code, body := s.Request(op, "GET", "/$adapter-replay?id=1", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET $adapter-replay = %d %s, want 405: it changes state", code, body)
	}

	// The CapabilityStatement declares the operations with their definitions.
	_, meta := s.Request("", "GET", "/metadata", nil)
	for _, name := range []string{adapters.OpStatus, adapters.OpDeadLetters, adapters.OpReplay, adapters.OpDiscard} {
		if !strings.Contains(string(meta), `{"name":"`+name+`","definition":"https://signpost.example/fhir/OperationDefinition/`+name+`"}`) {
			t.Errorf("the CapabilityStatement does not declare $%s with its definition", name)
		}
	}

	// Every call is in the audit trail, the operator's by its client.
	s.App.API.Flush()
	audit := s.Token("script", "system/AuditEvent.rs")
	code, body := s.Request(audit, "GET", "/AuditEvent?subtype=operation&agent:identifier=https://signpost.example/fhir/Id/oauth-client|operator&_total=accurate", nil)
	if want := len(calls) + 1; code != 200 || !strings.Contains(string(body), fmt.Sprintf(`"total":%d`, want)) { // and the GET refused
		t.Errorf("the operator's audit records: %d %.300s…, want %d", code, body, want)
	}
}

// TestOperatorReachesNoClinicalData: the operator's token reads the
// directory, and no Patient, Appointment or referral, whatever it asks.
func TestOperatorReachesNoClinicalData(t *testing.T) {
	s := newOpsServer(t)
	apptest.Seed(t, s.App,
		map[string]any{"resourceType": "Organization", "id": "trust", "name": "Harbour"},
		map[string]any{"resourceType": "HealthcareService", "id": "hs-pas", "name": "Cardiology", "providedBy": map[string]any{"reference": "Organization/trust"}},
		map[string]any{"resourceType": "Patient", "id": "pat-1", "name": []any{map[string]any{"family": "Jones"}}})
	op := s.Token(devserver.ClientOperator, "")
	wide := s.Token(devserver.ClientOperator, "system/*.cruds user/*.cruds") // a token asking for more gets no more
	for _, tt := range []struct {
		token, method, path string
		want                int
	}{
		{op, "GET", "/HealthcareService/hs-pas", 200},
		{op, "GET", "/Organization?name=Harbour", 200},
		{op, "GET", "/Patient/pat-1", 403},
		{op, "GET", "/Patient", 403},
		{op, "GET", "/Appointment", 403},
		{op, "GET", "/ServiceRequest", 403},
		{op, "GET", "/AuditEvent", 403},
		{wide, "GET", "/Patient/pat-1", 403},
		{wide, "GET", "/Patient?family=Jones", 403},
		{wide, "GET", "/Appointment", 403},
		{wide, "PUT", "/HealthcareService/hs-pas", 403},
		{wide, "DELETE", "/Patient/pat-1", 403},
	} {
		var body any
		if tt.method == "PUT" {
			body = map[string]any{"resourceType": "HealthcareService", "id": "hs-pas", "name": "Renamed"}
		}
		if code, b := s.Request(tt.token, tt.method, tt.path, body); code != tt.want {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, b, tt.want)
		}
	}
	// Searches across types show nothing clinical either.
	for _, path := range []string{"?_type=Patient,HealthcareService", "/_history"} {
		code, b := s.Request(wide, "GET", path, nil)
		if code == 200 && strings.Contains(string(b), `"Patient"`) {
			t.Errorf("%s = %d and shows a Patient: %s", path, code, b)
		}
	}
}

// TestOperatorView: $adapters lists every instance with its state,
// detail, last error and backlog (and a destination left without
// instance); $adapter-dead-letters lists the dead letters without their
// content; $adapter-replay sends one again, $adapter-discard gives one up
// and lets its key flow; mistakes are 400 naming the parameter, an
// unknown message 404, one that is not a dead letter 409.
func TestOperatorView(t *testing.T) {
	s := newOpsServer(t)
	now := time.Now()
	ids := s.seedOutbox(now)
	op := s.Token(devserver.ClientOperator, "")
	ob := s.App.Store.(store.Outbox)
	ctx := context.Background()

	code, body := s.Request(op, "GET", "/$adapters", nil)
	if code != 200 {
		t.Fatalf("$adapters = %d %s", code, body)
	}
	got := parts(t, body, "adapter")
	var names []string
	byName := map[string]map[string]any{}
	for _, a := range got {
		names = append(names, fmt.Sprint(a["name"]))
		byName[fmt.Sprint(a["name"])] = a
	}
	if want := []string{"sink", "pas-rh8", "gone"}; !slices.Equal(names, want) {
		t.Fatalf("$adapters lists %v, want %v (file order, then destinations without instance)", names, want)
	}
	sk := byName["sink"]
	if sk["kind"] != sinkKind || sk["state"] != "degraded" || sk["detail"] != "PAS not answering since 10:02" {
		t.Errorf("sink = %v", sk)
	}
	bl := sk["backlog"].(map[string]any)
	if bl["pending"] != 1.0 || bl["inFlight"] != 0.0 || bl["dead"] != 1.0 || bl["oldestPending"] == nil {
		t.Errorf("sink's backlog = %v, want 1 pending (held behind the dead letter), 1 dead", bl)
	}
	if age, _ := bl["oldestPendingAge"].(map[string]any); age == nil || age["unit"] != "s" || age["value"].(float64) < 3599 {
		t.Errorf("oldest pending age = %v, want about an hour in seconds", bl["oldestPendingAge"])
	}
	if p := byName["pas-rh8"]; p["kind"] != pas.Kind || p["backlog"].(map[string]any)["pending"] != 0.0 {
		t.Errorf("pas-rh8 = %v", p)
	}
	if g := byName["gone"]; g["state"] != "stopped" || !strings.Contains(fmt.Sprint(g["detail"]), "not in the configuration") ||
		g["backlog"].(map[string]any)["pending"] != 1.0 {
		t.Errorf("gone = %v", g)
	}
	if r := parts(t, body, "retention"); len(r) != 1 || r[0]["retention"] != "720h0m0s" {
		t.Errorf("retention = %v", r)
	}

	code, body = s.Request(op, "GET", "/$adapter-dead-letters", nil)
	dead := parts(t, body, "deadLetter")
	if code != 200 || len(dead) != 1 {
		t.Fatalf("$adapter-dead-letters = %d %s", code, body)
	}
	d := dead[0]
	if d["id"] != fmt.Sprint(ids["m1"]) || d["adapter"] != "sink" || d["key"] != "Appointment/k1" || d["controlId"] != "m1" ||
		d["attempts"] != 1.0 || d["reason"] != "rejected: AR unknown patient" || d["deadSince"] == nil || d["size"] == nil {
		t.Errorf("dead letter = %v", d)
	}
	if strings.Contains(string(body), "9990000018") || strings.Contains(string(body), "MSH") {
		t.Errorf("the dead letters show the message's content: %s", body)
	}
	for _, tt := range []struct {
		path string
		n    int
	}{{"?adapter=sink", 1}, {"?adapter=pas-rh8", 0}, {"?limit=1", 1}} {
		if code, body := s.Request(op, "GET", "/$adapter-dead-letters"+tt.path, nil); code != 200 || len(parts(t, body, "deadLetter")) != tt.n {
			t.Errorf("$adapter-dead-letters%s = %d %s, want %d", tt.path, code, body, tt.n)
		}
	}

	for _, tt := range []struct {
		name, method, path string
		body               any
		code               int
		want               string // in the OperationOutcome
	}{
		{"limit 0", "GET", "/$adapter-dead-letters?limit=0", nil, 400, `"expression":["limit"]`},
		{"limit not a number", "GET", "/$adapter-dead-letters?limit=ten", nil, 400, "limit must be a whole number from 1 to 1000"},
		{"unknown parameter", "GET", "/$adapter-dead-letters?adaptor=sink", nil, 400, `unknown parameter \"adaptor\"`},
		{"replay without id", "POST", "/$adapter-replay", params(), 400, `"expression":["id"]`},
		{"replay, id not a number", "POST", "/$adapter-replay", params("id", "m1"), 400, `id must be a dead letter's id`},
		{"replay of an unknown message", "POST", "/$adapter-replay", params("id", "999999"), 404, "not known"},
		{"replay of a pending message", "POST", "/$adapter-replay", params("id", fmt.Sprint(ids["m2"])), 409, "not one"},
		{"replay of a delivered message", "POST", "/$adapter-replay", params("id", fmt.Sprint(ids["m3"])), 409, "not one"},
		{"discard without id", "POST", "/$adapter-discard", params("reason", "x"), 400, `"expression":["id"]`},
		{"discard of a pending message", "POST", "/$adapter-discard", params("id", fmt.Sprint(ids["m2"])), 409, "not one"},
	} {
		code, body := s.Request(op, tt.method, tt.path, tt.body)
		if code != tt.code || !strings.Contains(string(body), "OperationOutcome") || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s: %d %s, want %d with %s", tt.name, code, body, tt.code, tt.want)
		}
	}

	// Replay: pending again, due now, same control id; the instances woken.
	wakes := sinkNamed("sink").Wakes()
	code, body = s.Request(op, "POST", "/$adapter-replay", map[string]any{"resourceType": "Parameters",
		"parameter": []any{map[string]any{"name": "id", "valueId": fmt.Sprint(ids["m1"])}}})
	if code != 200 || parts(t, body, "state")[0]["state"] != "pending" {
		t.Fatalf("$adapter-replay = %d %s", code, body)
	}
	if sinkNamed("sink").Wakes() != wakes+1 {
		t.Errorf("the sink was woken %d times, want once", sinkNamed("sink").Wakes()-wakes)
	}
	again, err := ob.Claim(ctx, "sink", time.Now(), time.Minute, 10)
	if err != nil || len(again) != 1 || again[0].ControlID != "m1" || again[0].Attempts != 1 {
		t.Fatalf("after the replay Claim = %+v, %v; want m1, first attempt", again, err)
	}
	if err := ob.DeadLetter(ctx, again[0].ID, again[0].Claim, "rejected again", time.Now()); err != nil {
		t.Fatal(err)
	}

	// Discard: given up, with who and why; the key flows again.
	code, body = s.Request(op, "POST", "/$adapter-discard", params("id", fmt.Sprint(ids["m1"]), "reason", "booked in the PAS by hand"))
	if code != 200 || parts(t, body, "state")[0]["state"] != "discarded" {
		t.Fatalf("$adapter-discard = %d %s", code, body)
	}
	if code, body := s.Request(op, "GET", "/$adapter-dead-letters", nil); code != 200 || len(parts(t, body, "deadLetter")) != 0 {
		t.Errorf("dead letters after the discard: %d %s", code, body)
	}
	if code, _ := s.Request(op, "POST", "/$adapter-discard", params("id", fmt.Sprint(ids["m1"]))); code != 409 {
		t.Errorf("discard twice = %d, want 409", code)
	}
	next, err := ob.Claim(ctx, "sink", time.Now(), time.Minute, 10)
	if err != nil || len(next) != 1 || next[0].ControlID != "m2" {
		t.Errorf("after the discard Claim = %+v, %v; want m2", next, err)
	}
}

// TestReadiness: /readyz stays 200 while a PAS is down and an instance is
// down, and its body names each instance with its state and detail (and
// no error text).
func TestReadiness(t *testing.T) {
	s := newOpsServer(t)
	sinkNamed("sink").mu.Lock()
	sinkNamed("sink").status = adapters.Status{State: adapters.StateDown, Detail: "listener: address in use", LastError: "secret host 10.9.9.9"}
	sinkNamed("sink").mu.Unlock()
	// A message for the PAS that is down, not yet due: it waits.
	err := s.App.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: "pas-rh8", Key: "Appointment/a", ControlID: "c1",
			Payload: []byte("MSH|"), Created: time.Now().Add(time.Hour)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	code, body := s.GetPage("/readyz")
	want := "ready\nadapter sink (test-sink): down: listener: address in use\nadapter pas-rh8 (hl7v2-pas): degraded: 1 messages wait, 0 dead letters"
	if code != 200 || string(body) != want {
		t.Errorf("/readyz = %d\n%s\nwant 200\n%s", code, body, want)
	}
}

// TestPrune: a started Set prunes what is finished longer ago than the
// retention, on its clock, and keeps dead letters and what waits; Prune
// does it again as the clock moves on.
func TestPrune(t *testing.T) {
	a, _ := apptest.New(t, app.Config{})
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f, err := adapters.Parse([]byte("retention: 48h\nadapters:\n  - name: sink\n    kind: " + sinkKind +
		"\n    principal: {role: provider, organization: RH8}\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := adapters.Build(f, adapters.Env{Writes: write.New(a.Store, a.Search), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ob := a.Store.(store.Outbox)
	ctx := context.Background()
	// m-old delivered 72h ago, m-recent 24h ago, m-dead dead 100h ago,
	// m-wait pending since 100h ago; inbox records 72h and 24h ago.
	ids := map[string]int64{}
	err = a.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, c := range []string{"m-old", "m-recent", "m-dead", "m-wait"} {
			id, err := tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: "sink", Key: c, ControlID: c, Created: now.Add(-200 * time.Hour)})
			if err != nil {
				return err
			}
			ids[c] = id
		}
		for _, h := range []int{72, 24} {
			if err := tx.(store.InboxTx).RecordReceived(ctx, store.Inbound{Sender: "pas", ControlID: fmt.Sprint("in-", h),
				Received: now.Add(-time.Duration(h) * time.Hour)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := ob.Claim(ctx, "sink", now.Add(-100*time.Hour), time.Minute, 10)
	if err != nil || len(claimed) != 4 {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	for _, q := range claimed {
		var err error
		switch q.ControlID {
		case "m-old":
			err = ob.Delivered(ctx, q.ID, q.Claim, now.Add(-72*time.Hour))
		case "m-recent":
			err = ob.Delivered(ctx, q.ID, q.Claim, now.Add(-24*time.Hour))
		case "m-dead":
			err = ob.DeadLetter(ctx, q.ID, q.Claim, "AR", now.Add(-100*time.Hour))
		case "m-wait":
			err = ob.Retry(ctx, q.ID, q.Claim, "AE", now.Add(time.Hour))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// kept lists what is still there: a message Replay does not know was
	// pruned (and Replay of one that is not a dead letter changes nothing).
	kept := func() []string {
		t.Helper()
		var out []string
		for _, c := range []string{"m-old", "m-recent", "m-wait"} {
			if err := ob.Replay(ctx, ids[c], now); err == nil {
				t.Fatalf("replayed %s, not a dead letter", c)
			} else if !strings.Contains(err.Error(), "not known") {
				out = append(out, c)
			}
		}
		if dead, err := ob.DeadLetters(ctx, "sink", 10); err == nil && len(dead) == 1 {
			out = append(out, "m-dead")
		}
		for _, h := range []int{72, 24} {
			if _, err := a.Store.(store.Inbox).Received(ctx, "pas", fmt.Sprint("in-", h)); err == nil {
				out = append(out, fmt.Sprint("in-", h))
			}
		}
		return out
	}
	if err := set.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer set.Stop(ctx)
	if got, want := kept(), []string{"m-recent", "m-wait", "m-dead", "in-24"}; !slices.Equal(got, want) {
		t.Errorf("after Start kept %v, want %v", got, want)
	}
	now = now.Add(24 * time.Hour) // m-recent and in-24 now 48h old: at the limit, kept
	if n, err := set.Prune(ctx); err != nil || n != 0 {
		t.Errorf("Prune a day later = %d, %v; want 0", n, err)
	}
	now = now.Add(time.Second)
	if n, err := set.Prune(ctx); err != nil || n != 2 {
		t.Errorf("Prune past the retention = %d, %v; want 2", n, err)
	}
	if got, want := kept(), []string{"m-wait", "m-dead"}; !slices.Equal(got, want) {
		t.Errorf("at last kept %v, want %v", got, want)
	}
}
