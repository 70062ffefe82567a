package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/signpost-fhir/signpost/fhir"
)

// DefaultAlgorithms are the signature algorithms a Verifier accepts unless
// told otherwise: RSA PKCS#1 and PSS, and ECDSA. "none" and the HMAC
// algorithms can never be configured.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// VerifierConfig configures a Verifier. It is checked with validator/v10.
type VerifierConfig struct {
	// Issuer is the authorisation server's issuer URL (--issuer); tokens
	// must carry it as iss, and its discovery document is fetched from
	// Issuer + "/.well-known/openid-configuration".
	Issuer string `validate:"required,url"`
	// Audience must be among a token's aud values (--audience): normally
	// Signpost's FHIR base URL.
	Audience string `validate:"required"`
	// Algorithms allowed in a token's alg header; default DefaultAlgorithms.
	Algorithms []string `validate:"dive,oneof=RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA"`
	// ClockSkew is the leeway on exp and nbf; default one minute.
	ClockSkew time.Duration `validate:"gte=0,lte=5m"`
	// RefreshInterval is the least time between two fetches of the issuer's
	// keys; default 30 seconds. A token with an unknown kid triggers a fetch
	// only if none happened within it.
	RefreshInterval time.Duration `validate:"gte=0"`
	// MaxKeyAge is how long fetched keys are used before being fetched
	// again, so keys the issuer withdraws stop being accepted; default 1h.
	MaxKeyAge time.Duration `validate:"gte=0"`
	// Claims names the claims to read; default DefaultClaimNames.
	Claims *ClaimNames
	// HTTPClient fetches discovery and keys; default a client with a
	// 10-second timeout.
	HTTPClient *http.Client `validate:"-"`
}

// withDefaults fills the zero fields.
func (c VerifierConfig) withDefaults() VerifierConfig {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = time.Minute
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 30 * time.Second
	}
	if c.MaxKeyAge == 0 {
		c.MaxKeyAge = time.Hour
	}
	if c.Claims == nil {
		names := DefaultClaimNames()
		c.Claims = &names
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return c
}

func (c VerifierConfig) validate() error {
	if err := validate.Struct(c); err != nil {
		return fmt.Errorf("auth: verifier config: %w", err)
	}
	return c.Claims.Validate()
}

// Verifier checks bearer access tokens (JWTs) with go-oidc: signature against
// the issuer's keys, iss, aud, exp and nbf with a small clock skew, and an
// algorithm allow-list. It is safe for concurrent use.
type Verifier struct {
	cfg       VerifierConfig
	keys      *keySet
	oidc      *oidc.IDTokenVerifier
	now       func() time.Time
	endpoints SmartEndpoints // from discovery; only Issuer for a local verifier
}

// NewVerifier discovers the issuer's configuration (one HTTP GET of its
// discovery document, whose issuer must match) and returns a Verifier that
// fetches the issuer's JWKS on first use and when keys rotate.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("auth: discovering issuer %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		JWKSURI               string   `json:"jwks_uri"`
		AuthorizationEndpoint string   `json:"authorization_endpoint"`
		TokenEndpoint         string   `json:"token_endpoint"`
		IntrospectionEndpoint string   `json:"introspection_endpoint"`
		RevocationEndpoint    string   `json:"revocation_endpoint"`
		UserinfoEndpoint      string   `json:"userinfo_endpoint"`
		AssertionAlgorithms   []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return nil, fmt.Errorf("auth: issuer %s: discovery document has no jwks_uri", cfg.Issuer)
	}
	ks := &keySet{jwksURL: meta.JWKSURI, client: cfg.HTTPClient}
	v := newVerifier(cfg, ks)
	v.endpoints = SmartEndpoints{
		Issuer:                cfg.Issuer,
		JWKSURI:               meta.JWKSURI,
		AuthorizationEndpoint: meta.AuthorizationEndpoint,
		TokenEndpoint:         meta.TokenEndpoint,
		IntrospectionEndpoint: meta.IntrospectionEndpoint,
		RevocationEndpoint:    meta.RevocationEndpoint,
		UserinfoEndpoint:      meta.UserinfoEndpoint,
		AssertionAlgorithms:   meta.AssertionAlgorithms,
	}
	return v, nil
}

// NewLocalVerifier returns a Verifier that checks tokens against the given
// public keys, without any HTTP round trip: for the embedded development
// server, whose keys are in the same process. Verification still goes through
// go-oidc with the same checks as NewVerifier's.
func NewLocalVerifier(cfg VerifierConfig, keys []jose.JSONWebKey) (*Verifier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: local verifier: no keys")
	}
	pub := make([]jose.JSONWebKey, len(keys))
	for i, k := range keys {
		pub[i] = k.Public()
		if !pub[i].Valid() {
			return nil, fmt.Errorf("auth: local verifier: key %d (kid %q) is not a usable public key", i, k.KeyID)
		}
	}
	return newVerifier(cfg, &keySet{keys: pub}), nil
}

func newVerifier(cfg VerifierConfig, ks *keySet) *Verifier {
	v := &Verifier{cfg: cfg, keys: ks, now: time.Now, endpoints: SmartEndpoints{Issuer: cfg.Issuer}}
	ks.minInterval, ks.maxAge, ks.now = cfg.RefreshInterval, cfg.MaxKeyAge, v.clock
	for _, a := range cfg.Algorithms {
		ks.algs = append(ks.algs, jose.SignatureAlgorithm(a))
	}
	v.oidc = oidc.NewVerifier(cfg.Issuer, ks, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: cfg.Algorithms,
		// exp gets the clock-skew leeway; nbf is checked again below with
		// the same leeway, as go-oidc allows five minutes.
		Now: func() time.Time { return v.clock().Add(-cfg.ClockSkew) },
	})
	return v
}

func (v *Verifier) clock() time.Time { return v.now() }

// Issuer returns the issuer the Verifier trusts.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// Audience returns the audience tokens must name.
func (v *Verifier) Audience() string { return v.cfg.Audience }

// SmartEndpoints returns the issuer's endpoints as its discovery document
// gave them, for SmartConfiguration. A local verifier knows only the issuer;
// use devserver.Server.SmartEndpoints instead.
func (v *Verifier) SmartEndpoints() SmartEndpoints { return v.endpoints }

// Error codes Signpost puts in OperationOutcome.issue.details for token
// problems (code system fhir.ErrorSystem).
const (
	DetailTokenMissing = "TOKEN_MISSING" // no bearer token
	DetailTokenInvalid = "TOKEN_INVALID" // malformed, badly signed, wrong iss/aud/alg, not yet valid
	DetailTokenExpired = "TOKEN_EXPIRED"
)

// Verify checks a raw access token and returns its principal. Every failure is
// a *fhir.Error of kind fhir.Unauthorized whose diagnostics say what was wrong
// with the token without revealing the server's internals; the underlying
// cause is kept in its Err for logs.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	if raw == "" {
		return nil, unauthorized(DetailTokenMissing, "login", "no access token: send Authorization: Bearer <token>", nil)
	}
	tok, err := v.oidc.Verify(ctx, raw)
	if err != nil {
		return nil, v.explain(raw, err)
	}
	var claims map[string]any
	var rawClaims json.RawMessage
	if err := tok.Claims(&rawClaims); err != nil {
		return nil, unauthorized(DetailTokenInvalid, "security", "access token claims are not a JSON object", err)
	}
	dec := json.NewDecoder(bytes.NewReader(rawClaims))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, unauthorized(DetailTokenInvalid, "security", "access token claims are not a JSON object", err)
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && nbf.After(v.clock().Add(v.cfg.ClockSkew)) {
		return nil, unauthorized(DetailTokenInvalid, "security",
			fmt.Sprintf("access token is not valid before %s", nbf.UTC().Format(time.RFC3339)), nil)
	}
	p := v.cfg.Claims.principal(claims)
	p.Expiry = tok.Expiry
	return p, nil
}

// numericDate reads a JWT NumericDate claim.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// explain turns a go-oidc rejection into a client-facing error. go-oidc made
// the decision; explain only looks at the (unverified) token again to say
// which check failed.
func (v *Verifier) explain(raw string, cause error) *fhir.Error {
	bad := func(msg string) *fhir.Error { return unauthorized(DetailTokenInvalid, "security", msg, cause) }
	var expired *oidc.TokenExpiredError
	if errors.As(cause, &expired) {
		return unauthorized(DetailTokenExpired, "expired",
			fmt.Sprintf("access token expired at %s", expired.Expiry.UTC().Format(time.RFC3339)), cause)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return bad("access token is not a signed JWT (want three dot-separated parts)")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &header) != nil {
		return bad("access token header is not base64url-encoded JSON")
	}
	if !slices.Contains(v.cfg.Algorithms, header.Alg) {
		return bad(fmt.Sprintf("access token is signed with alg %q, which is not accepted (accepted: %s)",
			header.Alg, strings.Join(v.cfg.Algorithms, ", ")))
	}
	if strings.Contains(cause.Error(), "failed to verify signature") {
		if header.Kid != "" && !v.keys.has(header.Kid) {
			return bad(fmt.Sprintf("access token is signed with key %q, which is not one of the issuer's keys", header.Kid))
		}
		return bad("access token signature does not verify")
	}
	var claims struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(b, &claims) != nil {
		return bad("access token payload is not base64url-encoded JSON")
	}
	if claims.Iss != v.cfg.Issuer {
		return bad(fmt.Sprintf("access token issuer %q is not trusted by this server", claims.Iss))
	}
	if strings.Contains(cause.Error(), "audience") {
		return bad("access token audience (aud) does not include this server")
	}
	if strings.Contains(cause.Error(), "nbf") {
		return bad("access token is not valid yet (nbf)")
	}
	return bad("access token is not valid")
}

// unauthorized builds the 401 error.
func unauthorized(detail, code, msg string, cause error) *fhir.Error {
	e := fhir.Errorf(fhir.Unauthorized, code, "", "%s", msg).WithDetails(detail)
	e.Op = "authenticate"
	e.Err = cause
	return e
}

// BearerToken extracts the token from an Authorization header value. An
// empty header gives an empty token (Verify then reports it missing); any
// other scheme or a malformed value is an Unauthorized error.
func BearerToken(authorization string) (string, error) {
	if authorization == "" {
		return "", nil
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", unauthorized(DetailTokenMissing, "login", "Authorization header must be \"Bearer <token>\"", nil)
	}
	return strings.TrimSpace(token), nil
}

// WWWAuthenticate returns the WWW-Authenticate header value for a 401 answer
// to err (RFC 6750 §3): error="invalid_token" unless the token was missing.
func WWWAuthenticate(realm string, err error) string {
	h := fmt.Sprintf("Bearer realm=%q", realm)
	var fe *fhir.Error
	if !errors.As(err, &fe) || len(fe.Issues) == 0 || fe.Issues[0].Details == DetailTokenMissing {
		return h
	}
	desc := strings.NewReplacer(`"`, "'", `\`, "/").Replace(fe.Issues[0].Diagnostics)
	return h + fmt.Sprintf(`, error="invalid_token", error_description="%s"`, desc)
}
