package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestPASOutboxSurvivesSIGKILL: `signpost serve --adapters` with an
// hl7v2-pas instance whose PAS is down accepts bookings and cancellations
// (each queued in the outbox with its change); the server is killed with
// SIGKILL; the PAS comes up and the server restarts on the same data: every
// message queued before the kill reaches the PAS with the control id
// (MSH-10) it was queued with, in order per appointment, each applied once
// by a PAS that de-duplicates by control id.
func TestPASOutboxSurvivesSIGKILL(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	pasAddr := freeAddr(t) // nobody listens there yet: the PAS is down
	cfg := filepath.Join(t.TempDir(), "adapters.json")
	conf := map[string]any{"adapters": []any{map[string]any{
		"name": "pas-rh8", "kind": "hl7v2-pas",
		"principal": map[string]any{"role": "provider", "organization": "RH8"},
		"settings": map[string]any{
			"send": pasAddr, "services": []string{"hs-pas"}, "clinics": map[string]string{"CARD1": "sched-pas"},
			"pas_number_system": "https://harbour.example/Id/pas-number", "mode": "signpost-confirmed",
			"ack_timeout": "1s", "retry_base": "50ms", "retry_max": "200ms",
		}}}}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSignpost(t, bin, data, "--open", "--adapters", cfg)
	base := p.base + "/fhir"
	first := time.Now().UTC().Truncate(24 * time.Hour).Add(33 * time.Hour) // tomorrow 09:00
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	seed := []map[string]any{
		{"resourceType": "Organization", "id": "trust", "name": "Harbour Hospitals",
			"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RH8"}}},
		{"resourceType": "HealthcareService", "id": "hs-pas", "name": "Cardiology", "providedBy": ref("Organization/trust")},
		{"resourceType": "Schedule", "id": "sched-pas", "actor": []any{ref("HealthcareService/hs-pas")}},
		{"resourceType": "Patient", "id": "pat-1", "birthDate": "1980-05-17", "name": []any{map[string]any{"family": "Jones"}},
			"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}}},
	}
	const slots = 6
	for i := range slots {
		s := first.Add(time.Duration(i) * 15 * time.Minute)
		seed = append(seed, map[string]any{"resourceType": "Slot", "id": fmt.Sprintf("slot-%d", i), "status": "free",
			"schedule": ref("Schedule/sched-pas"), "start": s.Format(time.RFC3339), "end": s.Add(15 * time.Minute).Format(time.RFC3339)})
	}
	for _, r := range seed {
		if st, out := call(t, "PUT", fmt.Sprintf("%s/%s/%s", base, r["resourceType"], r["id"]), r); st >= 300 {
			t.Fatalf("seeding %s/%s: %d %s", r["resourceType"], r["id"], st, out)
		}
	}
	// Bookings, and cancellations of every other one, while the PAS is down.
	want := map[string][]string{} // appointment → its events, in order
	for i := range slots {
		st, out := call(t, "POST", base+"/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
			"slot": []any{ref(fmt.Sprintf("Slot/slot-%d", i))}, "participant": []any{map[string]any{"actor": ref("Patient/pat-1"), "status": "accepted"}}})
		if st != 201 {
			t.Fatalf("booking slot-%d with the PAS down: %d %s", i, st, out)
		}
		var a map[string]any
		json.Unmarshal(out, &a)
		id := a["id"].(string)
		want[id] = []string{"S12"}
		if i%2 == 1 {
			a["status"], a["cancelationReason"] = "cancelled", map[string]any{"text": "patient asked"}
			delete(a, "meta")
			if st, out := call(t, "PUT", base+"/Appointment/"+id, a); st != 200 {
				t.Fatalf("cancelling %s: %d %s", id, st, out)
			}
			want[id] = append(want[id], "S15")
		}
	}
	p.signal(t, syscall.SIGKILL)
	if code := p.wait(t, 10*time.Second); code != -1 {
		t.Fatalf("signpost exited with %d after SIGKILL, want to be killed", code)
	}
	queued := queuedControlIDs(t, data, "pas-rh8")
	if len(queued) != 9 {
		t.Fatalf("%d messages queued before the kill, want 9", len(queued))
	}

	pas := startFakePAS(t, pasAddr)
	p = startSignpost(t, bin, data, "--open", "--adapters", cfg)
	got := pas.waitApplied(t, len(queued))
	byAppt := map[string][]string{}
	var ids []string
	for _, m := range got {
		_, ev := m.Type()
		byAppt[m.Get("SCH-1.1")] = append(byAppt[m.Get("SCH-1.1")], ev)
		ids = append(ids, m.ControlID())
	}
	if fmt.Sprint(byAppt) != fmt.Sprint(want) {
		t.Errorf("the PAS applied, per appointment, %v; want %v", byAppt, want)
	}
	slices.Sort(ids)
	slices.Sort(queued)
	if !slices.Equal(ids, queued) {
		t.Errorf("control ids applied %q; queued before the kill %q", ids, queued)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("signpost exited with %d after SIGTERM, want 0", code)
	}
}

// call makes a JSON request and returns the status and body.
func call(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// queuedControlIDs reads from the data file, while the server is down,
// the control ids of destination's messages in the outbox.
func queuedControlIDs(t *testing.T, data, destination string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT control_id FROM outbox WHERE destination = ?", destination)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fakePAS is an MLLP peer in the test process that acknowledges every
// message with AA and applies each control id once.
type fakePAS struct {
	mu      sync.Mutex
	applied []*hl7v2.Message
	seen    map[string]bool
}

func startFakePAS(t *testing.T, addr string) *fakePAS {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePAS{seen: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	srv := &mllp.Server{AllowAnyPeer: true, Handler: func(_ context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
		msg, err := hl7v2.Parse(raw)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		if !f.seen[msg.ControlID()] {
			f.seen[msg.ControlID()] = true
			f.applied = append(f.applied, msg)
		}
		f.mu.Unlock()
		ack, err := hl7v2.BuildAck(msg, hl7v2.Ack{Outcome: hl7v2.OutcomeAccept})
		if err != nil {
			return nil, err
		}
		return ack.Encode(), nil
	}}
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// waitApplied waits up to 45 s for n messages applied: a message in
// flight at the kill is sent again once its claim's lease (dial and ACK
// timeouts and a margin, 11 s here) has ended.
func (f *fakePAS) waitApplied(t *testing.T, n int) []*hl7v2.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	err := waitFor(ctx, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.applied) >= n })
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		t.Fatalf("the PAS applied %d messages, want %d", len(f.applied), n)
	}
	return slices.Clone(f.applied)
}
