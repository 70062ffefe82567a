package auth

import (
	"context"
	"github.com/signpost-fhir/signpost/auth/authtest"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/signpost-fhir/signpost/fhir"
)

// ubrnFixture is a UBRNIssuer mounted under /auth/ubrn of a server on
// 127.0.0.1, as the API mounts it.
type ubrnFixture struct {
	srv     *httptest.Server
	u       *UBRNIssuer
	dataDir string
	fhir    string // the audience
}

func newUBRNFixture(t *testing.T) *ubrnFixture {
	t.Helper()
	f := &ubrnFixture{dataDir: t.TempDir()}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.fhir = f.srv.URL + "/fhir"
	u, err := NewUBRNIssuer(UBRNIssuerConfig{Issuer: f.srv.URL + "/auth/ubrn", Audience: f.fhir, DataDir: f.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	f.u = u
	mux.Handle("/auth/ubrn/", u.Handler())
	return f
}

// privateJWK is the issuer's signing key as a private JWK, for tests that
// sign what the issuer would never issue.
func (f *ubrnFixture) privateJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: f.u.key.key, KeyID: f.u.key.id, Algorithm: "RS256", Use: "sig"}
}

// referralClaims are the claims of a $ubrn-access token for pat-1 and
// sr-1, which edit may change.
func (f *ubrnFixture) referralClaims(edit func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": f.u.Issuer(), "sub": "Patient/pat-1", "aud": []string{f.fhir, ClientUBRNAccess},
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "j1",
		"client_id": ClientUBRNAccess, "scope": strings.Join(referralScopes("sr-1"), " "),
		"patient": "pat-1", "fhirUser": f.fhir + "/Patient/pat-1", "role": "patient",
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func TestUBRNIssuerMintsVerifiableReferralTokens(t *testing.T) {
	f := newUBRNFixture(t)
	ctx := context.Background()
	tok, err := f.u.MintReferralToken(ctx, "pat-1", "sr-1", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	p, err := f.u.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Issuer != f.u.Issuer() || p.Patient != "pat-1" || p.Role != RolePatient || p.ClientID != ClientUBRNAccess {
		t.Errorf("principal = %+v, want pat-1, patient role, client %s, issuer %s", p, ClientUBRNAccess, f.u.Issuer())
	}
	if got, want := p.RawScopes, referralScopes("sr-1"); !slices.Equal(got, want) {
		t.Errorf("scopes = %q, want %q", got, want)
	}
	if life := time.Until(p.Expiry); life > 5*time.Minute || life < 4*time.Minute {
		t.Errorf("token lives %s, want 5m", life)
	}

	// Standard means: go-oidc's own discovery and remote key set, over HTTP.
	provider, err := oidc.NewProvider(ctx, f.u.Issuer())
	if err != nil {
		t.Fatalf("discovery of %s: %v", f.u.Issuer(), err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURI != f.u.Issuer()+"/keys" {
		t.Errorf("discovery jwks_uri = %q (%v), want %s/keys", meta.JWKSURI, err, f.u.Issuer())
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: f.fhir}).Verify(ctx, tok)
	if err != nil {
		t.Fatalf("go-oidc with the published JWKS: %v", err)
	}
	if idt.Subject != "Patient/pat-1" {
		t.Errorf("sub = %q, want Patient/pat-1", idt.Subject)
	}

	// Signpost's own remote verifier accepts it too (discovery + JWKS).
	rv, err := NewVerifier(ctx, VerifierConfig{Issuer: f.u.Issuer(), Audience: f.fhir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rv.Verify(ctx, tok); err != nil {
		t.Errorf("NewVerifier over discovery: %v", err)
	}

	// Nothing else is served: no token or authorisation endpoint.
	for _, path := range []string{"/auth/ubrn/oauth/token", "/auth/ubrn/authorize", "/auth/ubrn/login", "/auth/ubrn/"} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestUBRNIssuerKeepsItsKey(t *testing.T) {
	f := newUBRNFixture(t)
	again, err := NewUBRNIssuer(UBRNIssuerConfig{Issuer: f.u.Issuer(), Audience: f.fhir, DataDir: f.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.PublicKeys()[0].KeyID, f.u.PublicKeys()[0].KeyID; got != want {
		t.Errorf("kid after restart = %q, want %q", got, want)
	}
	// Its key is its own, not the development server's: see
	// devserver.TestUBRNIssuerKeyIsNotTheDevServers.
	fi, err := os.Stat(filepath.Join(DevDir(f.dataDir), ubrnKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("%s mode %v, want 0600", ubrnKeyFile, got)
	}
}

func TestUBRNIssuerRefuses(t *testing.T) {
	f := newUBRNFixture(t)
	key := f.privateJWK()
	stranger := authtest.RSAKey(t, key.KeyID) // same kid, another key
	sign := func(k jose.JSONWebKey, edit func(map[string]any)) string {
		return authtest.SignJWT(t, k, jose.RS256, f.referralClaims(edit))
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"forged with another key", sign(stranger, nil), "signature does not verify"},
		{"another scope added", sign(key, func(c map[string]any) { c["scope"] = c["scope"].(string) + " patient/*.cruds" }), "scopes that $ubrn-access does not issue"},
		{"user scope instead", sign(key, func(c map[string]any) { c["scope"] = "user/*.cruds" }), "names no referral"},
		{"two referrals", sign(key, func(c map[string]any) { c["scope"] = c["scope"].(string) + " patient/ServiceRequest.rs?_id=sr-2" }), "more than one referral"},
		{"referral query widened", sign(key, func(c map[string]any) {
			c["scope"] = strings.Replace(c["scope"].(string), "_id=sr-1", "_id=sr-1,sr-2", 1)
		}), "names no referral"},
		{"a scope missing", sign(key, func(c map[string]any) { c["scope"] = strings.Join(referralScopes("sr-1")[:3], " ") }), "scopes that $ubrn-access does not issue"},
		{"other client", sign(key, func(c map[string]any) { c["client_id"] = "call-centre" }), `names client "call-centre"`},
		{"provider role", sign(key, func(c map[string]any) { c["role"] = "provider" }), "role, organisation or NHS number"},
		{"with organisation", sign(key, func(c map[string]any) { c["org"] = "R9901" }), "role, organisation or NHS number"},
		{"with NHS number", sign(key, func(c map[string]any) { c["nhs_number"] = "9434765870" }), "role, organisation or NHS number"},
		{"no patient", sign(key, func(c map[string]any) { delete(c, "patient") }), "does not name one patient"},
		{"sub of another patient", sign(key, func(c map[string]any) { c["sub"] = "Patient/pat-2" }), "does not name one patient"},
		{"fhirUser of another patient", sign(key, func(c map[string]any) { c["fhirUser"] = f.fhir + "/Patient/pat-2" }), "does not name one patient"},
		{"lives a day", sign(key, func(c map[string]any) { c["exp"] = time.Now().Add(24 * time.Hour).Unix() }), "lives longer than 15m0s"},
		{"expired", sign(key, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), "expired"},
		{"other audience", sign(key, func(c map[string]any) { c["aud"] = []string{"http://127.0.0.1:1/fhir"} }), "audience"},
		{"other issuer's iss", sign(key, func(c map[string]any) { c["iss"] = f.srv.URL + "/auth" }), "is not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.u.Verify(context.Background(), tc.token)
			fe := fhir.AsError(err)
			if err == nil || fe.Kind != fhir.Unauthorized || len(fe.Issues) != 1 {
				t.Fatalf("Verify = %v, want one Unauthorized issue", err)
			}
			if got := fe.Issues[0].Diagnostics; !strings.Contains(got, tc.want) {
				t.Errorf("diagnostics %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestUBRNIssuerMintRefusesBadIDs(t *testing.T) {
	f := newUBRNFixture(t)
	for _, ids := range [][2]string{{"", "sr-1"}, {"pat-1", ""}, {"pat-1", "sr-1&_id=sr-2"}, {"pat 1", "sr-1"}, {"pat-1", "sr-1,sr-2"}} {
		if tok, err := f.u.MintReferralToken(context.Background(), ids[0], ids[1], 0); err == nil {
			t.Errorf("MintReferralToken(%q, %q) = %.20s…, want an error", ids[0], ids[1], tok)
		}
	}
	// TTL: at most the configured lifetime, which is also the default.
	tok, err := f.u.MintReferralToken(context.Background(), "pat-1", "sr-1", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, claims := authtest.JWTParts(t, tok)
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	if got := time.Duration(exp-iat) * time.Second; got != 15*time.Minute {
		t.Errorf("lifetime asked 48h = %s, want 15m", got)
	}
}

// TestVerifiersChooseByIssuer puts an external issuer and the UBRN issuer
// behind one Verifiers: each token is checked by the issuer it names, and
// by no other.
func TestVerifiersChooseByIssuer(t *testing.T) {
	ctx := context.Background()
	f := newUBRNFixture(t)
	ext := newTestIssuer(t)
	extKey := authtest.RSAKey(t, "ext-1")
	ext.publish(extKey)
	ev, err := NewVerifier(ctx, VerifierConfig{Issuer: ext.issuerName, Audience: f.fhir})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := NewVerifiers(ev, f.u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifiers(ev, ev); err == nil {
		t.Error("NewVerifiers accepted one issuer twice")
	}

	now := time.Now()
	professional := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": ext.issuerName, "sub": "dr-1", "aud": f.fhir, "client_id": "gp-system",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "scope": "user/*.cruds", "org": "A99001", "role": "referrer"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	ubrnTok, err := f.u.MintReferralToken(ctx, "pat-1", "sr-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The UBRN issuer's key under the external issuer's kid, and the other
	// way round: right key id, wrong issuer's key.
	ubrnKeyAsExt := f.privateJWK()
	ubrnKeyAsExt.KeyID = "ext-1"
	extKeyAsUBRN := extKey
	extKeyAsUBRN.KeyID = f.u.key.id

	for _, tc := range []struct {
		name    string
		token   string
		wantErr string // "" for accepted
		wantIss string
	}{
		{"professional token", authtest.SignJWT(t, extKey, jose.RS256, professional(nil)), "", ext.issuerName},
		{"UBRN token", ubrnTok, "", f.u.Issuer()},
		{"external iss signed with the UBRN key", authtest.SignJWT(t, ubrnKeyAsExt, jose.RS256, professional(nil)), "signature does not verify", ""},
		{"UBRN iss signed with the external key", authtest.SignJWT(t, extKeyAsUBRN, jose.RS256, f.referralClaims(nil)), "signature does not verify", ""},
		{"broad scopes under the UBRN iss, external key", authtest.SignJWT(t, extKey, jose.RS256, professional(func(c map[string]any) { c["iss"] = f.u.Issuer() })), "not one of the issuer's keys", ""},
		{"untrusted issuer", authtest.SignJWT(t, extKey, jose.RS256, professional(func(c map[string]any) { c["iss"] = "https://idp.invalid" })), `issuer "https://idp.invalid" is not trusted`, ""},
		{"no issuer", authtest.SignJWT(t, extKey, jose.RS256, professional(func(c map[string]any) { delete(c, "iss") })), "no issuer", ""},
		{"not a JWT", "abc", "three dot-separated parts", ""},
		{"payload not JSON", "e30.bm9wZQ.c2ln", "not base64url-encoded JSON", ""},
		{"missing", "", "no access token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ext.jwksHits.Load()
			p, err := vs.Verify(ctx, tc.token)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.Issuer != tc.wantIss {
					t.Errorf("issuer = %q, want %q", p.Issuer, tc.wantIss)
				}
				return
			}
			fe := fhir.AsError(err)
			if err == nil || fe.Kind != fhir.Unauthorized || !strings.Contains(fe.Issues[0].Diagnostics, tc.wantErr) {
				t.Fatalf("Verify = %v, want Unauthorized containing %q", err, tc.wantErr)
			}
			// Tokens naming the UBRN issuer never make the external issuer's
			// keys be fetched.
			if iss, _ := unverifiedIssuer(tc.token); iss == f.u.Issuer() && ext.jwksHits.Load() != before {
				t.Error("a token of the UBRN issuer fetched the external issuer's keys")
			}
		})
	}
}
