package resthook

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/signpost-fhir/signpost/auth"
)

// Signer signs notification bodies with Signpost's notification key: a
// detached JWS (RFC 7515 appendix F), the compact serialisation with an
// empty payload part, "header..signature", whose payload is the body as
// sent. ES256 (ECDSA P-256); the key id (kid), the RFC 7638 thumbprint of
// the public key, names the key in the JWKS.
type Signer struct {
	jwk    jose.JSONWebKey // public
	signer jose.Signer
}

// NewSigner returns a Signer with the key in path (PEM PKCS#8 EC P-256),
// creating it (mode 0600, its directory 0700) when the file does not
// exist: the key stays the same across restarts.
func NewSigner(path string) (*Signer, error) {
	key, err := loadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("resthook: notification signing key: %w", err)
	}
	tp, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256,
		Key: jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(jose.ES256)}},
		(&jose.SignerOptions{}).WithType("JOSE"))
	if err != nil {
		return nil, err
	}
	return &Signer{jwk: jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}, signer: sg}, nil
}

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := auth.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\"", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an EC P-256 key", path)
	}
	return key, nil
}

// Sign returns the detached JWS of body.
func (s *Signer) Sign(body []byte) (string, error) {
	obj, err := s.signer.Sign(body)
	if err != nil {
		return "", err
	}
	return obj.DetachedCompactSerialize()
}

// JWKS returns the public key set receivers verify signatures with.
func (s *Signer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{s.jwk}}
}

// JWKSHandler serves the JWKS (application/jwk-set+json).
func (s *Signer) JWKSHandler() http.Handler {
	b, _ := json.Marshal(s.JWKS())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(b)
	})
}

// Verify checks a detached JWS against body with the keys of set; it is
// what a receiver does (see docs/subscriptions.md).
func Verify(set jose.JSONWebKeySet, sig string, body []byte) error {
	obj, err := jose.ParseDetached(sig, body, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256})
	if err != nil {
		return err
	}
	if len(obj.Signatures) != 1 {
		return fmt.Errorf("resthook: %d signatures", len(obj.Signatures))
	}
	keys := set.Key(obj.Signatures[0].Header.KeyID)
	if len(keys) == 0 {
		return fmt.Errorf("resthook: no key %q in the key set", obj.Signatures[0].Header.KeyID)
	}
	_, err = obj.Verify(keys[0])
	return err
}
