package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// IssuerVerifier verifies the tokens of one issuer (*Verifier, *UBRNIssuer).
type IssuerVerifier interface {
	// Issuer is the exact iss value of the issuer's tokens.
	Issuer() string
	// Verify checks a raw token; failures are *fhir.Error of kind
	// fhir.Unauthorized.
	Verify(ctx context.Context, raw string) (*Principal, error)
}

// Verifiers verifies the tokens of several issuers, e.g. the external issuer
// professionals sign in with and Signpost's own UBRNIssuer. Each token goes
// to the one verifier of the issuer its iss claim names, read before any
// verification only to choose; that verifier then checks everything again
// (iss included) against its own keys and rules. A token is never tried
// against another issuer's keys, so one issuer's key cannot stand in for
// another's, and the narrow rules of one (UBRNIssuer.Verify) cannot be
// escaped by naming another. It is safe for concurrent use.
type Verifiers struct {
	byIssuer map[string]IssuerVerifier
}

// NewVerifiers returns a Verifiers over vs, which must name distinct,
// non-empty issuers.
func NewVerifiers(vs ...IssuerVerifier) (*Verifiers, error) {
	if len(vs) == 0 {
		return nil, errors.New("auth: verifiers: none given")
	}
	m := &Verifiers{byIssuer: map[string]IssuerVerifier{}}
	for _, v := range vs {
		iss := v.Issuer()
		if iss == "" {
			return nil, errors.New("auth: verifiers: a verifier has no issuer")
		}
		if _, dup := m.byIssuer[iss]; dup {
			return nil, fmt.Errorf("auth: verifiers: issuer %s given twice", iss)
		}
		m.byIssuer[iss] = v
	}
	return m, nil
}

// Verify checks raw with the verifier of the issuer its iss names. A token
// that names no trusted issuer, or none at all, is refused without any key
// being tried.
func (m *Verifiers) Verify(ctx context.Context, raw string) (*Principal, error) {
	if raw == "" {
		return nil, unauthorized(DetailTokenMissing, "login", "no access token: send Authorization: Bearer <token>", nil)
	}
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return nil, err
	}
	v, ok := m.byIssuer[iss]
	if !ok {
		return nil, unauthorized(DetailTokenInvalid, "security",
			fmt.Sprintf("access token issuer %q is not trusted by this server", iss), nil)
	}
	return v.Verify(ctx, raw)
}

// unverifiedIssuer reads a JWT's iss claim without verifying anything.
func unverifiedIssuer(raw string) (string, error) {
	bad := func(msg string) error { return unauthorized(DetailTokenInvalid, "security", msg, nil) }
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", bad("access token is not a signed JWT (want three dot-separated parts)")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", bad("access token payload is not base64url-encoded JSON")
	}
	var claims struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		return "", bad("access token payload is not base64url-encoded JSON")
	}
	iss, ok := claims.Iss.(string)
	if !ok || iss == "" {
		return "", bad("access token has no issuer (iss)")
	}
	return iss, nil
}
