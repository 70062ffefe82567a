package adapters_test

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/adaptertest"
)

// kindSettings is a kind's settings struct, for DecodeSettings.
type kindSettings struct {
	Endpoint string `json:"endpoint" validate:"required"`
	Retries  int    `json:"retries" validate:"min=0,max=5"`
}

// TestDecodeSettings: an instance's settings are read strictly and
// validated, every error starting "settings: " and naming the field.
func TestDecodeSettings(t *testing.T) {
	for _, tt := range []struct {
		name, raw string
		want      kindSettings
		err       []string // what the error says; none: no error
	}{
		{"valid", `{"endpoint":"https://gp.example","retries":2}`, kindSettings{Endpoint: "https://gp.example", Retries: 2}, nil},
		{"none is {}", ``, kindSettings{}, []string{"settings: ", "endpoint"}},
		{"unknown field", `{"endpoint":"x","retry":1}`, kindSettings{}, []string{"settings: ", "retry"}},
		{"invalid value", `{"endpoint":"x","retries":9}`, kindSettings{}, []string{"settings: ", "retries"}},
		{"not JSON or YAML", `{`, kindSettings{}, []string{"settings: "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got kindSettings
			err := adapters.DecodeSettings(json.RawMessage(tt.raw), &got)
			if len(tt.err) == 0 {
				if err != nil || got != tt.want {
					t.Errorf("DecodeSettings = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeSettings = %+v, no error; want one saying %q", got, tt.err)
			}
			if !strings.HasPrefix(err.Error(), tt.err[0]) {
				t.Errorf("error %q does not start %q", err, tt.err[0])
			}
			for _, w := range tt.err[1:] {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestTLSConfig: the certificate presented and the CA trusted come from
// the files named; a missing or unreadable file is an error.
func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := adaptertest.SelfSignedFiles(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name          string
		cert, key, ca string
		certs         int
		roots         bool
		err           string
	}{
		{"nothing: the system's roots", "", "", "", 0, false, ""},
		{"a client certificate", cert, key, "", 1, false, ""},
		{"a CA", "", "", cert, 0, true, ""},
		{"both", cert, key, cert, 1, true, ""},
		{"a missing key", cert, filepath.Join(dir, "none.pem"), "", 0, false, "none.pem"},
		{"a CA file without a certificate", "", "", notPEM, 0, false, "holds no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := adapters.TLSConfig(tt.cert, tt.key, tt.ca)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("TLSConfig error = %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MinVersion != tls.VersionTLS12 || len(c.Certificates) != tt.certs || (c.RootCAs != nil) != tt.roots || c.ClientCAs != nil {
				t.Errorf("TLSConfig = min %x, %d certificates, roots %v, client CAs %v", c.MinVersion, len(c.Certificates), c.RootCAs != nil, c.ClientCAs != nil)
			}
		})
	}
}
