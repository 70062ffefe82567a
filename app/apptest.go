package app

import (
	"net/http/httptest"
	"testing"
)

// NewTest starts the real server over a temporary data directory on a
// 127.0.0.1 port, for tests in any package. It is closed when t ends.
func NewTest(t testing.TB, cfg Config) (*App, *httptest.Server) {
	t.Helper()
	if cfg.Data == "" {
		cfg.Data = t.TempDir()
	}
	cfg.Open = cfg.Open || !cfg.Auth
	ts := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + ts.Listener.Addr().String() + "/fhir"
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ts.Config.Handler = a.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		a.Close()
	})
	return a, ts
}
