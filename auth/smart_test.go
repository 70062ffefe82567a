package auth

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestSmartConfiguration(t *testing.T) {
	got := SmartConfiguration(SmartEndpoints{
		Issuer:                "http://127.0.0.1:8080/auth",
		JWKSURI:               "http://127.0.0.1:8080/auth/keys",
		AuthorizationEndpoint: "http://127.0.0.1:8080/auth/authorize",
		TokenEndpoint:         "http://127.0.0.1:8080/auth/oauth/token",
	})
	if !json.Valid(got) {
		t.Fatalf("not JSON: %s", got)
	}
	golden := filepath.Join("testdata", "smart-configuration.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("SmartConfiguration =\n%s\nwant (%s)\n%s", got, golden, want)
	}
}
