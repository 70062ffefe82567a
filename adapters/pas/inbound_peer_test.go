package pas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/adaptertest"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// peerDir holds the npm MLLP peer (simple-hl7) and its driver scripts.
var peerDir = filepath.Join("..", "..", "test", "mllp-peer")

// TestInboundFromNpmPeer: a PAS nobody on Signpost wrote (simple-hl7's
// message builder and TCP client, test/mllp-peer/inbound.mjs) registers a
// patient (ADT^A04) and books them (SIU^S12) over MLLP; both are
// acknowledged AA as simple-hl7 reads the acknowledgements, and the
// patient and the booking are in Signpost.
func TestInboundFromNpmPeer(t *testing.T) {
	node := adaptertest.Node(t, peerDir, "simple-hl7")
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	nhs, pasNo := nhsNo(1212), "RH8P1212"
	port := strconv.Itoa(f.PAS.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, node, filepath.Join(peerDir, "inbound.mjs"), port, nhs, pasNo, clinic, ts(f.SlotStart(0)))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node inbound.mjs: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	wantIDs := []string{"NPM-A04-" + nhs, "NPM-S12-" + nhs}
	if len(lines) != len(wantIDs) {
		t.Fatalf("the peer printed %d acknowledgements, want %d:\n%s", len(lines), len(wantIDs), out)
	}
	for i, line := range lines {
		var ack struct{ MSA1, MSA2, MSA3, Raw string }
		if err := json.Unmarshal([]byte(line), &ack); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		if ack.MSA1 != "AA" || ack.MSA2 != wantIDs[i] {
			t.Errorf("simple-hl7 read MSA %q|%q (%s), want AA|%s; acknowledgement %q", ack.MSA1, ack.MSA2, ack.MSA3, wantIDs[i], ack.Raw)
		}
	}
	p := one(t, "the npm PAS's patient", f.storeSearch("Patient", "identifier", referral.NHSNumberSystem+"|"+nhs))
	if !strings.Contains(str(p["name"].([]any)[0].(map[string]any)["family"]), "PARKER") || !strings.Contains(jsonOf(p["identifier"]), pasNo) {
		t.Errorf("patient %v", p)
	}
	a := one(t, "the npm PAS's booking", f.byFiller("NPM-"+nhs))
	if a["status"] != "booked" || !strings.Contains(jsonOf(a["slot"]), "Slot/slot-0") || !strings.Contains(jsonOf(a["participant"]), "Patient/"+str(p["id"])) {
		t.Errorf("appointment %v", a)
	}
	if s := f.slotStatus("slot-0"); s != "busy" {
		t.Errorf("slot-0 is %s", s)
	}
}

// jsonOf encodes v, for matching in failures.
func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }
