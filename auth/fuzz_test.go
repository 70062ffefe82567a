package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/signpost-fhir/signpost/auth/authtest"
	"github.com/signpost-fhir/signpost/fhir"
)

// FuzzParseScope checks that scope parsing never panics, that an accepted
// scope grants something and round-trips through its v2 form (String) to
// an equal scope that covers it and is covered by it, and that ParseScopes
// sorts every word of a scope string into scopes or others.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"patient/Appointment.rs", "user/Appointment.write", "system/*.cruds", "patient/*.read",
		"patient/Observation.rs?category=laboratory", "user/Slot.rs?status=free&schedule=Schedule/1", "system/*.*",
		"openid", "launch/patient", "patient/appointment.rs", "user/Slot.sr", "user/Slot.", "user/Slot.rs?", "user/Slot.read?x=1",
		"system/AuditEvent.rs", "patient/Patient.cruds?_id=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if scopes, other := ParseScopes(raw); len(scopes)+len(other) != len(strings.Fields(raw)) {
			t.Fatalf("ParseScopes(%q): %d scopes and %d others for %d words", raw, len(scopes), len(other), len(strings.Fields(raw)))
		}
		s, err := ParseScope(raw)
		if err != nil {
			return
		}
		if s.Permissions == 0 || s.Permissions&^AllInteractions != 0 {
			t.Fatalf("ParseScope(%q): permissions %b", raw, s.Permissions)
		}
		if s.ResourceType != "*" && !isResourceTypeName(s.ResourceType) {
			t.Fatalf("ParseScope(%q): resource type %q", raw, s.ResourceType)
		}
		v2 := s.String()
		s2, err := ParseScope(v2)
		if err != nil {
			t.Fatalf("ParseScope(%q) accepted, but its v2 form %q is refused: %v", raw, v2, err)
		}
		if s2.Level != s.Level || s2.ResourceType != s.ResourceType || s2.Permissions != s.Permissions || !reflect.DeepEqual(s2.Query, s.Query) {
			t.Fatalf("%q changed through %q: %+v, then %+v", raw, v2, s, s2)
		}
		if !s.Covers(s2) || !s2.Covers(s) {
			t.Fatalf("%q and its v2 form %q do not cover each other", raw, v2)
		}
	})
}

// FuzzClaims checks that reading a verified token's claims never panics,
// whatever their types and nesting: a principal's resource scopes come
// from its raw scopes and parse again, and its role is one Signpost knows
// or none. The claims are decoded as Verify decodes them (numbers as
// json.Number).
func FuzzClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"i","sub":"s","scope":"system/*.cruds openid","client_id":"gp-system","org":"A99001","role":"referrer"}`,
		`{"scope":["patient/Slot.rs","patient/Appointment.cruds"],"azp":"app","patient":"p1","nhs_number":9000000009}`,
		`{"scope":{"x":1},"role":["nobody","provider"],"org":[["A"],{"b":2}],"fhirUser":null,"sub":1e400}`,
		`{"realm_access":{"roles":["R8000","call-centre"]},"nhsid_nrbac_roles":[{"org_code":"RH8"},{"org_code":7}]}`,
	} {
		f.Add([]byte(s))
	}
	names := DefaultClaimNames()
	mapped := ClaimNames{Scope: "scope", ClientID: "client_id", Organization: "nhsid_nrbac_roles.org_code",
		Role: "realm_access.roles", RoleMap: map[string]Role{"R8000": RoleProvider}}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var claims map[string]any
		if dec.Decode(&claims) != nil {
			return
		}
		for _, c := range []ClaimNames{names, mapped} {
			p := c.principal(claims)
			if len(p.Scopes) > len(p.RawScopes) {
				t.Fatalf("%d scopes from %d raw scopes", len(p.Scopes), len(p.RawScopes))
			}
			var want []Scope
			for _, r := range p.RawScopes {
				if s, err := ParseScope(r); err == nil {
					want = append(want, s)
				}
			}
			if !reflect.DeepEqual(p.Scopes, want) {
				t.Fatalf("scopes %v, want those of the raw scopes %q that parse: %v", p.Scopes, p.RawScopes, want)
			}
			if p.Role != "" && !slices.Contains(Roles, p.Role) {
				t.Fatalf("role %q is not a Signpost role", p.Role)
			}
		}
	})
}

// FuzzVerify checks that Verify never panics on a raw token and refuses
// every token it does not accept with an Unauthorized error; the seeds
// include a token the verifier accepts and damaged copies of it. It also
// reads the token as an Authorization header (BearerToken) and answers a
// refusal's WWW-Authenticate, whose error_description never breaks out of
// its quotes.
func FuzzVerify(f *testing.F) {
	key := authtest.RSAKey(f, "k1")
	const iss = "http://127.0.0.1/auth"
	v, err := NewLocalVerifier(VerifierConfig{Issuer: iss, Audience: testAudience}, []jose.JSONWebKey{key})
	if err != nil {
		f.Fatal(err)
	}
	good := authtest.SignJWT(f, key, jose.RS256, map[string]any{"iss": iss, "sub": "s", "aud": testAudience,
		"exp": time.Now().Add(24 * time.Hour).Unix(), "scope": "system/*.cruds", "client_id": "c", "role": "referrer"})
	if _, err := v.Verify(context.Background(), good); err != nil {
		f.Fatalf("the good seed is refused: %v", err)
	}
	parts := strings.Split(good, ".")
	for _, s := range []string{good, "", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".e30." + parts[2],
		strings.ToUpper(good), good + "x", "Bearer " + good, `"quoted\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(context.Background(), raw)
		if err == nil {
			if p.Issuer != iss {
				t.Fatalf("accepted a token of issuer %q", p.Issuer)
			}
		} else if fhir.KindOf(err) != fhir.Unauthorized {
			t.Fatalf("Verify(%q): error of kind %v, want Unauthorized: %v", raw, fhir.KindOf(err), err)
		}
		if err != nil {
			h := WWWAuthenticate("signpost", err)
			if strings.Count(h, `"`)%2 != 0 || strings.ContainsAny(h, "\r\n") {
				t.Fatalf("WWW-Authenticate %q", h)
			}
		}
		tok, err := BearerToken(raw)
		if err != nil {
			if fhir.KindOf(err) != fhir.Unauthorized {
				t.Fatalf("BearerToken(%q): error of kind %v", raw, fhir.KindOf(err))
			}
			return
		}
		if raw != "" && (tok == "" || !strings.Contains(raw, tok)) {
			t.Fatalf("BearerToken(%q) = %q", raw, tok)
		}
	})
}
