package devserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/signpost-fhir/signpost/auth"
)

// The development server keeps its state in auth.DevDir(DataDir), beside
// the UBRN issuer's key:
const (
	signingKeyFile = "signing-key.pem" // the server's RSA signing key (PKCS#8, 0600)
	issuerFile     = "issuer.json"     // issuer, audience and key id the running server uses
	clientsFile    = "clients.json"    // demo clients with their credentials (0600)
)

// issuerRecord is what the server records for MintToken.
type issuerRecord struct {
	Issuer   string        `json:"issuer"`
	Audience string        `json:"audience"`
	KeyID    string        `json:"kid"`
	TokenTTL time.Duration `json:"token_ttl"`
}

// publicKey is the op.Key the JWKS endpoint publishes for a signing key.
type publicKey struct{ *auth.SigningKey }

// Key returns the public key.
func (k publicKey) Key() any { return k.PublicKey() }

func writeJSON(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return auth.WriteFileAtomic(path, append(b, '\n'), perm)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// randomString returns n random bytes, hex-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// tokenID returns a fresh jti.
func tokenID() string { return randomString(16) }

// sha256Sum hashes a secret so secrets of any length compare in constant time.
func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }
