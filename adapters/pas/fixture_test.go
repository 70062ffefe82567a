package pas_test

// The fixture every test of the PAS adapter shares: the real server with
// authorisation on, one hl7v2-pas instance (pas-rh8, acting as the demo
// provider trust), a fake PAS peer it sends to, and an MLLP client to its
// listener.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// The fixture's names.
const (
	instance   = "pas-rh8"
	service    = "hs-pas"    // the HealthcareService the PAS owns
	schedule   = "sched-pas" // its Schedule, clinic "CARD1"
	clinic     = "CARD1"
	other      = "hs-other" // a service of the same trust the PAS does not own
	patientID  = "pat-1"
	nhsNumber  = "9990000018"
	pasNumber  = "P100001"
	pasSystem  = "https://harbour.example/Id/pas-number"
	slotCount  = 6 // free slots seeded on sched-pas: slot-0 … slot-5
	slotLength = 15 * time.Minute
)

// fixture is a running server with one PAS instance.
type fixture struct {
	apptest.Client // T, App, and URL: the FHIR base
	PAS            *pas.Adapter
	Peer           *peer     // the fake PAS receiving Signpost's messages
	First          time.Time // slot-0's start: tomorrow 09:00 UTC; slot-i starts i·15 min later
}

// newFixture starts the server with pas-rh8 in mode (pas.ModeSignpostConfirmed
// or pas.ModePASConfirmed), listening on a free 127.0.0.1 port and sending
// to a fresh fake PAS; edit, when not nil, changes the settings first.
// It seeds the trust (ODS devserver.DemoProvider), a GP practice, the
// PAS's service, schedule and slotCount slots, another service of the
// trust, and a patient with an NHS number and a PAS number.
func newFixture(t testing.TB, mode string, edit func(*pas.Settings)) *fixture {
	return newFixtureSlots(t, mode, edit, slotCount)
}

// newFixtureSlots is newFixture with n free slots on sched-pas (slot-0 …).
func newFixtureSlots(t testing.TB, mode string, edit func(*pas.Settings), n int) *fixture {
	t.Helper()
	p := newPeer(t)
	set := pas.Settings{
		Listen: "127.0.0.1:0", Allow: []string{"127.0.0.1"}, Send: p.Addr(),
		Services: []string{service}, Clinics: map[string]string{clinic: schedule},
		PASNumberSystem: pasSystem, Mode: mode,
		AckTimeout: adapters.Duration(2 * time.Second), ConfirmTimeout: adapters.Duration(2 * time.Second),
		RetryBase: adapters.Duration(20 * time.Millisecond), RetryMax: adapters.Duration(200 * time.Millisecond),
	}
	if edit != nil {
		edit(&set)
	}
	c, ad := startInstance(t, app.Config{Auth: true}, set, devserver.DemoProvider)
	f := &fixture{Client: c, PAS: ad, Peer: p}
	now := time.Now().UTC()
	f.First = time.Date(now.Year(), now.Month(), now.Day(), 9, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	ods := func(code string) []any {
		return []any{map[string]any{"system": referral.ODSSystem, "value": code}}
	}
	pat := patientRes()
	pat["generalPractitioner"] = []any{ref("Organization/gp-a")}
	seed := []map[string]any{
		{"resourceType": "Organization", "id": "gp-a", "name": "Demo Practice", "identifier": ods(devserver.DemoGPPractice)},
		{"resourceType": "Organization", "id": "trust", "name": "Harbour Hospitals", "identifier": ods(devserver.DemoProvider)},
		{"resourceType": "HealthcareService", "id": service, "name": "Cardiology", "providedBy": ref("Organization/trust")},
		{"resourceType": "HealthcareService", "id": other, "name": "Dermatology", "providedBy": ref("Organization/trust")},
		{"resourceType": "Schedule", "id": schedule, "actor": []any{ref("HealthcareService/" + service)}},
		pat,
	}
	for i := range n {
		seed = append(seed, slotRes(fmt.Sprintf("slot-%d", i), schedule, f.SlotStart(i), slotLength))
	}
	seedAll(t, f.App, seed)
	return f
}

// startInstance starts a server configured as cfg with one hl7v2-pas
// instance, pas-rh8, of settings set, acting as a provider of the
// organisation ods; it returns a client of the server and the instance.
func startInstance(t testing.TB, cfg app.Config, set pas.Settings, ods string) (apptest.Client, *pas.Adapter) {
	t.Helper()
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Adapters = &adapters.File{Adapters: []adapters.Instance{{Name: instance, Kind: pas.Kind,
		Principal: adapters.PrincipalConfig{Role: "provider", Organization: ods}, Settings: raw}}}
	a, ts := apptest.New(t, cfg)
	ad, ok := a.Adapters.Get(instance)
	if !ok {
		t.Fatal("no adapter instance")
	}
	return apptest.NewClient(t, a, ts), ad.(*pas.Adapter)
}

// ref is a Reference to r.
func ref(r string) map[string]any { return map[string]any{"reference": r} }

// patientRes is the fixture's patient, pat-1: Ann Jones, with her NHS
// number and PAS number.
func patientRes() map[string]any {
	return map[string]any{"resourceType": "Patient", "id": patientID, "birthDate": "1980-05-17",
		"name": []any{map[string]any{"family": "Jones", "given": []any{"Ann"}}},
		"identifier": []any{
			map[string]any{"system": referral.NHSNumberSystem, "value": nhsNumber},
			map[string]any{"system": pasSystem, "value": pasNumber},
		}}
}

// slotRes is a free Slot id of Schedule sched from start, length long.
func slotRes(id, sched string, start time.Time, length time.Duration) map[string]any {
	return map[string]any{"resourceType": "Slot", "id": id, "status": "free", "schedule": ref("Schedule/" + sched),
		"start": start.Format(time.RFC3339), "end": start.Add(length).Format(time.RFC3339)}
}

// otherSchedule is sched-other, a Schedule of the service the PAS does
// not own.
func otherSchedule() map[string]any {
	return map[string]any{"resourceType": "Schedule", "id": "sched-other", "actor": []any{ref("HealthcareService/" + other)}}
}

// seedAll seeds resources in transactions of a thousand.
func seedAll(t testing.TB, a *app.App, seed []map[string]any) {
	t.Helper()
	for len(seed) > 0 {
		k := min(len(seed), 1000)
		apptest.Seed(t, a, seed[:k]...)
		seed = seed[k:]
	}
}

// SlotStart is slot-i's start.
func (f *fixture) SlotStart(i int) time.Time { return f.First.Add(time.Duration(i) * slotLength) }

// send sends one ER7 message (segments separated by \r or \n) to the
// instance's listener and returns the acknowledgement.
func (f *fixture) send(er7 string) *hl7v2.Message {
	f.T.Helper()
	c := &mllp.Client{Addr: f.PAS.Addr().String(), AckTimeout: 10 * time.Second}
	defer c.Close()
	raw, err := c.Send(context.Background(), []byte(strings.ReplaceAll(er7, "\n", "\r")))
	if err != nil {
		f.T.Fatalf("sending to the listener: %v", err)
	}
	ack, err := hl7v2.Parse(raw)
	if err != nil {
		f.T.Fatalf("reading the acknowledgement %q: %v", raw, err)
	}
	return ack
}

// peer is a fake PAS: an MLLP listener that answers each message as its
// Answer function says (AA by default), records what it received, and
// applies each control id once, as a PAS de-duplicating by MSH-10 does.
type peer struct {
	t      testing.TB
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	answer   func(*hl7v2.Message) hl7v2.Ack
	received []*hl7v2.Message // every message, resends included
	applied  []*hl7v2.Message // the first of each control id
	seen     map[string]bool
	arrived  chan struct{}
}

// newPeer starts a fake PAS on a free 127.0.0.1 port; it stops when t ends.
func newPeer(t testing.TB) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, ln: ln, seen: map[string]bool{}, arrived: make(chan struct{}, 1)}
	p.start()
	t.Cleanup(p.Stop)
	return p
}

func (p *peer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	srv := &mllp.Server{AllowAnyPeer: true, Handler: p.handle}
	ln := p.ln
	go func() { defer close(p.done); _ = srv.Serve(ctx, ln) }()
}

// Addr is the peer's host:port.
func (p *peer) Addr() string { return p.ln.Addr().String() }

// Stop takes the PAS away: its port refuses connections until Restart.
func (p *peer) Stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
	p.cancel = nil
}

// Restart brings the PAS back on the same port.
func (p *peer) Restart() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.Addr())
	if err != nil {
		p.t.Fatal(err)
	}
	p.ln = ln
	p.start()
}

// Answer sets how the peer answers (nil: AA to everything).
func (p *peer) Answer(f func(*hl7v2.Message) hl7v2.Ack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = f
}

func (p *peer) handle(_ context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
	msg, err := hl7v2.Parse(raw)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	a := hl7v2.Ack{Outcome: hl7v2.OutcomeAccept}
	if p.answer != nil {
		a = p.answer(msg)
	}
	p.received = append(p.received, msg)
	if a.Outcome == hl7v2.OutcomeAccept && !p.seen[msg.ControlID()] {
		p.seen[msg.ControlID()] = true
		p.applied = append(p.applied, msg)
	}
	p.mu.Unlock()
	select {
	case p.arrived <- struct{}{}:
	default:
	}
	ack, err := hl7v2.BuildAck(msg, a)
	if err != nil {
		return nil, err
	}
	return ack.Encode(), nil
}

// Applied returns the messages the peer applied (each control id once),
// in order.
func (p *peer) Applied() []*hl7v2.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*hl7v2.Message(nil), p.applied...)
}

// Received returns every message the peer received, resends included.
func (p *peer) Received() []*hl7v2.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*hl7v2.Message(nil), p.received...)
}

// WaitApplied waits up to 10 s until the peer has applied n messages and
// returns them.
func (p *peer) WaitApplied(n int) []*hl7v2.Message {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := p.Applied(); len(got) >= n {
			return got
		}
		select {
		case <-p.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			p.t.Fatalf("the PAS applied %d messages, want %d", len(p.Applied()), n)
		}
	}
}

// TestFixture: the instance starts with the server, listens on loopback,
// acts for the trust and refuses messages it does not apply with an
// acknowledgement (never silence).
func TestFixture(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	if addr := f.PAS.Addr(); addr == nil || !strings.HasPrefix(addr.String(), "127.0.0.1:") {
		t.Fatalf("listener address %v", addr)
	}
	st := f.App.Adapters.Status(context.Background())
	if len(st) != 1 || st[0].Name != instance || st[0].Kind != pas.Kind || st[0].State != adapters.StateUp {
		t.Errorf("status %+v", st)
	}
	ack := f.send("MSH|^~\\&|PAS|RH8|SIGNPOST|RH8|20261206120000||ADT^A01^ADT_A01|X1|P|2.5.1\nPID|1||" + pasNumber)
	if code := ack.Get("MSA-1"); code == "" || ack.Get("MSA-2") != "X1" {
		t.Errorf("acknowledgement %q", ack.Encode())
	}
}

// referral creates a referral from the demo practice to the PAS's service
// for the patient and returns its "ServiceRequest/id".
func (f *fixture) referral() string {
	f.T.Helper()
	status, sr := f.Do(f.Token(devserver.ClientGPSystem, apptest.SystemScopes), "POST", "/ServiceRequest", map[string]any{
		"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"subject": map[string]any{"reference": "Patient/" + patientID}, "requester": map[string]any{"reference": "Organization/gp-a"},
		"performerType": pasSpecialty, "authoredOn": time.Now().UTC().Format("2006-01-02"),
		"category":  []any{map[string]any{"coding": []any{map[string]any{"system": referral.Base + "/CodeSystem/referral-source", "code": "gp"}}}},
		"performer": []any{map[string]any{"reference": "HealthcareService/" + service}}})
	if status != http.StatusCreated {
		f.T.Fatalf("POST ServiceRequest: %d %v", status, sr)
	}
	return "ServiceRequest/" + sr["id"].(string)
}

// appointment is a booking of slot-i for the patient based on sr.
func (f *fixture) appointment(i int, sr string) map[string]any {
	start := f.SlotStart(i)
	a := map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot":  []any{ref(fmt.Sprintf("Slot/slot-%d", i))},
		"start": start.Format(time.RFC3339), "end": start.Add(slotLength).Format(time.RFC3339),
		"participant": []any{
			map[string]any{"actor": ref("Patient/" + patientID), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}}
	if sr != "" {
		a["basedOn"] = []any{ref(sr)}
	}
	return a
}

// giveSpecialty gives the PAS's service the specialty pasSpecialty, so
// referrals (referral) suit it.
func (f *fixture) giveSpecialty() {
	apptest.Seed(f.T, f.App, map[string]any{"resourceType": "HealthcareService", "id": service, "name": "Cardiology",
		"providedBy": map[string]any{"reference": "Organization/trust"}, "specialty": []any{pasSpecialty}})
}
