package mllp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/adaptertest"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
)

// peerDir holds the npm MLLP peer (simple-hl7) and its driver script.
var peerDir = filepath.Join("..", "..", "test", "mllp-peer")

// peerSamples are the messages exchanged with the peer, from the codec's
// testdata, with \r between segments as on the wire.
var peerSamples = []string{"siu_s12.hl7", "siu_s15.hl7", "adt_a04.hl7", "adt_a08.hl7", "adt_a40.hl7"}

// wire reads a sample with \r segment endings.
func wire(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "hl7v2", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r"))
}

// TestPeerSendsToServer: simple-hl7's client sends the PAS samples to
// mllp.Server, whose handler parses each with hl7v2 and answers with
// hl7v2.BuildAck; simple-hl7 must read AA and the message's control id in
// each acknowledgement.
func TestPeerSendsToServer(t *testing.T) {
	node := adaptertest.Node(t, peerDir, "simple-hl7")
	var mu sync.Mutex
	var got [][]byte
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mllp.Server{
		AllowedPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Logger:       slog.New(slog.DiscardHandler),
		Handler: func(_ context.Context, _ netip.Addr, msg []byte) ([]byte, error) {
			mu.Lock()
			got = append(got, msg)
			mu.Unlock()
			m, err := hl7v2.Parse(msg)
			if err != nil {
				return nil, err
			}
			ack, err := hl7v2.BuildAck(m, hl7v2.Ack{Outcome: hl7v2.OutcomeAccept})
			if err != nil {
				return nil, err
			}
			return ack.Encode(), nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	dir := t.TempDir()
	args := []string{filepath.Join(peerDir, "peer.mjs"), "send", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)}
	var want [][]byte
	for _, name := range peerSamples {
		b := wire(t, name)
		want = append(want, b)
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	runCtx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(runCtx, node, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node peer.mjs send: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("the peer printed %d acknowledgements for %d messages:\n%s", len(lines), len(want), out)
	}
	for i, line := range lines {
		var ack struct{ MSA1, MSA2, Raw string }
		if err := json.Unmarshal([]byte(line), &ack); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		m, _ := hl7v2.Parse(want[i])
		if ack.MSA1 != "AA" || ack.MSA2 != m.ControlID() {
			t.Errorf("%s: simple-hl7 read MSA %q|%q, want AA|%q (ack %q)", peerSamples[i], ack.MSA1, ack.MSA2, m.ControlID(), ack.Raw)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if i >= len(got) || !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d reached the handler changed or not at all", i)
		}
	}
}

// TestClientSendsToPeer: mllp.Client sends the samples to simple-hl7's
// server, which reports what it read; its acknowledgements must parse with
// hl7v2 and carry AA and each message's control id.
func TestClientSendsToPeer(t *testing.T) {
	node := adaptertest.Node(t, peerDir, "simple-hl7")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	peer := adaptertest.StartPeer(t, ctx, node, filepath.Join(peerDir, "peer.mjs"), "serve")
	next := func() map[string]any {
		t.Helper()
		var v map[string]any
		peer.Next(&v)
		return v
	}
	port, ok := next()["port"].(float64)
	if !ok {
		t.Fatal("the peer did not say its port")
	}
	c := &mllp.Client{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))), AckTimeout: 5 * time.Second}
	defer c.Close()
	for _, name := range peerSamples {
		msg := wire(t, name)
		m, err := hl7v2.Parse(msg)
		if err != nil {
			t.Fatal(err)
		}
		ackBytes, err := c.Send(ctx, msg)
		if err != nil {
			t.Fatalf("%s: Send: %v\n%s", name, err, peer.Stderr())
		}
		ack, err := hl7v2.Parse(ackBytes)
		if err != nil {
			t.Fatalf("%s: the peer's ACK does not parse: %v: %q", name, err, ackBytes)
		}
		if ack.Get("MSA-1") != "AA" || ack.Get("MSA-2") != m.ControlID() || ack.Get("MSH-9") != "ACK" {
			t.Errorf("%s: ACK %q, want ACK with MSA AA|%s", name, ackBytes, m.ControlID())
		}
		seen := next()
		code, event := m.Type()
		if seen["type"] != code || seen["event"] != event {
			t.Errorf("%s: the peer read type %v^%v, want %s^%s", name, seen["type"], seen["event"], code, event)
		}
		if raw, _ := seen["raw"].(string); !strings.Contains(raw, string(msg)) {
			t.Errorf("%s: the peer received %q", name, raw)
		}
	}
}
