// Package apptest starts the real Signpost server for tests in any
// package: the assembled app over a temporary data directory, on a
// 127.0.0.1 port. It is test support, kept out of the signpost binary
// (app/layers_test.go checks that the binary links no testing code).
package apptest

import (
	"net/http/httptest"
	"testing"

	"github.com/signpost-fhir/signpost/app"
)

// New starts the real server with cfg over a temporary data directory
// (unless cfg.Data names one) on a 127.0.0.1 port. Authorisation is off
// unless cfg.Auth is set. The server is closed when t ends.
func New(t testing.TB, cfg app.Config) (*app.App, *httptest.Server) {
	t.Helper()
	if cfg.Data == "" {
		cfg.Data = t.TempDir()
	}
	cfg.Open = cfg.Open || !cfg.Auth
	ts := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + ts.Listener.Addr().String() + "/fhir"
	a, err := app.New(cfg)
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
