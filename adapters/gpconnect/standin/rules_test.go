package standin_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

// TestHeadersAndJWT: every request needs GP Connect's headers and JWT;
// each rule broken is refused with its code and status, the request
// that keeps them all is answered; the stand-in records what it
// received, the claims decoded.
func TestHeadersAndJWT(t *testing.T) {
	f := newFixture(t)
	find := func(r request) request {
		r.method, r.path, r.interaction = "GET", "/Patient?identifier="+stu3.NHSNumberSystem+"|"+nhs, stu3.InteractionFindPatient
		return r
	}
	enc := base64.RawURLEncoding.EncodeToString
	claimsJSON, _ := json.Marshal(claims(stu3.InteractionFindPatient))
	for _, tc := range []struct {
		name   string
		req    request
		status int
		code   string
	}{
		{"all rules kept", request{}, 200, ""},
		{"no Ssp-TraceID", request{header: func(h http.Header) { h.Del("Ssp-TraceID") }}, 400, stu3.CodeBadRequest},
		{"Ssp-TraceID not a UUID", request{header: func(h http.Header) { h.Set("Ssp-TraceID", "trace-1") }}, 400, stu3.CodeBadRequest},
		{"Ssp-TraceID twice", request{header: func(h http.Header) { h.Add("Ssp-TraceID", "5a4e3e2b-9c3f-4a57-8e43-5a3a4f8d9e10") }}, 400, stu3.CodeBadRequest},
		{"no Ssp-From", request{header: func(h http.Header) { h.Del("Ssp-From") }}, 400, stu3.CodeBadRequest},
		{"Ssp-From not an ASID", request{header: func(h http.Header) { h.Set("Ssp-From", "signpost") }}, 400, stu3.CodeBadRequest},
		{"no Ssp-To", request{header: func(h http.Header) { h.Del("Ssp-To") }}, 400, stu3.CodeBadRequest},
		{"Ssp-To another practice's ASID", request{header: func(h http.Header) { h.Set("Ssp-To", "918999198999") }}, 400, stu3.CodeBadRequest},
		{"no Ssp-InteractionID", request{header: func(h http.Header) { h.Del("Ssp-InteractionID") }}, 400, stu3.CodeBadRequest},
		{"Ssp-InteractionID of another interaction", request{header: func(h http.Header) { h.Set("Ssp-InteractionID", stu3.InteractionSearchSlots) }}, 400, stu3.CodeBadRequest},
		{"no Authorization", request{header: func(h http.Header) { h.Del("Authorization") }}, 400, stu3.CodeBadRequest},
		{"Authorization not Bearer", request{header: func(h http.Header) { h.Set("Authorization", "Basic dXNlcjpwdw==") }}, 400, stu3.CodeBadRequest},
		{"a JWT of two parts", request{token: enc([]byte(`{"alg":"none"}`)) + "." + enc(claimsJSON)}, 400, stu3.CodeBadRequest},
		{"a signed JWT", request{token: enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(claimsJSON) + ".c2ln"}, 400, stu3.CodeBadRequest},
		{"alg HS256", request{token: enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(claimsJSON) + "."}, 400, stu3.CodeBadRequest},
		{"claims not JSON", request{token: enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte("iss")) + "."}, 400, stu3.CodeBadRequest},
		{"no iss", request{claims: func(c *stu3.Claims) { c.Iss = "" }}, 400, stu3.CodeBadRequest},
		{"no sub", request{claims: func(c *stu3.Claims) { c.Sub = "" }}, 400, stu3.CodeBadRequest},
		{"another aud", request{claims: func(c *stu3.Claims) { c.Aud = "https://signpost.example/" }}, 400, stu3.CodeBadRequest},
		{"no iat", request{claims: func(c *stu3.Claims) { c.Iat = 0 }}, 400, stu3.CodeBadRequest},
		{"exp before iat", request{claims: func(c *stu3.Claims) { c.Exp = c.Iat - 1 }}, 400, stu3.CodeBadRequest},
		{"exp more than 300 s after iat", request{claims: func(c *stu3.Claims) { c.Exp = c.Iat + 301 }}, 400, stu3.CodeBadRequest},
		{"exp exactly 300 s after iat", request{claims: func(c *stu3.Claims) { c.Exp = c.Iat + 300 }}, 200, ""},
		{"expired", request{claims: func(c *stu3.Claims) { c.Iat, c.Exp = monday.Unix()-400, monday.Unix()-100 }}, 400, stu3.CodeBadRequest},
		{"issued in the future", request{claims: func(c *stu3.Claims) { c.Iat, c.Exp = monday.Unix()+120, monday.Unix()+400 }}, 400, stu3.CodeBadRequest},
		{"reason other than directcare", request{claims: func(c *stu3.Claims) { c.ReasonForRequest = "secondaryuses" }}, 400, stu3.CodeBadRequest},
		{"a scope other than the interaction's", request{claims: func(c *stu3.Claims) { c.RequestedScope = "patient/*.write" }}, 400, stu3.CodeBadRequest},
		{"no requesting_device", request{claims: func(c *stu3.Claims) { c.RequestingDevice = nil }}, 400, stu3.CodeBadRequest},
		{"a device without a model", request{claims: func(c *stu3.Claims) { c.RequestingDevice.Model = "" }}, 422, stu3.CodeInvalidResource},
		{"no requesting_organization", request{claims: func(c *stu3.Claims) { c.RequestingOrganization = nil }}, 400, stu3.CodeBadRequest},
		{"an organisation without an ODS code", request{claims: func(c *stu3.Claims) { c.RequestingOrganization.Identifier = nil }}, 422, stu3.CodeInvalidResource},
		{"no requesting_practitioner", request{claims: func(c *stu3.Claims) { c.RequestingPractitioner = nil }}, 400, stu3.CodeBadRequest},
		{"a practitioner without an SDS role profile", request{claims: func(c *stu3.Claims) { c.RequestingPractitioner.Identifier = c.RequestingPractitioner.Identifier[:1] }}, 422, stu3.CodeInvalidResource},
		{"a practitioner without a family name", request{claims: func(c *stu3.Claims) { c.RequestingPractitioner.Name = nil }}, 422, stu3.CodeInvalidResource},
		{"sub not the practitioner's id", request{claims: func(c *stu3.Claims) { c.Sub = "2" }}, 400, stu3.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(find(tc.req))
			if a.status != tc.status || a.code != tc.code {
				t.Errorf("got %d %s, want %d %s: %s", a.status, a.code, tc.status, tc.code, a.body)
			}
			reqs := f.s.Requests()
			last := reqs[len(reqs)-1]
			if last.Status != tc.status || last.Code != tc.code || last.Path != "/Patient" {
				t.Errorf("recorded %s %d %s", last.Path, last.Status, last.Code)
			}
			if tc.status == 200 && (last.Claims == nil || last.Claims.RequestingPractitioner.ID != "1" || last.Header.Get("Ssp-From") != consumer) {
				t.Errorf("recorded claims %+v, headers %v", last.Claims, last.Header)
			}
		})
	}
	// A path outside the practice's base and an interaction GP Connect
	// does not define.
	if a := f.do(request{method: "DELETE", path: "/Appointment/1", interaction: stu3.InteractionCancelAppointment}); a.status != 501 || a.code != stu3.CodeNotImplemented {
		t.Errorf("DELETE: %d %s", a.status, a.code)
	}
}
