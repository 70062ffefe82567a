package devserver

import (
	"encoding/json"
	"testing"

	"github.com/signpost-fhir/signpost/auth"
)

// Moved from package auth with the development server.

func TestDevServerSmartEndpoints(t *testing.T) {
	f := newDevFixture(t)
	var doc map[string]any
	if err := json.Unmarshal(auth.SmartConfiguration(f.dev.SmartEndpoints()), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["token_endpoint"] != f.dev.TokenEndpoint() || doc["authorization_endpoint"] != f.dev.AuthorizationEndpoint() {
		t.Errorf("endpoints = %v, %v", doc["token_endpoint"], doc["authorization_endpoint"])
	}
}

// TestUBRNIssuerKeyIsNotTheDevServers: the UBRN issuer's key is its own,
// not the development server's, though both live in auth.DevDir (the rest
// of auth.TestUBRNIssuerKeepsItsKey).
func TestUBRNIssuerKeyIsNotTheDevServers(t *testing.T) {
	f := newDevFixture(t)
	u, err := auth.NewUBRNIssuer(auth.UBRNIssuerConfig{Issuer: f.dev.Issuer() + "/ubrn", Audience: f.dev.cfg.Audience, DataDir: f.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if f.dev.PublicKeys()[0].KeyID == u.PublicKeys()[0].KeyID {
		t.Error("the UBRN issuer signs with the development server's key")
	}
}
