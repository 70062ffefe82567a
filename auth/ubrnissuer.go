package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ubrnKeyFile holds the UBRN issuer's RSA signing key (PKCS#8, 0600), in
// DevDir(DataDir) beside, and distinct from, the development server's.
const ubrnKeyFile = "ubrn-signing-key.pem"

// UBRNIssuerConfig configures a UBRNIssuer.
type UBRNIssuerConfig struct {
	// Issuer is the issuer's public URL, including the path it is mounted
	// under, e.g. "https://signpost.example.org/auth/ubrn". It must differ
	// from every other issuer the API trusts.
	Issuer string `validate:"required,http_url"`
	// Audience is the FHIR base URL tokens are for.
	Audience string `validate:"required,http_url"`
	// DataDir is Signpost's data directory; the signing key is kept in
	// DevDir(DataDir) unless Key is given.
	DataDir string `validate:"required"`
	// Key, when set, is the signing key (PEM PKCS#8 RSA) to use instead of
	// the data directory's: one kept where every process serving the same
	// store finds it (UBRNKeyPEM makes the first).
	Key []byte
	// TokenTTL is the longest lifetime of a token: MintReferralToken never
	// issues a longer one, and Verify refuses one that lives longer. Default
	// 15 minutes (the lifetime $ubrn-access asks for by default).
	TokenTTL time.Duration `validate:"gte=0,lte=1h"`
}

// UBRNIssuer is Signpost's own token issuer for ServiceRequest/$ubrn-access
// when professionals sign in through an external issuer (--issuer): the
// patient or call-centre agent who proves a UBRN, access code and birth
// date has no account at that issuer, so Signpost signs their short-lived
// token itself. It issues nothing else: no clients, no grants, no
// authorisation or token endpoint, none of the development server's
// conveniences. Its tokens are the development server's referral tokens
// (the same claims, RS256, a kid), under their own issuer URL and signing
// key, verifiable by standard means through the discovery document and
// JWKS that Handler serves.
//
// Its Verify accepts only tokens limited exactly as $ubrn-access limits
// them (one referral and its patient, short-lived), so that even its own
// key cannot be used to sign a broader token the API would honour.
type UBRNIssuer struct {
	cfg      UBRNIssuerConfig
	key      *SigningKey
	prefix   string // the issuer URL's path, stripped by Handler
	verifier *Verifier
	handler  http.Handler
	now      func() time.Time
}

// UBRNKeyPEM returns the PEM of the UBRN issuer's signing key kept in
// DevDir(dataDir), creating it the first time.
func UBRNKeyPEM(dataDir string) ([]byte, error) {
	if err := os.MkdirAll(DevDir(dataDir), 0o700); err != nil {
		return nil, err
	}
	return LoadOrCreateSigningKeyPEM(filepath.Join(DevDir(dataDir), ubrnKeyFile))
}

// NewUBRNIssuer loads the issuer's signing key from DevDir(DataDir),
// creating the directory (0700) and the key at first start.
func NewUBRNIssuer(cfg UBRNIssuerConfig) (*UBRNIssuer, error) {
	if err := validate.Struct(cfg); err != nil {
		return nil, fmt.Errorf("auth: UBRN issuer config: %w", err)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 15 * time.Minute
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	cfg.Audience = strings.TrimSuffix(cfg.Audience, "/")
	issuerURL, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("auth: UBRN issuer %q: %w", cfg.Issuer, err)
	}
	dir := DevDir(cfg.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: UBRN issuer: %w", err)
	}
	var key *SigningKey
	if cfg.Key != nil {
		key, err = ParseSigningKey(cfg.Key)
	} else {
		key, err = LoadOrCreateSigningKey(filepath.Join(dir, ubrnKeyFile))
	}
	if err != nil {
		return nil, fmt.Errorf("auth: UBRN issuer signing key: %w", err)
	}
	u := &UBRNIssuer{cfg: cfg, key: key, prefix: strings.TrimSuffix(issuerURL.Path, "/"), now: time.Now}
	u.verifier, err = NewLocalVerifier(VerifierConfig{Issuer: cfg.Issuer, Audience: cfg.Audience,
		Algorithms: []string{string(jose.RS256)}}, u.PublicKeys())
	if err != nil {
		return nil, fmt.Errorf("auth: UBRN issuer: %w", err)
	}
	u.verifier.now = func() time.Time { return u.now() }
	u.handler = u.newHandler()
	return u, nil
}

// Issuer returns the issuer URL.
func (u *UBRNIssuer) Issuer() string { return u.cfg.Issuer }

// JWKSURI returns the URL of the issuer's public keys.
func (u *UBRNIssuer) JWKSURI() string { return u.cfg.Issuer + "/keys" }

// PublicKeys returns the issuer's public signing keys.
func (u *UBRNIssuer) PublicKeys() []jose.JSONWebKey { return []jose.JSONWebKey{u.key.JWK()} }

// MintReferralToken issues the access token of ServiceRequest/$ubrn-access:
// in patientID's context, limited to one referral and the booking of
// appointments, living ttl (at most the configured TokenTTL, which is also
// the default). It implements referral.TokenMinter.
func (u *UBRNIssuer) MintReferralToken(_ context.Context, patientID, referralID string, ttl time.Duration) (string, error) {
	g, err := ReferralGrant(u.cfg.Audience, patientID, referralID)
	if err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > u.cfg.TokenTTL {
		ttl = u.cfg.TokenTTL
	}
	return SignAccessToken(u.cfg.Issuer, u.key, g, u.now().Add(ttl))
}

// Verify checks a token of this issuer with go-oidc against its own key
// (signature, iss, aud, exp, nbf, RS256 only) and then that it is limited
// exactly as $ubrn-access limits its tokens: client ubrn-access, the
// patient role, one patient in context, the scopes of one referral and no
// others, no organisation or NHS number, and a lifetime within TokenTTL.
// Every failure is a *fhir.Error of kind fhir.Unauthorized, as Verifier's.
func (u *UBRNIssuer) Verify(ctx context.Context, raw string) (*Principal, error) {
	p, err := u.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := checkReferralPrincipal(p, u.cfg.Audience); err != nil {
		return nil, err
	}
	if p.Expiry.After(u.now().Add(u.cfg.TokenTTL + u.verifier.cfg.ClockSkew)) {
		return nil, unauthorized(DetailTokenInvalid, "security",
			fmt.Sprintf("access token of the UBRN access issuer lives longer than %s", u.cfg.TokenTTL), nil)
	}
	return p, nil
}

// Handler serves the issuer's OpenID discovery document at
// {issuer}/.well-known/openid-configuration and its JWKS at {issuer}/keys,
// and nothing else. Mount it at the issuer URL's path without stripping
// the prefix: the handler strips it itself.
func (u *UBRNIssuer) Handler() http.Handler { return u.handler }

func (u *UBRNIssuer) newHandler() http.Handler {
	discovery, _ := json.Marshal(map[string]any{
		"issuer":   u.cfg.Issuer,
		"jwks_uri": u.JWKSURI(),
		// Tokens are not obtained by OAuth here but from the FHIR operation
		// ServiceRequest/$ubrn-access, so there is no authorisation or
		// token endpoint and no grant type to announce.
		"response_types_supported":              []string{},
		"grant_types_supported":                 []string{},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.RS256)},
	})
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: u.PublicKeys()})
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			w.Write(body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/openid-configuration", serve(discovery))
	mux.Handle("GET /keys", serve(jwks))
	if u.prefix == "" {
		return mux
	}
	return http.StripPrefix(u.prefix, mux)
}
