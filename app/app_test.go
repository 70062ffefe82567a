package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     app.Config
		wantErr string
	}{
		{"unknown timezone", app.Config{Timezone: "Mars/Olympus_Mons"}, "timezone"},
		{"unknown store", app.Config{Store: "oracle"}, "oracle"},
		{"store not built in", app.Config{Store: "postgres://alice:s3cret@db.example/signpost"}, "built in: lungo, mongodb, mongodb+srv, sqlite"},
		{"mongodb unreachable", app.Config{Store: "mongodb://alice:s3cret@127.0.0.1:1/signpost?serverSelectionTimeoutMS=200"}, "cannot be reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Data = t.TempDir()
			a, err := app.New(tt.cfg)
			if err == nil {
				a.Close()
				t.Fatalf("app.New(%+v) succeeded, want an error mentioning %q", tt.cfg, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "alice") {
				t.Errorf("error %q shows the store's credentials", err)
			}
		})
	}
}

func send(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDataSurvivesRestart writes through one server and reads through a new
// one over the same data directory.
func TestDataSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	t.Run("write", func(t *testing.T) {
		_, ts := apptest.New(t, app.Config{Data: data})
		for _, body := range []string{`{"resourceType":"Patient","id":"kept","gender":"male"}`, `{"resourceType":"Patient","id":"kept","gender":"female"}`} {
			if code, b := send(t, "PUT", ts.URL+"/fhir/Patient/kept", body); code >= 300 {
				t.Fatalf("PUT: %d %s", code, b)
			}
		}
	})
	t.Run("read after restart", func(t *testing.T) {
		_, ts := apptest.New(t, app.Config{Data: data})
		tests := []struct {
			path, want string
		}{
			{"/fhir/Patient/kept", `"gender":"female"`},
			{"/fhir/Patient/kept/_history/1", `"gender":"male"`},
			{"/readyz", "ready"},
		}
		for _, tt := range tests {
			code, b := send(t, "GET", ts.URL+tt.path, "")
			if code != http.StatusOK || !strings.Contains(b, tt.want) {
				t.Errorf("GET %s: %d %s, want 200 with %s", tt.path, code, b, tt.want)
			}
		}
	})
}
