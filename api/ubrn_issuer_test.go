package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
)

// externalIssuer is an OpenID issuer on 127.0.0.1 standing for the one
// professionals sign in with (NHS CIS2, Keycloak…): a discovery document,
// a JWKS with one RSA key, and tokens signed with it.
type externalIssuer struct {
	url string
	key *rsa.PrivateKey
	kid string
}

func newExternalIssuer(t testing.TB) *externalIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ei := &externalIssuer{key: key, kid: "ext-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": ei.url, "jwks_uri": ei.url + "/keys",
			"authorization_endpoint": ei.url + "/authorize", "token_endpoint": ei.url + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "kid": ei.kid, "alg": "RS256", "use": "sig",
			"n": b64uint(key.N.Bytes()), "e": b64uint([]byte{1, 0, 1}),
		}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ei.url = srv.URL
	return ei
}

// b64uint encodes a big-endian unsigned integer for a JWK.
func b64uint(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// token signs a professional's access token for audience.
func (ei *externalIssuer) token(audience, client, scope, org, role string) string {
	now := time.Now()
	return jwt(map[string]any{"alg": "RS256", "typ": "JWT", "kid": ei.kid}, map[string]any{
		"iss": ei.url, "sub": client + "-user", "aud": audience, "client_id": client,
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": fmt.Sprint(now.UnixNano()),
		"scope": scope, "org": org, "role": role,
	}, rs256(ei.key))
}

// ubrnSigningKey reads the UBRN issuer's key from the data directory.
func ubrnSigningKey(t testing.TB, a *app.App) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(auth.DevDir(a.Config.Data), "ubrn-signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// params builds a Parameters body from name/value pairs: strings become
// valueString, maps with "reference" valueReference, maps with "system"
// valueIdentifier, other maps (resources) resource.
func params(t testing.TB, kv ...any) string {
	t.Helper()
	var ps []map[string]any
	for i := 0; i+1 < len(kv); i += 2 {
		p := map[string]any{"name": kv[i]}
		switch v := kv[i+1].(type) {
		case string:
			p["valueString"] = v
		case map[string]any:
			switch {
			case v["reference"] != nil:
				p["valueReference"] = v
			case v["system"] != nil:
				p["valueIdentifier"] = v
			default:
				p["resource"] = v
			}
		}
		ps = append(ps, p)
	}
	return string(mustJSON(t, map[string]any{"resourceType": "Parameters", "parameter": ps}))
}

// paramValue returns the first value[x] or resource of the named parameter.
func paramValue(out map[string]any, name string) any {
	ps, _ := out["parameter"].([]any)
	for _, p := range ps {
		p := p.(map[string]any)
		if p["name"] != name {
			continue
		}
		for k, v := range p {
			if strings.HasPrefix(k, "value") || k == "resource" {
				return v
			}
		}
	}
	return nil
}

// resourcesOf lists a Bundle's entry resources, or the resource itself.
func resourcesOf(v map[string]any) []map[string]any {
	if v["resourceType"] != "Bundle" {
		return []map[string]any{v}
	}
	var out []map[string]any
	entries, _ := v["entry"].([]any)
	for _, e := range entries {
		if r, ok := e.(map[string]any)["resource"].(map[string]any); ok {
			out = append(out, r)
		}
	}
	return out
}

// TestUBRNAccessWithExternalIssuer runs the UBRN journey on a server whose
// professionals sign in through an external issuer: the GP (external
// token) refers and gets an access code, the patient exchanges UBRN, code
// and birth date for a token of Signpost's own UBRN issuer, reads the
// referral, finds and books an appointment. Tokens of the UBRN issuer
// that are forged, broader than $ubrn-access issues or aimed at another
// referral are refused; professional tokens keep working.
func TestUBRNAccessWithExternalIssuer(t *testing.T) {
	ext := newExternalIssuer(t)
	s := newServer(t, app.Config{Auth: true, Issuer: ext.url})
	seedStore(t, s.app, "testdata/security/seed.json")
	if s.app.Auth != nil || s.app.UBRN == nil {
		t.Fatalf("with --issuer: development server %v, UBRN issuer %v; want none and one", s.app.Auth, s.app.UBRN)
	}
	root := strings.TrimSuffix(s.base, "/fhir")
	gp := ext.token(s.base, "gp-system", "user/*.cruds", "A99001", "referrer")
	provider := ext.token(s.base, "pas", "system/*.cruds", "R9901", "provider")

	// The provider publishes two free slots, the GP refers Alice.
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 2)
	for i := range 2 {
		start := day.Add(time.Duration(9+i) * time.Hour)
		s.must(request{method: "POST", path: "Slot", header: bearer(provider), body: string(mustJSON(t, map[string]any{
			"resourceType": "Slot", "schedule": map[string]any{"reference": "Schedule/sched-1"}, "status": "free",
			"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339)}))}, http.StatusCreated)
	}
	sr := decode(t, s.must(request{method: "POST", path: "ServiceRequest", header: bearer(gp), body: string(mustJSON(t, map[string]any{
		"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "https://signpost.example/fhir/CodeSystem/referral-source", "code": "gp"}}}},
		"performerType": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "394579002", "display": "Cardiology"}}},
		"subject":       map[string]any{"reference": "Patient/pat-a"}, "requester": map[string]any{"reference": "Organization/org-gp"},
	}))}, http.StatusCreated).body)
	srID := sr["id"].(string)
	var ubrn string
	for _, id := range sr["identifier"].([]any) {
		if id := id.(map[string]any); id["system"] == "https://fhir.nhs.uk/Id/UBRN" {
			ubrn = id["value"].(string)
		}
	}
	if ubrn == "" {
		t.Fatalf("the referral got no UBRN: %v", sr)
	}
	codes := decode(t, s.must(request{method: "POST", path: "ServiceRequest/" + srID + "/$access-code", header: bearer(gp), body: params(t)}, http.StatusOK).body)
	code, _ := paramValue(codes, "access-code").(string)

	// The patient, without a token, gets one from Signpost's UBRN issuer.
	access := decode(t, s.must(request{method: "POST", path: "ServiceRequest/$ubrn-access",
		body: params(t, "ubrn", ubrn, "access-code", code, "birthdate", "1980-01-01")}, http.StatusOK).body)
	tok, _ := paramValue(access, "access_token").(string)
	if tok == "" {
		t.Fatalf("$ubrn-access answered %v", access)
	}

	// Verifiable by standard means: go-oidc discovers the issuer and its keys.
	ctx := context.Background()
	wantIssuer := root + "/auth/ubrn"
	provOIDC, err := oidc.NewProvider(oidc.ClientContext(ctx, s.ts.Client()), wantIssuer)
	if err != nil {
		t.Fatalf("discovering %s: %v", wantIssuer, err)
	}
	if _, err := provOIDC.Verifier(&oidc.Config{ClientID: s.base}).Verify(oidc.ClientContext(ctx, s.ts.Client()), tok); err != nil {
		t.Errorf("go-oidc over the published JWKS: %v", err)
	}

	// The patient reads their referral, finds and books.
	s.must(request{path: "ServiceRequest/" + srID, header: bearer(tok)}, http.StatusOK)
	found := decode(t, s.must(request{method: "POST", path: "Appointment/$find", header: bearer(tok), body: params(t,
		"healthcare-service", map[string]any{"reference": "HealthcareService/hs-prov"},
		"patient-reference", map[string]any{"reference": "Patient/pat-a"},
		"referral-identifier", map[string]any{"system": "https://fhir.nhs.uk/Id/UBRN", "value": ubrn})}, http.StatusOK).body)
	props := resourcesOf(found)
	if len(props) == 0 || props[0]["resourceType"] != "Appointment" {
		t.Fatalf("$find proposed nothing: %v", found)
	}
	prop := props[0]
	delete(prop, "id")
	booking := s.do(request{method: "POST", path: "Appointment/$book", header: bearer(tok), body: params(t, "appointment-resource", prop)})
	if booking.status != http.StatusOK && booking.status != http.StatusCreated {
		t.Fatalf("$book: %d %s", booking.status, booking.body)
	}
	var booked map[string]any
	for _, r := range resourcesOf(decode(t, booking.body)) {
		if r["resourceType"] == "Appointment" {
			booked = r
		}
	}
	if booked == nil || booked["status"] != "booked" {
		t.Fatalf("$book answered %s, want a booked Appointment", booking.body)
	}
	apptID := booked["id"].(string)
	s.must(request{path: "Appointment/" + apptID, header: bearer(tok)}, http.StatusOK)

	// Tokens in the UBRN issuer's name that it would never issue.
	key := ubrnSigningKey(t, s.app)
	kid := s.app.UBRN.PublicKeys()[0].KeyID
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(referral string, edit func(map[string]any)) map[string]any {
		now := time.Now()
		c := map[string]any{
			"iss": wantIssuer, "sub": "Patient/pat-a", "aud": []string{s.base, auth.ClientUBRNAccess},
			"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": fmt.Sprint(now.UnixNano()),
			"client_id": auth.ClientUBRNAccess, "patient": "pat-a", "role": "patient",
			"scope": strings.Replace(scopeOf(t, tok), "_id="+srID, "_id="+referral, 1),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	header := map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}
	for _, tc := range []struct {
		name   string
		token  string
		path   string
		status int
	}{
		{"the patient's token, their referral", tok, "ServiceRequest/" + srID, 200},
		{"the patient's token, their other referral", tok, "ServiceRequest/sr-a", 404},
		{"the patient's token, another patient's referral", tok, "ServiceRequest/sr-b", 404},
		{"the patient's token, the workflow Task", tok, "Task?focus=ServiceRequest/" + srID, 403},
		{"the patient's token, another patient's appointment", tok, "Appointment/appt-b", 404},
		{"the patient's token, the audit trail", tok, "AuditEvent", 403},
		{"forged with another key", jwt(header, claims(srID, nil), rs256(stranger)), "ServiceRequest/" + srID, 401},
		{"forged with another key, another referral", jwt(header, claims("sr-b", func(c map[string]any) {
			c["patient"], c["sub"] = "pat-b", "Patient/pat-b"
		}), rs256(stranger)), "ServiceRequest/sr-b", 401},
		{"issuer's key, broader scopes", jwt(header, claims(srID, func(c map[string]any) {
			c["scope"] = c["scope"].(string) + " patient/*.cruds"
		}), rs256(key)), "ServiceRequest/" + srID, 401},
		{"issuer's key, user scopes", jwt(header, claims(srID, func(c map[string]any) {
			c["scope"] = "user/*.cruds"
		}), rs256(key)), "ServiceRequest/sr-b", 401},
		{"issuer's key, professional role", jwt(header, claims(srID, func(c map[string]any) {
			c["role"], c["org"] = "call-centre", "Y99001"
		}), rs256(key)), "ServiceRequest/" + srID, 401},
		{"issuer's key, two referrals", jwt(header, claims(srID, func(c map[string]any) {
			c["scope"] = c["scope"].(string) + " patient/ServiceRequest.rs?_id=sr-b"
		}), rs256(key)), "ServiceRequest/sr-b", 401},
		{"issuer's key, a day long", jwt(header, claims(srID, func(c map[string]any) {
			c["exp"] = time.Now().Add(24 * time.Hour).Unix()
		}), rs256(key)), "ServiceRequest/" + srID, 401},
		{"issuer's key, another patient's referral for this patient", jwt(header, claims("sr-b", nil), rs256(key)), "ServiceRequest/sr-b", 404},
		{"external issuer's key under the UBRN issuer's name", jwt(map[string]any{"alg": "RS256", "typ": "JWT", "kid": ext.kid},
			claims(srID, nil), rs256(ext.key)), "ServiceRequest/" + srID, 401},
		{"UBRN issuer's key under the external issuer's name", jwt(map[string]any{"alg": "RS256", "typ": "JWT", "kid": ext.kid},
			claims(srID, func(c map[string]any) { c["iss"] = ext.url }), rs256(key)), "ServiceRequest/" + srID, 401},
		{"professional token: the GP reads the referral", gp, "ServiceRequest/" + srID, 200},
		{"professional token: the provider reads the booking", provider, "Appointment/" + apptID, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.do(request{path: tc.path, header: bearer(tc.token)})
			if got.status != tc.status || strings.Contains(string(got.body), secret) {
				t.Fatalf("GET %s: %d, want %d: %.300s", tc.path, got.status, tc.status, got.body)
			}
			if got.status >= 400 && decode(t, got.body)["resourceType"] != "OperationOutcome" {
				t.Errorf("refusal is not an OperationOutcome: %s", got.body)
			}
			if got.status == 401 && !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}

	// The development server's conveniences are not there.
	for _, path := range []string{"/auth/oauth/token", "/auth/.well-known/openid-configuration", "/auth/ubrn/oauth/token"} {
		if got := s.do(request{method: "POST", path: path}); got.status == http.StatusOK {
			t.Errorf("POST %s: 200, want no development server", path)
		}
	}
	if got := s.do(request{path: "/auth/ubrn/keys"}); got.status != http.StatusOK || !strings.Contains(string(got.body), kid) {
		t.Errorf("GET /auth/ubrn/keys: %d %s, want the JWKS with %s", got.status, got.body, kid)
	}
}

// scopeOf reads the scope claim of a JWT without verifying it.
func scopeOf(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a JWT", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Scope
}
