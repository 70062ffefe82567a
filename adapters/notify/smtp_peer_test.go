package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/adaptertest"
	"github.com/signpost-fhir/signpost/adapters/notify"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// peerDir holds the npm SMTP peer (smtp-server, mailparser) and its
// script.
var peerDir = filepath.Join("..", "..", "test", "smtp-peer")

// peerMail is what the peer reports of a message it received.
type peerMail struct {
	EnvelopeFrom  string   `json:"envelopeFrom"`
	EnvelopeTo    []string `json:"envelopeTo"`
	Secure        bool     `json:"secure"`
	User          string   `json:"user"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	Subject       string   `json:"subject"`
	Text          string   `json:"text"`
	MessageID     string   `json:"messageId"`
	ContentType   string   `json:"contentType"`
	AutoSubmitted string   `json:"autoSubmitted"`
}

// smtpPeer is the running peer: its port, the CA its certificate chains
// to, and the messages it received.
type smtpPeer struct {
	port  int
	roots *x509.CertPool
	mu    sync.Mutex
	mails []peerMail
}

func (p *smtpPeer) received() []peerMail {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]peerMail(nil), p.mails...)
}

// startPeer starts the SMTP peer with a fresh certificate for 127.0.0.1
// and the credentials signpost / s3cret.
func startPeer(t *testing.T) *smtpPeer {
	node := adaptertest.Node(t, peerDir, "smtp-server")
	dir := t.TempDir()
	certPEM, keyPEM := adaptertest.SelfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, filepath.Join(peerDir, "peer.mjs"))
	cmd.Env = append(os.Environ(), "SMTP_PEER_CERT="+certFile, "SMTP_PEER_KEY="+keyFile,
		"SMTP_PEER_USER=signpost", "SMTP_PEER_PASS=s3cret")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("peer stderr:\n%s", stderr.String())
		}
	})
	p := &smtpPeer{roots: roots}
	listening := make(chan int, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Listening int `json:"listening"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Listening > 0 {
				listening <- line.Listening
				continue
			}
			var m peerMail
			if err := json.Unmarshal(sc.Bytes(), &m); err == nil {
				p.mu.Lock()
				p.mails = append(p.mails, m)
				p.mu.Unlock()
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case p.port = <-listening:
	case <-time.After(20 * time.Second):
		t.Fatalf("the SMTP peer did not start: %s", stderr.String())
	}
	return p
}

// TestSMTPPeer: a reminder e-mailed through the real server's background
// sweep and dispatcher reaches an SMTP server nobody on Signpost wrote,
// over STARTTLS with AUTH, as a MIME plain-text message with To, Subject
// and the reminder's text; a recipient the server refuses (550) makes a
// dead letter and a not-done Communication.
func TestSMTPPeer(t *testing.T) {
	peer := startPeer(t)
	now := time.Now().UTC().Truncate(time.Minute)
	f := &notify.File{
		Leads:       []notify.Lead{notify.Lead(7 * 24 * time.Hour), notify.Lead(24 * time.Hour)},
		HowToChange: "call 0300 123 4567",
		Channels: []notify.ChannelConfig{{Kind: "email", SMTP: &notify.SMTPConfig{Host: "127.0.0.1", Port: peer.port,
			From: "Trust reminders <reminders@trust.example>", TLS: "require-starttls", Username: "signpost", PasswordEnv: "SMTP_PASSWORD"}}},
		SweepEvery: notify.Duration(time.Hour),
		Delivery:   notify.Delivery{PollInterval: notify.Duration(200 * time.Millisecond)},
		Hooks: notify.Hooks{Now: func() time.Time { return now }, SMTPTLS: &tls.Config{RootCAs: peer.roots},
			Getenv: func(k string) string { return map[string]string{"SMTP_PASSWORD": "s3cret"}[k] }},
	}
	a, srv := apptest.New(t, app.Config{Reminders: f})
	apptest.Seed(t, a,
		map[string]any{"resourceType": "HealthcareService", "id": "hs", "name": "Dermatology Clinic"},
		map[string]any{"resourceType": "Schedule", "id": "sc", "active": true, "actor": []any{map[string]any{"reference": "HealthcareService/hs"}}},
		map[string]any{"resourceType": "Patient", "id": "p1", "name": []any{map[string]any{"family": "Jones"}},
			"telecom": []any{map[string]any{"system": "email", "value": "ann.jones@example.org"}}},
		map[string]any{"resourceType": "Patient", "id": "p2", "name": []any{map[string]any{"family": "Smith"}},
			"telecom": []any{map[string]any{"system": "email", "value": "nobody@refused.example"}}},
	)
	start := now.Add(5 * time.Hour)
	book := func(patient, slot string) string {
		apptest.Seed(t, a, map[string]any{"resourceType": "Slot", "id": slot, "schedule": map[string]any{"reference": "Schedule/sc"},
			"status": "free", "start": start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)})
		body, _ := json.Marshal(map[string]any{"resourceType": "Appointment", "status": "booked",
			"slot":        []any{map[string]any{"reference": "Slot/" + slot}},
			"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patient}, "status": "accepted"}}})
		resp, err := http.Post(srv.URL+"/fhir/Appointment", "application/fhir+json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 201 {
			t.Fatalf("booking: %d", resp.StatusCode)
		}
		return out.ID
	}
	id1, id2 := book("p1", "s1"), book("p2", "s2")
	if _, err := a.Reminders.Sweep(t.Context()); err != nil { // wakes the running dispatcher
		t.Fatal(err)
	}
	statusOf := func(id string) string {
		q, _ := a.Search.Parse("Communication", url.Values{"about": {"Appointment/" + id}}, search.ParseOptions{})
		page, err := a.Store.Search(context.Background(), q)
		if err != nil || len(page.Resources) != 1 {
			return ""
		}
		var c struct{ Status string }
		_ = json.Unmarshal(page.Resources[0].JSON, &c)
		return c.Status
	}
	deadline := time.Now().Add(15 * time.Second)
	// The dispatcher counts a dead letter after the reminder says
	// not-done: wait for the count too.
	for statusOf(id1) != "completed" || statusOf(id2) != "not-done" || a.Reminders.Status()["email"].DeadLettered != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("reminders are %q and %q; want completed and not-done (peer got %+v)", statusOf(id1), statusOf(id2), peer.received())
		}
		time.Sleep(20 * time.Millisecond)
	}
	mails := peer.received()
	if len(mails) != 1 {
		t.Fatalf("peer received %d messages, want 1: %+v", len(mails), mails)
	}
	m := mails[0]
	local := start.In(a.Location)
	if m.To != "ann.jones@example.org" || len(m.EnvelopeTo) != 1 || m.EnvelopeTo[0] != "ann.jones@example.org" ||
		m.EnvelopeFrom != "reminders@trust.example" || !strings.Contains(m.From, "Trust reminders") ||
		m.Subject != "Appointment reminder" || !m.Secure || m.User != "signpost" ||
		m.ContentType != "text/plain" || m.AutoSubmitted != "auto-generated" || !strings.HasPrefix(m.MessageID, "<reminder-") {
		t.Errorf("received %+v", m)
	}
	for _, want := range []string{local.Format("Monday 2 January 2006"), local.Format("15:04"), "Dermatology Clinic", "call 0300 123 4567"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("body %q does not say %q", m.Text, want)
		}
	}
	if st := a.Reminders.Status(); st["email"].DeadLettered != 1 || st["email"].Delivered != 1 {
		t.Errorf("email dispatcher %+v", st["email"])
	}
}
