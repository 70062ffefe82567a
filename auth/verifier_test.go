package auth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"github.com/signpost-fhir/signpost/auth/authtest"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/signpost-fhir/signpost/fhir"
)

// testIssuer is an OpenID issuer on 127.0.0.1 serving a discovery document
// and a JWKS the test controls, counting JWKS fetches.
type testIssuer struct {
	srv        *httptest.Server
	mu         sync.Mutex
	keys       []jose.JSONWebKey // published public keys
	jwksHits   atomic.Int64
	issuerName string // the issuer value; srv.URL
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ti := &testIssuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                ti.issuerName,
			"jwks_uri":                              ti.issuerName + "/keys",
			"authorization_endpoint":                ti.issuerName + "/authorize",
			"token_endpoint":                        ti.issuerName + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksHits.Add(1)
		ti.mu.Lock()
		defer ti.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: ti.keys})
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	ti.issuerName = ti.srv.URL
	return ti
}

func (ti *testIssuer) publish(keys ...jose.JSONWebKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.keys = nil
	for _, k := range keys {
		ti.keys = append(ti.keys, k.Public())
	}
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

const testAudience = "http://127.0.0.1/fhir"

func TestVerifierAdversarial(t *testing.T) {
	ti := newTestIssuer(t)
	good, ec, stranger := authtest.RSAKey(t, "k1"), authtest.ECKey(t, "e1"), authtest.RSAKey(t, "k1")
	ti.publish(good, ec)
	v, err := NewVerifier(context.Background(), VerifierConfig{Issuer: ti.issuerName, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": ti.issuerName, "sub": "gp-system", "aud": []string{testAudience}, "client_id": "gp-system",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "t1",
			"scope": "system/*.cruds openid", "org": "A99001", "role": "referrer",
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	valid := authtest.SignJWT(t, good, jose.RS256, claims(nil))
	pubPEM := func() []byte {
		der, _ := x509.MarshalPKIXPublicKey(good.Public().Key)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(claims(func(c map[string]any) { c["scope"] = "system/AuditEvent.cruds" })) + "." + parts[2]

	tests := []struct {
		name       string
		token      string
		wantDetail string // "" means the token verifies
		wantDiag   string // substring of the diagnostics
	}{
		{name: "valid RS256", token: valid},
		{name: "valid ES256", token: authtest.SignJWT(t, ec, jose.ES256, claims(nil))},
		{name: "exp within clock skew", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { c["exp"] = now.Add(-20 * time.Second).Unix() }))},
		{name: "nbf within clock skew", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { c["nbf"] = now.Add(20 * time.Second).Unix() }))},
		{name: "no token", token: "", wantDetail: DetailTokenMissing, wantDiag: "no access token"},
		{name: "garbled", token: "not-a-jwt", wantDetail: DetailTokenInvalid, wantDiag: "not a signed JWT"},
		{name: "garbled three parts", token: "a.b.c", wantDetail: DetailTokenInvalid, wantDiag: "header"},
		{name: "expired", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Minute).Unix() })), wantDetail: DetailTokenExpired, wantDiag: "expired at"},
		{name: "no exp", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { delete(c, "exp") })), wantDetail: DetailTokenExpired},
		{name: "nbf in the future", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { c["nbf"] = now.Add(3 * time.Minute).Unix() })), wantDetail: DetailTokenInvalid, wantDiag: "not valid before"},
		{name: "nbf far in the future", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })), wantDetail: DetailTokenInvalid, wantDiag: "not valid"},
		{name: "wrong issuer", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), wantDetail: DetailTokenInvalid, wantDiag: "not trusted"},
		{name: "wrong audience", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { c["aud"] = "http://127.0.0.1/other" })), wantDetail: DetailTokenInvalid, wantDiag: "audience"},
		{name: "no audience", token: authtest.SignJWT(t, good, jose.RS256, claims(func(c map[string]any) { delete(c, "aud") })), wantDetail: DetailTokenInvalid, wantDiag: "audience"},
		{name: "alg none", token: b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(claims(nil)) + ".", wantDetail: DetailTokenInvalid, wantDiag: `alg "none"`},
		{name: "HS256 signed with the public key", token: authtest.SignJWT(t, jose.JSONWebKey{Key: pubPEM, KeyID: "k1"}, jose.HS256, claims(nil)), wantDetail: DetailTokenInvalid, wantDiag: `alg "HS256"`},
		{name: "tampered payload", token: tampered, wantDetail: DetailTokenInvalid, wantDiag: "signature does not verify"},
		{name: "signed by a stranger's key with a known kid", token: authtest.SignJWT(t, stranger, jose.RS256, claims(nil)), wantDetail: DetailTokenInvalid, wantDiag: "signature does not verify"},
		{name: "RS256 token claiming the EC key", token: authtest.SignJWT(t, jose.JSONWebKey{Key: good.Key, KeyID: "e1"}, jose.RS256, claims(nil)), wantDetail: DetailTokenInvalid, wantDiag: "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			if tt.wantDetail == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.Subject != "gp-system" || p.ClientID != "gp-system" || p.Organization != "A99001" || p.Role != RoleReferrer {
					t.Errorf("principal = %+v", p)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", p)
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.Unauthorized || len(fe.Issues) != 1 {
				t.Fatalf("error = %#v, want one fhir.Unauthorized issue", err)
			}
			is := fe.Issues[0]
			if is.Details != tt.wantDetail {
				t.Errorf("details = %q, want %q (diagnostics %q)", is.Details, tt.wantDetail, is.Diagnostics)
			}
			if !strings.Contains(is.Diagnostics, tt.wantDiag) {
				t.Errorf("diagnostics = %q, want it to contain %q", is.Diagnostics, tt.wantDiag)
			}
			for _, leak := range []string{"oidc:", "go-jose", "failed to", "127.0.0.1"} {
				if strings.Contains(is.Diagnostics, leak) {
					t.Errorf("diagnostics %q leak %q", is.Diagnostics, leak)
				}
			}
			oo := string(fhir.OperationOutcome(fe.Issues...))
			if !strings.Contains(oo, `"resourceType":"OperationOutcome"`) || !strings.Contains(oo, tt.wantDetail) {
				t.Errorf("OperationOutcome = %s", oo)
			}
		})
	}
}

// TestVerifierKeyRotation checks that an unknown kid refreshes the key set
// once, rate-limited, and that a rotated key is then accepted.
func TestVerifierKeyRotation(t *testing.T) {
	ti := newTestIssuer(t)
	old, rotated := authtest.RSAKey(t, "old"), authtest.RSAKey(t, "new")
	ti.publish(old)
	v, err := NewVerifier(context.Background(), VerifierConfig{Issuer: ti.issuerName, Audience: testAudience, RefreshInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	v.now = func() time.Time { return clock }
	claims := map[string]any{"iss": ti.issuerName, "sub": "s", "aud": testAudience, "exp": time.Now().Add(24 * time.Hour).Unix(), "scope": "system/Slot.rs"}
	verify := func(key jose.JSONWebKey) error {
		_, err := v.Verify(context.Background(), authtest.SignJWT(t, key, jose.RS256, claims))
		return err
	}

	steps := []struct {
		name      string
		advance   time.Duration
		publish   []jose.JSONWebKey
		key       jose.JSONWebKey
		wantOK    bool
		wantFetch int64 // JWKS fetches so far
	}{
		{name: "first use fetches the keys", key: old, wantOK: true, wantFetch: 1},
		{name: "known kid: no fetch", key: old, wantOK: true, wantFetch: 1},
		{name: "issuer rotates; new kid within the interval is refused without a fetch", publish: []jose.JSONWebKey{old, rotated}, key: rotated, wantOK: false, wantFetch: 1},
		{name: "after the interval an unknown kid refreshes once", advance: 61 * time.Second, key: rotated, wantOK: true, wantFetch: 2},
		{name: "made-up kid refreshes at most once per interval", advance: 61 * time.Second, key: authtest.RSAKey(t, "made-up-1"), wantOK: false, wantFetch: 3},
		{name: "another made-up kid straight after: no fetch", key: authtest.RSAKey(t, "made-up-2"), wantOK: false, wantFetch: 3},
		{name: "old key still accepted while published", key: old, wantOK: true, wantFetch: 3},
		{name: "withdrawn key refused once keys are fetched again (max age)", advance: 2 * time.Hour, publish: []jose.JSONWebKey{rotated}, key: old, wantOK: false, wantFetch: 4},
		{name: "rotated key still accepted", key: rotated, wantOK: true, wantFetch: 4},
	}
	for _, s := range steps {
		clock = clock.Add(s.advance)
		if s.publish != nil {
			ti.publish(s.publish...)
		}
		err := verify(s.key)
		if (err == nil) != s.wantOK {
			t.Errorf("%s: Verify error = %v, want ok %v", s.name, err, s.wantOK)
		}
		if got := ti.jwksHits.Load(); got != s.wantFetch {
			t.Errorf("%s: JWKS fetched %d times, want %d", s.name, got, s.wantFetch)
		}
	}
	// The rejection of an unknown kid names it.
	err = verify(authtest.RSAKey(t, "made-up-3"))
	if fe := fhir.AsError(err); len(fe.Issues) == 0 || !strings.Contains(fe.Issues[0].Diagnostics, `key "made-up-3"`) {
		t.Errorf("unknown kid error = %v", err)
	}
}

func TestVerifierConcurrentUnknownKidFetchesOnce(t *testing.T) {
	ti := newTestIssuer(t)
	k := authtest.RSAKey(t, "k")
	ti.publish(k)
	v, err := NewVerifier(context.Background(), VerifierConfig{Issuer: ti.issuerName, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	tok := authtest.SignJWT(t, authtest.RSAKey(t, "unknown"), jose.RS256, map[string]any{"iss": ti.issuerName, "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix()})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { v.Verify(context.Background(), tok) })
	}
	wg.Wait()
	if got := ti.jwksHits.Load(); got != 1 {
		t.Errorf("20 concurrent unknown-kid tokens fetched the JWKS %d times, want 1", got)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	ti := newTestIssuer(t)
	tests := []struct {
		name string
		cfg  VerifierConfig
	}{
		{"no issuer", VerifierConfig{Audience: testAudience}},
		{"no audience", VerifierConfig{Issuer: ti.issuerName}},
		{"HMAC allowed", VerifierConfig{Issuer: ti.issuerName, Audience: testAudience, Algorithms: []string{"HS256"}}},
		{"none allowed", VerifierConfig{Issuer: ti.issuerName, Audience: testAudience, Algorithms: []string{"RS256", "none"}}},
		{"issuer mismatch in discovery", VerifierConfig{Issuer: ti.issuerName + "/other", Audience: testAudience}},
		{"huge skew", VerifierConfig{Issuer: ti.issuerName, Audience: testAudience, ClockSkew: time.Hour}},
		{"bad claim path", VerifierConfig{Issuer: ti.issuerName, Audience: testAudience, Claims: &ClaimNames{Scope: "a..b", ClientID: "client_id"}}},
	}
	for _, tt := range tests {
		if _, err := NewVerifier(context.Background(), tt.cfg); err == nil {
			t.Errorf("%s: NewVerifier succeeded", tt.name)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, want string
		wantErr      bool
	}{
		{"", "", false},
		{"Bearer abc.def.ghi", "abc.def.ghi", false},
		{"bearer  abc", "abc", false},
		{"Basic dXNlcjpwdw==", "", true},
		{"Bearer", "", true},
		{"Bearer ", "", true},
	}
	for _, tt := range tests {
		got, err := BearerToken(tt.header)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, error %v", tt.header, got, err, tt.want, tt.wantErr)
		}
		if err != nil && fhir.KindOf(err) != fhir.Unauthorized {
			t.Errorf("BearerToken(%q) error kind = %v", tt.header, fhir.KindOf(err))
		}
	}
}

func TestWWWAuthenticate(t *testing.T) {
	missing := unauthorized(DetailTokenMissing, "login", "no access token", nil)
	expired := unauthorized(DetailTokenExpired, "expired", `access token "x" expired`, nil)
	tests := []struct {
		err  error
		want string
	}{
		{missing, `Bearer realm="signpost"`},
		{expired, `Bearer realm="signpost", error="invalid_token", error_description="access token 'x' expired"`},
	}
	for _, tt := range tests {
		if got := WWWAuthenticate("signpost", tt.err); got != tt.want {
			t.Errorf("WWWAuthenticate(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	key := authtest.RSAKey(b, "k")
	v, err := NewLocalVerifier(VerifierConfig{Issuer: "http://127.0.0.1/auth", Audience: testAudience}, []jose.JSONWebKey{key})
	if err != nil {
		b.Fatal(err)
	}
	tok := authtest.SignJWT(b, key, jose.RS256, map[string]any{
		"iss": "http://127.0.0.1/auth", "sub": "s", "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix(),
		"scope": "system/*.cruds", "org": "A99001", "role": "referrer", "client_id": "gp-system",
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
