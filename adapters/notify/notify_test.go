package notify_test

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/notify"
	"github.com/signpost-fhir/signpost/domain/reminder"
)

// A configuration is read whole; each problem names its place.
func TestParse(t *testing.T) {
	good := `
leads: [7d, 24h]
howToChange: call 0300 123 4567
channels:
  - kind: sms
    sms: {url: "https://sms.trust.example/messages", tokenEnv: SMS_TOKEN}
  - kind: email
    smtp: {host: smtp.trust.example, from: "Reminders <reminders@trust.example>", username: signpost, passwordEnv: SMTP_PASSWORD}
  - kind: webhook
    webhook: {url: "https://hub.trust.example/reminders"}
sweepEvery: 30s
delivery: {maxAttempts: 5}
`
	f, err := notify.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	rc := f.ReminderConfig()
	if len(rc.Leads) != 2 || rc.Leads[0] != 7*24*time.Hour || rc.Leads[1] != 24*time.Hour ||
		strings.Join([]string{string(rc.Channels[0]), string(rc.Channels[1]), string(rc.Channels[2])}, ",") != "sms,email,webhook" {
		t.Errorf("reminder config %+v", rc)
	}
	if dc := f.DispatchConfig(reminder.SMS); dc.MaxAttempts != 5 || dc.Destination != "reminders-sms" {
		t.Errorf("dispatch config %+v", dc)
	}
	if time.Duration(f.SweepEvery) != 30*time.Second {
		t.Errorf("sweepEvery %v", f.SweepEvery)
	}

	tests := []struct {
		name, yaml string
		want       []string // each must appear in the error
	}{
		{"empty", ``, []string{"leads: is required", "howToChange: is required", "channels: is required"}},
		{"bad lead", "leads: [7x]\nhowToChange: x\nchannels: [{kind: webhook, webhook: {url: \"https://h.example\"}}]", []string{"leads[0]", "7x"}},
		{"repeated lead", "leads: [1d, 24h]\nhowToChange: x\nchannels: [{kind: webhook, webhook: {url: \"https://h.example\"}}]", []string{"leads[1]: 24h0m0s is listed twice"}},
		{"unknown kind", "leads: [1d]\nhowToChange: x\nchannels: [{kind: pigeon}]", []string{"channels[0].kind", "pigeon"}},
		{"settings missing", "leads: [1d]\nhowToChange: x\nchannels: [{kind: email}]", []string{"channels[0].smtp: is required for kind email"}},
		{"wrong settings", "leads: [1d]\nhowToChange: x\nchannels: [{kind: sms, sms: {url: \"https://s.example\"}, webhook: {url: \"https://h.example\"}}]",
			[]string{"channels[0].webhook: belongs to kind webhook, not sms"}},
		{"kind twice", "leads: [1d]\nhowToChange: x\nchannels: [{kind: webhook, webhook: {url: \"https://a.example\"}}, {kind: webhook, webhook: {url: \"https://b.example\"}}]",
			[]string{"channels[1].kind: \"webhook\" is configured twice"}},
		{"plain http webhook", "leads: [1d]\nhowToChange: x\nchannels: [{kind: webhook, webhook: {url: \"http://h.example\"}}]", []string{"channels[0].webhook.url"}},
		{"smtp host and tls", "leads: [1d]\nhowToChange: x\nchannels: [{kind: email, smtp: {from: a@b.example, tls: sometimes}}]",
			[]string{"channels[0].smtp.host: is required", "channels[0].smtp.tls"}},
		{"username without password", "leads: [1d]\nhowToChange: x\nchannels: [{kind: email, smtp: {host: h.example, from: a@b.example, username: u}}]",
			[]string{"channels[0].smtp.passwordEnv"}},
		{"unknown field", "leads: [1d]\nhowToChange: x\nchanels: []", []string{"chanels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notify.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// Load puts the file's name before every problem.
	path := filepath.Join(t.TempDir(), "reminders.yaml")
	if err := os.WriteFile(path, []byte("leads: [0d]\nhowToChange: x\nchannels: [{kind: email}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = notify.Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, path+": ") {
			t.Errorf("line %q does not start with the file", line)
		}
	}
}

// gatewayServer is an SMS gateway over TLS that speaks the contract and
// answers with code.
type gatewayServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	code int
	got  []gatewayRequest
}

type gatewayRequest struct {
	sms                      notify.SMS
	auth, idempotency, ctype string
}

func newGatewayServer(t *testing.T) *gatewayServer {
	g := &gatewayServer{code: 202}
	g.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m notify.SMS
		_ = json.Unmarshal(b, &m)
		g.mu.Lock()
		defer g.mu.Unlock()
		g.got = append(g.got, gatewayRequest{m, r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type")})
		w.WriteHeader(g.code)
		_, _ = w.Write([]byte(`{"id":"msg-1"}`))
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gatewayServer) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(g.srv.Certificate())
	return p
}

// HTTPGateway keeps the HTTP contract: the SMS as JSON, the bearer token
// and the idempotency key as headers; 2xx taken, 408/429/5xx retried,
// other statuses refused for good.
func TestHTTPGateway(t *testing.T) {
	g := newGatewayServer(t)
	gw, err := notify.NewHTTPGateway(notify.SMSConfig{URL: g.srv.URL + "/messages", AllowPrivate: true}, "tok", g.pool())
	if err != nil {
		t.Fatal(err)
	}
	m := notify.SMS{To: "07700 900123", Body: "Reminder", Reference: "Communication/c1", IdempotencyKey: "reminder-c1"}
	for _, tt := range []struct {
		code      int
		ok, perma bool
	}{{202, true, false}, {200, true, false}, {503, false, false}, {429, false, false}, {408, false, false}, {400, false, true}, {422, false, true}} {
		g.mu.Lock()
		g.code = tt.code
		g.mu.Unlock()
		err := gw.Send(t.Context(), m)
		if (err == nil) != tt.ok || notify.IsPermanent(err) != tt.perma {
			t.Errorf("HTTP %d: error %v (permanent %v)", tt.code, err, notify.IsPermanent(err))
		}
	}
	g.mu.Lock()
	first := g.got[0]
	g.mu.Unlock()
	if first.sms != m || first.auth != "Bearer tok" || first.idempotency != "reminder-c1" || first.ctype != "application/json" {
		t.Errorf("the gateway got %+v", first)
	}
}

// Without allowPrivate, a loopback endpoint is refused for good (the
// address is checked at each connection); with it, it is reached.
func TestWebhookAddresses(t *testing.T) {
	g := newGatewayServer(t)
	for _, allow := range []bool{false, true} {
		p, err := notify.NewPoster(notify.WebhookConfig{URL: g.srv.URL, AllowPrivate: allow}, "", g.pool())
		if err != nil {
			t.Fatal(err)
		}
		err = p.Post(t.Context(), "id-1", "application/fhir+json", []byte(`{}`))
		if allow && err != nil {
			t.Errorf("allowed: %v", err)
		}
		if !allow && (!notify.IsPermanent(err) || !strings.Contains(err.Error(), "127.0.0.1")) {
			t.Errorf("not allowed: %v (permanent %v)", err, notify.IsPermanent(err))
		}
	}
	if _, err := notify.NewPoster(notify.WebhookConfig{URL: "http://example.org/hook"}, "", nil); err == nil {
		t.Error("an http:// endpoint was accepted")
	}
	if !errors.Is(notify.Permanent(os.ErrClosed), os.ErrClosed) {
		t.Error("Permanent does not wrap")
	}
}
