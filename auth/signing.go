package auth

// Signing access tokens, for Signpost's own issuers: the development
// authorisation server (auth/devserver) and the UBRN issuer. Both sign with
// an RSA key kept in DevDir, and both build the claims of a token from a
// TokenGrant, so that every token Signpost signs reads the same.

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	zcrypto "github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// devDirName is the directory, inside a data directory, of Signpost's own
// issuers' keys and records.
const devDirName = "auth"

// DevDir returns the directory, inside a Signpost data directory, where
// Signpost's own issuers keep their keys: the development server (with its
// issuer record and demo clients) and the UBRN issuer.
func DevDir(dataDir string) string { return filepath.Join(dataDir, devDirName) }

// SigningKey is an RSA key one of Signpost's own issuers signs with (RS256).
// It implements zitadel's op.SigningKey and op.Key.
type SigningKey struct {
	id  string
	key *rsa.PrivateKey
}

// SignatureAlgorithm is RS256 (op.SigningKey).
func (k *SigningKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }

// Algorithm is RS256 (op.Key).
func (k *SigningKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }

// Key returns the private key.
func (k *SigningKey) Key() any { return k.key }

// ID returns the key id: the RFC 7638 thumbprint of the public key.
func (k *SigningKey) ID() string { return k.id }

// Use is "sig".
func (k *SigningKey) Use() string { return "sig" }

// PublicKey returns the public half of the key.
func (k *SigningKey) PublicKey() *rsa.PublicKey { return &k.key.PublicKey }

// JWK returns the public JWK of the key.
func (k *SigningKey) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.id, Algorithm: string(jose.RS256), Use: "sig"}
}

// LoadOrCreateSigningKey reads a PEM PKCS#8 RSA private key from path,
// creating one (2048 bits, mode 0600) if the file does not exist. Its key
// id is the RFC 7638 thumbprint of the public key, so it is stable across
// restarts.
func LoadOrCreateSigningKey(path string) (*SigningKey, error) {
	b, err := LoadOrCreateSigningKeyPEM(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateSigningKeyPEM returns the PEM of the key
// LoadOrCreateSigningKey loads, creating the file as it does.
func LoadOrCreateSigningKeyPEM(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	b = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := WriteFileAtomic(path, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// ParseSigningKey parses a PEM PKCS#8 RSA private key.
func ParseSigningKey(b []byte) (*SigningKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`not a PEM "PRIVATE KEY"`)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return newSigningKey(key)
}

func newSigningKey(key *rsa.PrivateKey) (*SigningKey, error) {
	tp, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &SigningKey{id: base64.RawURLEncoding.EncodeToString(tp), key: key}, nil
}

// WriteFileAtomic writes one file of an authorisation data directory
// (signing keys, the development server's clients and grants) through a
// temporary file in the same directory, so readers never see a partial
// file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// TokenGrant is what an access token Signpost signs says about its holder.
// The development server's token endpoint, its MintToken and the UBRN
// issuer all turn a grant into the same claims.
type TokenGrant struct {
	Subject  string
	ClientID string
	Audience []string
	Scopes   []string
	Patient  string
	FHIRUser string
	Org      string
	Role     Role
}

// PrivateClaims are the claims Signpost adds to the registered ones (iss,
// sub, aud, exp, iat, nbf, jti, client_id); their names are those of
// DefaultClaimNames.
func (g TokenGrant) PrivateClaims() map[string]any {
	m := map[string]any{"scope": strings.Join(g.Scopes, " ")}
	for k, v := range map[string]string{"patient": g.Patient, "fhirUser": g.FHIRUser, "org": g.Org, "role": string(g.Role)} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// PatientGrant is the grant of a token client obtains for a user in
// patientID's context. Its audience names the client too, as an ID token
// issued alongside must.
func PatientGrant(audience, clientID, patientID string, scopes []string) TokenGrant {
	return TokenGrant{
		Subject:  "Patient/" + patientID,
		ClientID: clientID,
		Audience: []string{audience, clientID},
		Scopes:   scopes,
		Patient:  patientID,
		FHIRUser: strings.TrimSuffix(audience, "/") + "/Patient/" + patientID,
	}
}

// SignAccessToken builds and signs an access token for g, living until
// exp, with a fresh jti, the way zitadel's op.CreateJWT does for a token
// endpoint.
func SignAccessToken(issuer string, key op.SigningKey, g TokenGrant, exp time.Time) (string, error) {
	claims := oidc.NewAccessTokenClaims(issuer, g.Subject, g.Audience, exp, tokenID(), g.ClientID, 0)
	claims.Claims = g.PrivateClaims()
	signer, err := op.SignerFromKey(key)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	tok, err := zcrypto.Sign(claims, signer)
	if err != nil {
		return "", fmt.Errorf("auth: signing token: %w", err)
	}
	return tok, nil
}

// tokenID returns a fresh jti: 16 random bytes, hex-encoded.
func tokenID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
