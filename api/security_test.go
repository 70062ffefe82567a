package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// secret marks every resource of patient B and of the second provider: no
// response to anyone else may contain it.
const secret = "SECRET-B"

// secureServer is the real server with authorisation on (the embedded
// development authorisation server), seeded with testdata/security.
type secureServer struct {
	*server
	issuer string
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSecureServer(t testing.TB, cfg app.Config) *secureServer {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Auth = true
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := &secureServer{server: newServer(t, cfg), logs: logs}
	s.issuer = s.app.Auth.Issuer()
	seedStore(t, s.app, "testdata/security/seed.json")
	return s
}

// seedStore writes a collection Bundle's resources straight into the store
// (index included), bypassing the write path: the fixtures are the state
// under attack, not something a client wrote.
func seedStore(t testing.TB, a *app.App, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	err = a.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, e := range b.Entry {
			obj, err := fhir.ParseObject(e.Resource)
			if err != nil {
				return err
			}
			typ, _ := obj.String("resourceType")
			id, _ := obj.String("id")
			body, err := fhir.Stamp(obj, id, 1, now)
			if err != nil {
				return err
			}
			idx, err := a.Search.Extract(typ, body)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", typ, id, err)
			}
			res := &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: now, JSON: body}
			if err := tx.Put(ctx, &store.Write{Resource: res, Index: idx}); err != nil {
				return fmt.Errorf("%s/%s: %w", typ, id, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seeding %s: %v", path, err)
	}
}

// mint returns a token from the development server, as signpost token does.
func (s *secureServer) mint(t testing.TB, opts devserver.TokenOptions) string {
	t.Helper()
	tok, err := devserver.MintToken(s.app.Config.Data, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signingKey reads the development server's signing key and its kid.
func (s *secureServer) signingKey(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(auth.DevDir(s.app.Config.Data), "signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key := k.(*rsa.PrivateKey)
	tp, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return key, base64.RawURLEncoding.EncodeToString(tp)
}

// patientClaims are the claims of a valid patient-app token for pat-a.
func (s *secureServer) patientClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": s.issuer, "sub": "Patient/pat-a", "aud": []string{s.base, devserver.ClientPatientApp},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": fmt.Sprint(now.UnixNano()),
		"client_id": devserver.ClientPatientApp, "scope": "patient/*.cruds", "patient": "pat-a", "role": "patient",
	}
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// jwt assembles a compact JWS with any header, claims and signature.
func jwt(header, claims map[string]any, sign func(input []byte) []byte) string {
	input := b64json(header) + "." + b64json(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func rs256(key *rsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

// craft signs claims (changed by edit) with the server's key.
func (s *secureServer) craft(t testing.TB, edit func(map[string]any)) string {
	t.Helper()
	key, kid := s.signingKey(t)
	c := s.patientClaims()
	edit(c)
	return jwt(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, c, rs256(key))
}

// storeState lists every stored version except the audit trail's.
func storeState(t testing.TB, a *app.App) []string {
	t.Helper()
	page, err := a.Store.History(context.Background(), store.HistoryQuery{Count: 100000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range page.Versions {
		if v.Type != "AuditEvent" {
			out = append(out, fmt.Sprintf("%s/%s/%d", v.Type, v.ID, v.Version))
		}
	}
	slices.Sort(out)
	return out
}

// audits returns the stored AuditEvents, after flushing the buffer.
func audits(t testing.TB, a *app.App) []map[string]any {
	t.Helper()
	a.API.Flush()
	page, err := a.Store.Search(context.Background(), &search.Query{Type: "AuditEvent", Count: 100000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(page.Resources))
	for i, r := range page.Resources {
		if err := json.Unmarshal(r.JSON, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// TestAdversarial attacks the server with auth on: bad tokens, scopes that
// do not reach, patient A after patient B's data, providers after each
// other's referrals, the audit trail. Each row asserts the status, an
// OperationOutcome for a refusal, that no response carries patient B's (or
// the other provider's) data, that nothing but the audit trail changed, and
// that the attempt was audited (refusals with a failure outcome).
func TestAdversarial(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	key, kid := s.signingKey(t)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := s.craft(t, func(map[string]any) {})
	parts := strings.Split(valid, ".")
	tamperedClaims := s.patientClaims()
	tamperedClaims["patient"] = "pat-b"

	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.cruds", Patient: "pat-a"})
	patAAppt := s.mint(t, devserver.TokenOptions{Scope: "patient/Appointment.rs", Patient: "pat-a"})
	patASlot := s.mint(t, devserver.TokenOptions{Scope: "patient/Slot.rs", Patient: "pat-a"})
	openID := s.mint(t, devserver.TokenOptions{Scope: "openid fhirUser", Patient: "pat-a"})
	nhsLogin := s.craft(t, func(c map[string]any) {
		delete(c, "patient")
		c["nhs_number"] = "9434765919"
		c["scope"] = "patient/*.rs"
	})
	provider := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider})
	otherReferrer := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem, Org: "A99002"})
	callCentreAudit := s.mint(t, devserver.TokenOptions{Scope: "user/AuditEvent.rs", Client: devserver.ClientCallCentre})
	wildcardRead := s.mint(t, devserver.TokenOptions{Scope: "system/*.rs", Client: devserver.ClientCallCentre})
	admin := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientCallCentre})

	appt := func(patient, status string) string {
		return `{"resourceType":"Appointment","status":"` + status + `","start":"2030-02-01T09:00:00Z","end":"2030-02-01T09:30:00Z",` +
			`"participant":[{"actor":{"reference":"Patient/` + patient + `"},"status":"accepted"}]}`
	}
	apptWithID := func(id, patient, status string) string {
		return `{"resourceType":"Appointment","id":"` + id + `","status":"` + status + `","start":"2030-01-07T10:00:00Z","end":"2030-01-07T10:30:00Z",` +
			`"participant":[{"actor":{"reference":"Patient/` + patient + `"},"status":"accepted"}]}`
	}
	smuggle := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:6f1c1f1e-0000-4000-8000-000000000001","resource":` + appt("pat-a", "proposed") + `,"request":{"method":"POST","url":"Appointment"}},` +
		`{"resource":{"resourceType":"Patient","id":"pat-b","name":[{"family":"Hijacked"}]},"request":{"method":"PUT","url":"Patient/pat-b"}}]}`
	// The second provider's directory: a provider may write only its own.
	providerUser := s.mint(t, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientProvider})
	providerNoOrg := s.craft(t, func(c map[string]any) {
		delete(c, "patient")
		c["sub"], c["client_id"], c["aud"] = devserver.ClientProvider, devserver.ClientProvider, []string{s.base}
		c["scope"], c["role"] = "system/*.cruds", "provider"
	})
	referrer := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem})
	slot := func(id, schedule, status string) string {
		idMember := ""
		if id != "" {
			idMember = `"id":"` + id + `",`
		}
		return `{"resourceType":"Slot",` + idMember + `"schedule":{"reference":"Schedule/` + schedule + `"},"status":"` + status + `",` +
			`"start":"2030-01-08T09:00:00Z","end":"2030-01-08T09:30:00Z"}`
	}
	schedule := func(id string, actors ...string) string {
		idMember := ""
		if id != "" {
			idMember = `"id":"` + id + `",`
		}
		var refs []string
		for _, a := range actors {
			refs = append(refs, `{"reference":"`+a+`"}`)
		}
		return `{"resourceType":"Schedule",` + idMember + `"actor":[` + strings.Join(refs, ",") + `]}`
	}
	referral := func(requester string) string {
		req := ""
		if requester != "" {
			req = `"requester":{"reference":"` + requester + `"},`
		}
		return `{"resourceType":"ServiceRequest","status":"active","intent":"order",` + req +
			`"subject":{"reference":"Patient/pat-a"},"performer":[{"reference":"HealthcareService/hs-prov"}]}`
	}
	slotSmuggle := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:6f1c1f1e-0000-4000-8000-000000000002","resource":` + slot("", "sched-1", "free") + `,"request":{"method":"POST","url":"Slot"}},` +
		`{"resource":` + slot("slot-3", "sched-2", "free") + `,"request":{"method":"PUT","url":"Slot/slot-3"}}]}`

	// Granular scopes on writes: the resource must match the query before
	// and after, and stay in the patient's compartment.
	proposeOnly := s.mint(t, devserver.TokenOptions{Scope: "patient/Appointment.cru?status=proposed", Patient: "pat-a"})
	lettersOnly := s.mint(t, devserver.TokenOptions{Scope: "patient/DocumentReference.cu?category=http://loinc.org|11488-4", Patient: "pat-a"})
	document := func(patient, category string) string {
		return `{"resourceType":"DocumentReference","status":"current","category":[{"coding":[{"system":"http://loinc.org","code":"` + category + `"}]}],` +
			`"subject":{"reference":"Patient/` + patient + `"},"content":[{"attachment":{"contentType":"text/plain","data":"aGk="}}]}`
	}

	batchRead := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Appointment/appt-b"}},{"request":{"method":"GET","url":"Appointment?patient=Patient/pat-b"}}]}`

	rows := []struct {
		name    string
		auth    map[string]string // request headers
		method  string
		path    string
		body    string
		ctype   string
		status  int
		present []string // the body must contain these
	}{
		// Tokens.
		{name: "no token", path: "Appointment/appt-a", status: 401},
		{name: "basic credentials instead of a bearer token", auth: map[string]string{"Authorization": "Basic cGF0aWVudC1hcHA6eA=="}, path: "Appointment/appt-a", status: 401},
		{name: "not a JWT", auth: bearer("not-a-token"), path: "Appointment/appt-a", status: 401},
		{name: "expired", auth: bearer(s.craft(t, func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Hour).Unix() })), path: "Appointment/appt-a", status: 401, present: []string{"TOKEN_EXPIRED"}},
		{name: "not yet valid", auth: bearer(s.craft(t, func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), path: "Appointment/appt-a", status: 401},
		{name: "wrong issuer", auth: bearer(s.craft(t, func(c map[string]any) { c["iss"] = "https://evil.example/auth" })), path: "Appointment/appt-a", status: 401},
		{name: "wrong audience", auth: bearer(s.craft(t, func(c map[string]any) { c["aud"] = "https://other.example/fhir" })), path: "Appointment/appt-a", status: 401},
		{name: "alg none", auth: bearer(jwt(map[string]any{"alg": "none", "typ": "JWT"}, s.patientClaims(), func([]byte) []byte { return nil })), path: "Appointment/appt-a", status: 401},
		{name: "HS256 signed with the public key", auth: bearer(jwt(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, s.patientClaims(), func(in []byte) []byte {
			m := hmac.New(sha256.New, pubPEM)
			m.Write(in)
			return m.Sum(nil)
		})), path: "Appointment/appt-b", status: 401},
		{name: "tampered payload", auth: bearer(parts[0] + "." + b64json(tamperedClaims) + "." + parts[2]), path: "Appointment/appt-b", status: 401},
		{name: "unknown kid", auth: bearer(jwt(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "rotated-away"}, s.patientClaims(), rs256(otherKey))), path: "Appointment/appt-a", status: 401},
		{name: "known kid, foreign key", auth: bearer(jwt(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, s.patientClaims(), rs256(otherKey))), path: "Appointment/appt-a", status: 401},

		// Scopes.
		{name: "missing scope", auth: bearer(openID), path: "Appointment/appt-a", status: 403},
		{name: "scope for another type: read", auth: bearer(patASlot), path: "Appointment/appt-a", status: 403},
		{name: "scope for another type: search", auth: bearer(patASlot), path: "Appointment", status: 403},
		{name: "read scope cannot write", auth: bearer(patAAppt), method: "POST", path: "Appointment", body: appt("pat-a", "proposed"), status: 403},

		// Patient A after patient B's data: reads.
		{name: "A reads B's appointment", auth: bearer(patA), path: "Appointment/appt-b", status: 404},
		{name: "A reads B's Patient", auth: bearer(patA), path: "Patient/pat-b", status: 404},
		{name: "A reads B's document", auth: bearer(patA), path: "DocumentReference/doc-b", status: 404},
		{name: "A reads B's referral", auth: bearer(patA), path: "ServiceRequest/sr-b", status: 404},
		{name: "A vreads B's appointment", auth: bearer(patA), path: "Appointment/appt-b/_history/1", status: 404},
		{name: "A reads the history of B's appointment", auth: bearer(patA), path: "Appointment/appt-b/_history", status: 404},
		{name: "A reads the Appointment type history", auth: bearer(patA), path: "Appointment/_history", status: 200, present: []string{"appt-a"}},
		{name: "A reads the system history", auth: bearer(patA), path: "_history", status: 200, present: []string{"appt-a"}},
		{name: "NHS login token reads B's appointment", auth: bearer(nhsLogin), path: "Appointment/appt-b", status: 404},

		// Searches.
		{name: "A searches every appointment", auth: bearer(patA), path: "Appointment?_total=accurate", status: 200, present: []string{`"total":2`, "appt-a", "appt-ab"}},
		{name: "A searches B's appointments", auth: bearer(patA), path: "Appointment?patient=Patient/pat-b&_total=accurate", status: 200, present: []string{`"total":1`, "appt-ab"}},
		{name: "A counts appointments", auth: bearer(patA), path: "Appointment?_summary=count", status: 200, present: []string{`"total":2`}},
		{name: "A counts B's documents", auth: bearer(patA), path: "DocumentReference?subject=Patient/pat-b&_summary=count", status: 200, present: []string{`"total":0`}},
		{name: "A searches Patients", auth: bearer(patA), path: "Patient?_total=accurate", status: 200, present: []string{`"total":1`}},
		{name: "A searches referrals", auth: bearer(patA), path: "ServiceRequest?_total=accurate", status: 200, present: []string{`"total":1`}},
		{name: "A searches with POST _search", auth: bearer(patA), method: "POST", path: "Appointment/_search", body: "patient=Patient/pat-b&_total=accurate", ctype: "application/x-www-form-urlencoded", status: 200, present: []string{`"total":1`}},
		{name: "NHS login token searches appointments", auth: bearer(nhsLogin), path: "Appointment?_total=accurate", status: 200, present: []string{`"total":2`}},
		{name: "A _includes B's Patient", auth: bearer(patA), path: "Appointment?_id=appt-ab&_include=Appointment:actor", status: 200, present: []string{"pat-a"}},
		{name: "A _revincludes B's appointment from a slot", auth: bearer(patA), path: "Slot?_id=slot-2&_revinclude=Appointment:slot&_include:iterate=Appointment:actor", status: 200, present: []string{"slot-2"}},
		{name: "A _revincludes B's appointments from a practitioner", auth: bearer(patA), path: "Practitioner?_id=prac-2&_revinclude=Appointment:practitioner", status: 200, present: []string{"prac-2"}},
		{name: "A chains into B's Patient", auth: bearer(patA), path: "Appointment?patient.family=Baker&_total=accurate", status: 200, present: []string{`"total":0`}},
		{name: "A chains into a type the token cannot search", auth: bearer(patAAppt), path: "Appointment?patient.family=Baker", status: 403},
		{name: "A _has from B's appointments", auth: bearer(patA), path: "Practitioner?_has:Appointment:practitioner:patient=Patient/pat-b&_total=accurate", status: 200, present: []string{`"total":0`}},
		{name: "A _has into a type the token cannot search", auth: bearer(patASlot), path: "Slot?_has:Appointment:slot:patient=Patient/pat-b", status: 403},
		{name: "A reads B's data in a batch", auth: bearer(patA), method: "POST", path: "", body: batchRead, status: 200, present: []string{`"status":"404 Not Found"`, "batch-response"}},
		{name: "A searches across types", auth: bearer(patA), path: "/fhir?_type=Appointment,Patient", status: 403},

		// Writes for another patient.
		{name: "A books for B", auth: bearer(patA), method: "POST", path: "Appointment", body: appt("pat-b", "proposed"), status: 403},
		{name: "A cancels B's appointment", auth: bearer(patA), method: "PUT", path: "Appointment/appt-b", body: apptWithID("appt-b", "pat-b", "cancelled"), status: 403},
		{name: "A takes over B's appointment", auth: bearer(patA), method: "PUT", path: "Appointment/appt-b", body: apptWithID("appt-b", "pat-a", "booked"), status: 403},
		{name: "A deletes B's appointment", auth: bearer(patA), method: "DELETE", path: "Appointment/appt-b", status: 403},
		{name: "A patches B's appointment", auth: bearer(patA), method: "PATCH", path: "Appointment/appt-b", body: `[{"op":"replace","path":"/status","value":"cancelled"}]`, ctype: "application/json-patch+json", status: 403},
		{name: "A updates B's Patient", auth: bearer(patA), method: "PUT", path: "Patient/pat-b", body: `{"resourceType":"Patient","id":"pat-b","name":[{"family":"Hijacked"}]}`, status: 403},
		{name: "A writes the directory", auth: bearer(patA), method: "PUT", path: "Slot/slot-2", body: `{"resourceType":"Slot","id":"slot-2","schedule":{"reference":"Schedule/sched-1"},"status":"free","start":"2030-01-07T10:00:00Z","end":"2030-01-07T10:30:00Z"}`, status: 403},
		{name: "A smuggles B's Patient into a transaction", auth: bearer(patA), method: "POST", path: "", body: smuggle, status: 403},

		// Granular scopes on writes.
		{name: "propose-only scope books an appointment", auth: bearer(proposeOnly), method: "POST", path: "Appointment", body: appt("pat-a", "booked"), status: 403, present: []string{"granular"}},
		{name: "propose-only scope cancels a booked appointment", auth: bearer(proposeOnly), method: "PUT", path: "Appointment/appt-a",
			body: `{"resourceType":"Appointment","id":"appt-a","status":"cancelled","participant":[{"actor":{"reference":"Patient/pat-a"},"status":"accepted"}]}`, status: 403, present: []string{"granular"}},
		{name: "propose-only scope turns a proposal into a booking", auth: bearer(proposeOnly), method: "PATCH", path: "Appointment/appt-ab",
			body:  `[{"op":"replace","path":"/status","value":"booked"},{"op":"add","path":"/start","value":"2030-03-01T09:00:00Z"},{"op":"add","path":"/end","value":"2030-03-01T09:30:00Z"}]`,
			ctype: "application/json-patch+json", status: 403, present: []string{"granular"}},
		{name: "propose-only scope deletes a booked appointment", auth: bearer(proposeOnly), method: "DELETE", path: "Appointment/appt-a", status: 403},
		{name: "propose-only scope proposes for B", auth: bearer(proposeOnly), method: "POST", path: "Appointment", body: appt("pat-b", "proposed"), status: 403},
		{name: "letters-only scope writes another category", auth: bearer(lettersOnly), method: "POST", path: "DocumentReference", body: document("pat-a", "18842-5"), status: 403, present: []string{"granular"}},
		{name: "letters-only scope writes a letter for B", auth: bearer(lettersOnly), method: "POST", path: "DocumentReference", body: document("pat-b", "11488-4"), status: 403},

		// Organisations.
		{name: "provider reads another provider's referral", auth: bearer(provider), path: "ServiceRequest/sr-b", status: 404},
		{name: "provider reads another provider's task", auth: bearer(provider), path: "Task/task-b", status: 404},
		{name: "provider searches referrals", auth: bearer(provider), path: "ServiceRequest?_total=accurate", status: 200, present: []string{`"total":1`, "sr-a"}},
		{name: "provider searches tasks", auth: bearer(provider), path: "Task?_total=accurate", status: 200, present: []string{`"total":1`, "task-a"}},
		{name: "provider changes another provider's referral", auth: bearer(provider), method: "PUT", path: "ServiceRequest/sr-b",
			body: `{"resourceType":"ServiceRequest","id":"sr-b","status":"revoked","intent":"order","subject":{"reference":"Patient/pat-b"}}`, status: 403},
		{name: "provider creates a slot in another provider's schedule", auth: bearer(provider), method: "POST", path: "Slot", body: slot("", "sched-2", "free"), status: 403, present: []string{"organisation"}},
		{name: "provider updates another provider's slot", auth: bearer(provider), method: "PUT", path: "Slot/slot-3", body: slot("slot-3", "sched-2", "busy-tentative"), status: 403, present: []string{"organisation"}},
		{name: "provider sets another provider's slot free", auth: bearer(provider), method: "PATCH", path: "Slot/slot-3", body: `[{"op":"replace","path":"/status","value":"free"}]`, ctype: "application/json-patch+json", status: 403, present: []string{"organisation"}},
		{name: "provider sets another provider's slot free with PUT", auth: bearer(provider), method: "PUT", path: "Slot/slot-3", body: slot("slot-3", "sched-2", "free"), status: 403, present: []string{"organisation"}},
		{name: "provider moves another provider's slot into its own schedule", auth: bearer(provider), method: "PUT", path: "Slot/slot-3", body: slot("slot-3", "sched-1", "free"), status: 403, present: []string{"organisation"}},
		{name: "provider moves its own slot into another provider's schedule", auth: bearer(provider), method: "PUT", path: "Slot/slot-2", body: slot("slot-2", "sched-2", "busy"), status: 403, present: []string{"organisation"}},
		{name: "provider deletes another provider's slot", auth: bearer(provider), method: "DELETE", path: "Slot/slot-3", status: 403, present: []string{"organisation"}},
		{name: "provider user token sets another provider's slot free", auth: bearer(providerUser), method: "PUT", path: "Slot/slot-3", body: slot("slot-3", "sched-2", "free"), status: 403, present: []string{"organisation"}},
		{name: "provider token without an organisation writes a slot", auth: bearer(providerNoOrg), method: "POST", path: "Slot", body: slot("", "sched-1", "free"), status: 403, present: []string{"organisation"}},
		{name: "provider smuggles another provider's slot into a transaction", auth: bearer(provider), method: "POST", path: "", body: slotSmuggle, status: 403, present: []string{"organisation"}},
		{name: "provider creates a schedule for another provider's service", auth: bearer(provider), method: "POST", path: "Schedule", body: schedule("", "HealthcareService/hs-prov2"), status: 403, present: []string{"organisation"}},
		{name: "provider creates a schedule for another provider's practitioner role", auth: bearer(provider), method: "POST", path: "Schedule", body: schedule("", "PractitionerRole/role-prov2"), status: 403, present: []string{"organisation"}},
		{name: "provider creates a schedule at another provider's location", auth: bearer(provider), method: "POST", path: "Schedule", body: schedule("", "Location/loc-prov2"), status: 403, present: []string{"organisation"}},
		{name: "provider creates a schedule shared with another provider", auth: bearer(provider), method: "POST", path: "Schedule", body: schedule("", "HealthcareService/hs-prov", "HealthcareService/hs-prov2"), status: 403, present: []string{"organisation"}},
		{name: "provider creates a schedule of no organisation", auth: bearer(provider), method: "POST", path: "Schedule", body: schedule("", "Practitioner/prac-1"), status: 403, present: []string{"organisation"}},
		{name: "provider takes over another provider's schedule", auth: bearer(provider), method: "PUT", path: "Schedule/sched-2", body: schedule("sched-2", "HealthcareService/hs-prov"), status: 403, present: []string{"organisation"}},
		{name: "provider deletes another provider's schedule", auth: bearer(provider), method: "DELETE", path: "Schedule/sched-2", status: 403, present: []string{"organisation"}},
		{name: "provider takes over another provider's service", auth: bearer(provider), method: "PUT", path: "HealthcareService/hs-prov2",
			body: `{"resourceType":"HealthcareService","id":"hs-prov2","providedBy":{"reference":"Organization/org-prov"},"name":"Dermatology"}`, status: 403, present: []string{"organisation"}},
		{name: "provider renames another provider's organisation code", auth: bearer(provider), method: "PUT", path: "Organization/org-prov2",
			body: `{"resourceType":"Organization","id":"org-prov2","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"R9901"}]}`, status: 403, present: []string{"organisation"}},
		{name: "referrer writes a provider's slot", auth: bearer(referrer), method: "PUT", path: "Slot/slot-3", body: slot("slot-3", "sched-2", "free"), status: 403, present: []string{"organisation"}},
		{name: "referrer creates a referral for another practice", auth: bearer(otherReferrer), method: "POST", path: "ServiceRequest", body: referral("Organization/org-gp"), status: 403, present: []string{"organisation"}},
		{name: "referrer creates a referral from another practice's practitioner role", auth: bearer(otherReferrer), method: "POST", path: "ServiceRequest", body: referral("PractitionerRole/role-gp"), status: 403, present: []string{"organisation"}},
		{name: "referrer creates a referral without a requester", auth: bearer(referrer), method: "POST", path: "ServiceRequest", body: referral(""), status: 403, present: []string{"organisation"}},
		{name: "referrer creates a referral from a practitioner of no organisation", auth: bearer(referrer), method: "POST", path: "ServiceRequest", body: referral("Practitioner/prac-1"), status: 403, present: []string{"organisation"}},
		{name: "referrer hands its referral to another organisation", auth: bearer(referrer), method: "PUT", path: "ServiceRequest/sr-a",
			body: `{"resourceType":"ServiceRequest","id":"sr-a","status":"active","intent":"order","subject":{"reference":"Patient/pat-a"},"requester":{"reference":"Organization/org-prov2"}}`, status: 403, present: []string{"organisation"}},
		{name: "referrer of another practice searches referrals", auth: bearer(otherReferrer), path: "ServiceRequest?_total=accurate", status: 200, present: []string{`"total":0`}},

		// The audit trail.
		{name: "auditor scope without the auditor role", auth: bearer(callCentreAudit), path: "AuditEvent", status: 403},
		{name: "wildcard scope searches the audit trail", auth: bearer(wildcardRead), path: "AuditEvent", status: 403},
		{name: "patient searches the audit trail", auth: bearer(patA), path: "AuditEvent", status: 403},
		{name: "client writes an AuditEvent", auth: bearer(admin), method: "POST", path: "AuditEvent",
			body: `{"resourceType":"AuditEvent","type":{"code":"rest"},"recorded":"2030-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`, status: 403},
	}
	if len(rows) < 40 {
		t.Fatalf("only %d rows", len(rows))
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			before := storeState(t, s.app)
			auditsBefore := len(audits(t, s.app))
			h := map[string]string{}
			for k, v := range r.auth {
				h[k] = v
			}
			if r.ctype != "" {
				h["Content-Type"] = r.ctype
			}
			method := r.method
			if method == "" {
				method = "GET"
			}
			got := s.do(request{method: method, path: r.path, body: r.body, header: h})
			if got.status != r.status {
				t.Fatalf("status %d, want %d; body: %s", got.status, r.status, got.body)
			}
			if r.status >= 400 {
				if rt := decode(t, got.body)["resourceType"]; rt != "OperationOutcome" {
					t.Errorf("body is a %v, want an OperationOutcome: %s", rt, got.body)
				}
			}
			if r.status == 401 && !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got.header.Get("WWW-Authenticate"))
			}
			if bytes.Contains(got.body, []byte(secret)) || bytes.Contains(got.body, []byte("9434765870")) {
				t.Errorf("the response leaks patient B's or another provider's data: %s", got.body)
			}
			for _, want := range r.present {
				if !bytes.Contains(got.body, []byte(want)) {
					t.Errorf("the response lacks %q: %s", want, got.body)
				}
			}
			if after := storeState(t, s.app); !slices.Equal(before, after) {
				t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
			}
			all := audits(t, s.app)
			if len(all) <= auditsBefore {
				t.Fatalf("no AuditEvent recorded the attempt")
			}
			if r.status >= 400 {
				failed := false
				for _, ev := range all[auditsBefore:] {
					failed = failed || ev["outcome"] != "0"
				}
				if !failed {
					t.Errorf("no AuditEvent records the refusal: %v", all[auditsBefore:])
				}
			}
		})
	}
	// The tokens, whole or as their signature, never reach the logs.
	logs := s.logs.String()
	for _, tok := range []string{patA, provider, admin, valid} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(logs, sig) {
			t.Errorf("a token reached the logs")
		}
	}
}

// TestPositiveControls checks that the restrictions above still let each
// caller do their job.
func TestPositiveControls(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.cruds", Patient: "pat-a"})
	provider := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider})
	referrer := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem})
	callCentre := s.mint(t, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	auditor := s.mint(t, devserver.TokenOptions{Scope: "user/AuditEvent.rs", Client: devserver.ClientAuditor})
	for _, r := range []struct {
		name    string
		tok     string
		method  string
		path    string
		body    string
		status  int
		present string
	}{
		{"A reads her appointment", patA, "GET", "Appointment/appt-a", "", 200, "appt-a"},
		{"A reads herself", patA, "GET", "Patient/pat-a", "", 200, "Able"},
		{"A searches the directory", patA, "GET", "HealthcareService?_total=accurate", "", 200, `"total":2`},
		{"A searches free slots", patA, "GET", "Slot?_total=accurate", "", 200, `"total":3`},
		{"A proposes an appointment for herself", patA, "POST", "Appointment", `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-a"},"status":"needs-action"}]}`, 201, "pat-a"},
		{"provider reads its referral", provider, "GET", "ServiceRequest/sr-a", "", 200, "sr-a"},
		{"referrer reads the referrals it made", referrer, "GET", "ServiceRequest?_total=accurate", "", 200, `"total":2`},
		{"call centre reads B's appointment", callCentre, "GET", "Appointment/appt-b", "", 200, "appt-b"},
		{"call centre proposes an appointment for B", callCentre, "POST", "Appointment", `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-b"},"status":"needs-action"}]}`, 201, "pat-b"},
		{"provider creates a slot in its own schedule", provider, "POST", "Slot", `{"resourceType":"Slot","schedule":{"reference":"Schedule/sched-1"},"status":"free","start":"2030-01-09T09:00:00Z","end":"2030-01-09T09:30:00Z"}`, 201, "sched-1"},
		{"provider creates a schedule for its service and practitioner", provider, "POST", "Schedule", `{"resourceType":"Schedule","actor":[{"reference":"HealthcareService/hs-prov"},{"reference":"Practitioner/prac-1"}]}`, 201, "hs-prov"},
		{"provider updates its own schedule", provider, "PUT", "Schedule/sched-1", `{"resourceType":"Schedule","id":"sched-1","active":true,"actor":[{"reference":"HealthcareService/hs-prov"}]}`, 200, `"active":true`},
		{"referrer creates a referral from its practice", referrer, "POST", "ServiceRequest", `{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/pat-a"},"requester":{"reference":"Organization/org-gp"}}`, 201, "org-gp"},
		{"referrer creates a referral from its practitioner role", referrer, "POST", "ServiceRequest", `{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/pat-a"},"requester":{"reference":"PractitionerRole/role-gp"}}`, 201, "role-gp"},
		{"propose-only scope proposes for A", s.mint(t, devserver.TokenOptions{Scope: "patient/Appointment.cru?status=proposed", Patient: "pat-a"}), "POST", "Appointment",
			`{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-a"},"status":"needs-action"}]}`, 201, "proposed"},
		{"letters-only scope writes A's letter", s.mint(t, devserver.TokenOptions{Scope: "patient/DocumentReference.cu?category=http://loinc.org|11488-4", Patient: "pat-a"}), "POST", "DocumentReference",
			`{"resourceType":"DocumentReference","status":"current","category":[{"coding":[{"system":"http://loinc.org","code":"11488-4"}]}],"subject":{"reference":"Patient/pat-a"},"content":[{"attachment":{"contentType":"text/plain","data":"aGk="}}]}`, 201, "11488-4"},
		{"auditor searches the audit trail", auditor, "GET", "AuditEvent?_total=accurate", "", 200, "AuditEvent"},
	} {
		t.Run(r.name, func(t *testing.T) {
			got := s.do(request{method: r.method, path: r.path, body: r.body, header: bearer(r.tok)})
			if got.status != r.status || !bytes.Contains(got.body, []byte(r.present)) {
				t.Fatalf("status %d (want %d), body lacks %q: %s", got.status, r.status, r.present, got.body)
			}
			if got.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got.header.Get("Cache-Control"))
			}
		})
	}
}

// TestAuditTrail checks what the records say: a write's record is stored
// in the write's own transaction, a read's within the flush interval.
func TestAuditTrail(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	cc := s.mint(t, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	id := decode(t, s.must(request{method: "POST", path: "Appointment", header: bearer(cc),
		body: `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-b"},"status":"needs-action"}]}`}, 201).body)["id"].(string)

	// Without a flush: the write's record is already stored.
	page, err := s.app.Store.Search(context.Background(), &search.Query{Type: "AuditEvent", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var found map[string]any
	for _, r := range page.Resources {
		if bytes.Contains(r.JSON, []byte(`"Appointment/`+id+`"`)) {
			_ = json.Unmarshal(r.JSON, &found)
		}
	}
	if found == nil {
		t.Fatalf("no AuditEvent for the create in the write transaction")
	}
	b, _ := json.Marshal(found)
	for _, want := range []string{`"action":"C"`, `"code":"create"`, `"value":"call-centre"`, `"value":"Y99001"`, `"outcome":"0"`, `"text":"call-centre"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the write's AuditEvent lacks %s: %s", want, b)
		}
	}

	// A search is recorded with its query; the flusher stores it within a second.
	s.must(request{path: "Appointment?status=booked", header: bearer(cc)}, 200)
	deadline := time.Now().Add(2 * time.Second)
	for {
		page, err := s.app.Store.Search(context.Background(), &search.Query{Type: "AuditEvent", Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		q := base64.StdEncoding.EncodeToString([]byte("status=booked"))
		hit := slices.ContainsFunc(page.Resources, func(r *fhir.Resource) bool { return bytes.Contains(r.JSON, []byte(q)) })
		if hit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the search was not audited within 2 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSmartStandaloneLaunch is a real client (golang.org/x/oauth2 with
// PKCE) completing a SMART standalone launch against the embedded
// authorisation server, picking patient A and reading her appointments.
func TestSmartStandaloneLaunch(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	ctx := context.Background()

	// Discovery, asked for as a browser would: JSON all the same.
	got := s.must(request{path: ".well-known/smart-configuration", header: map[string]string{"Accept": "text/html"}}, 200)
	if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("smart-configuration Content-Type = %q", ct)
	}
	var smart struct {
		Authorize string   `json:"authorization_endpoint"`
		Token     string   `json:"token_endpoint"`
		PKCE      []string `json:"code_challenge_methods_supported"`
	}
	if err := json.Unmarshal(got.body, &smart); err != nil || !slices.Equal(smart.PKCE, []string{"S256"}) {
		t.Fatalf("smart-configuration: %v %s", err, got.body)
	}
	meta := s.must(request{path: "metadata"}, 200)
	if !bytes.Contains(meta.body, []byte(`"code":"SMART-on-FHIR"`)) || !bytes.Contains(meta.body, []byte("restful-security-service")) {
		t.Errorf("CapabilityStatement.rest.security lacks the SMART-on-FHIR service: %.300s", meta.body)
	}

	conf := &oauth2.Config{
		ClientID:    devserver.ClientPatientApp,
		Endpoint:    oauth2.Endpoint{AuthURL: smart.Authorize, TokenURL: smart.Token, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:43210/callback",
		Scopes:      []string{"openid", "fhirUser", "launch/patient", "patient/*.rs"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base))
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := func(resp *http.Response, err error) *url.URL {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		u, err := resp.Location()
		if err != nil {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d, want a redirect: %s", resp.StatusCode, b)
		}
		return u
	}
	login := next(browser.Get(authURL))
	resp, err := browser.Get(login.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(page, []byte(`value="pat-a"`)) || !bytes.Contains(page, []byte("Alice Able")) {
		t.Fatalf("the patient picker does not offer patient A: %s", page)
	}
	// Submit the form as a browser does, with its CSRF token.
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if csrf == nil {
		t.Fatalf("the patient picker's form has no CSRF token: %s", page)
	}
	callback := next(browser.PostForm(login.String(), url.Values{"authRequestID": {login.Query().Get("authRequestID")}, "csrf": {string(csrf[1])}, "patient": {"pat-a"}}))
	back := next(browser.Get(callback.String()))
	if back.Query().Get("state") != "state-1" || back.Query().Get("code") == "" {
		t.Fatalf("redirect back to the app = %s", back)
	}
	tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if tok.Extra("patient") != "pat-a" {
		t.Fatalf("launch context patient = %v, want pat-a", tok.Extra("patient"))
	}

	client := conf.Client(ctx, tok)
	resp, err = client.Get(s.base + "/Appointment?patient=Patient/pat-a")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"id":"appt-a"`)) || bytes.Contains(body, []byte(secret)) {
		t.Fatalf("reading the patient's appointments: status %d: %s", resp.StatusCode, body)
	}
	// The same token cannot write: the app asked for read scopes only.
	req, _ := http.NewRequest("DELETE", s.base+"/Appointment/appt-a", nil)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("DELETE with a read-only token: %v %v", resp.StatusCode, err)
	}
}

// TestHardening checks headers, CORS, rate limits and what stays out of
// responses and logs.
func TestHardening(t *testing.T) {
	s := newSecureServer(t, app.Config{CORSOrigins: []string{"https://app.example"}, RateLimit: 2})
	tok := s.mint(t, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"})

	got := s.do(request{path: "metadata"})
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if got.header.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, got.header.Get(k), want)
		}
	}
	if !strings.Contains(got.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", got.header.Get("Content-Security-Policy"))
	}

	pre := s.do(request{method: "OPTIONS", path: "Appointment", header: map[string]string{
		"Origin": "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}})
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from an allowed origin: %d %v", pre.status, pre.header)
	}
	evil := s.do(request{method: "OPTIONS", path: "Appointment", header: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}})
	if evil.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin allowed: %v", evil.header)
	}

	// Two requests a second, burst four: the fifth quick one is refused.
	var last response
	for range 6 {
		last = s.do(request{path: "Appointment/appt-a", header: bearer(tok)})
		if last.status == 429 {
			break
		}
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" || decode(t, last.body)["resourceType"] != "OperationOutcome" {
		t.Errorf("no 429 with Retry-After after a burst: %d %v %s", last.status, last.header, last.body)
	}

	// Client secrets never reach the log.
	logs := s.logs.String()
	for _, c := range s.app.Auth.Clients() {
		if c.Secret != "" && strings.Contains(logs, c.Secret) {
			t.Errorf("client %s's secret reached the log", c.ID)
		}
	}
	if !strings.Contains(logs, "DEVELOPMENT authorisation server") {
		t.Errorf("the development server was not announced in the log")
	}
}

// BenchmarkSecurityOverhead measures read-by-id and search with
// authorisation and audit on against the same server open.
func BenchmarkSecurityOverhead(b *testing.B) {
	for _, mode := range []string{"open", "auth"} {
		var s *server
		var h map[string]string
		if mode == "auth" {
			ss := newSecureServer(b, app.Config{})
			s = ss.server
			h = bearer(ss.mint(b, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"}))
		} else {
			s = newServer(b, app.Config{})
			seedStore(b, s.app, "testdata/security/seed.json")
		}
		for _, q := range []struct{ name, path string }{{"read", "Appointment/appt-a"}, {"search", "Appointment?status=booked"}} {
			b.Run(q.name+"/"+mode, func(b *testing.B) {
				for b.Loop() {
					if got := s.do(request{path: q.path, header: h}); got.status != 200 {
						b.Fatalf("status %d: %s", got.status, got.body)
					}
				}
			})
		}
	}
}

// TestUBRNBruteForce guesses access codes for one UBRN without a token:
// $ubrn-access is public (the UBRN, code and birth date are the
// credentials), answers every wrong guess alike, and locks the UBRN after
// five failures. Every attempt is audited and changes nothing.
func TestUBRNBruteForce(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	before := storeState(t, s.app)
	auditsBefore := len(audits(t, s.app))
	var statuses []int
	for i := range 7 {
		body := fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"ubrn","valueString":"123456789012"},`+
			`{"name":"access-code","valueString":"GUESS%d"},{"name":"birthdate","valueString":"1980-01-01"}]}`, i)
		got := s.do(request{method: "POST", path: "ServiceRequest/$ubrn-access", body: body})
		statuses = append(statuses, got.status)
		if decode(t, got.body)["resourceType"] != "OperationOutcome" {
			t.Errorf("attempt %d: not an OperationOutcome: %s", i, got.body)
		}
	}
	want := []int{404, 404, 404, 404, 404, 429, 429}
	if !slices.Equal(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	if after := storeState(t, s.app); !slices.Equal(before, after) {
		t.Errorf("the store changed: %v → %v", before, after)
	}
	if n := len(audits(t, s.app)) - auditsBefore; n < len(want) {
		t.Errorf("%d AuditEvents for %d attempts", n, len(want))
	}
}

// TestReferralToken checks the token $ubrn-access hands out: patient A's
// context, reaching her one referral and the directory, nothing else.
func TestReferralToken(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	tok, err := s.app.Auth.MintReferralToken(context.Background(), "pat-a", "sr-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		path   string
		status int
	}{
		{"ServiceRequest/sr-a", 200},
		{"ServiceRequest/sr-b", 404},
		{"Task/task-a", 403}, // not in the Patient compartment
		{"Appointment/appt-a", 200},
		{"Slot/slot-2", 200},
		{"DocumentReference/doc-b", 403},
		{"AuditEvent", 403},
	} {
		if got := s.do(request{path: r.path, header: bearer(tok)}); got.status != r.status || bytes.Contains(got.body, []byte(secret)) {
			t.Errorf("GET %s: status %d, want %d: %s", r.path, got.status, r.status, got.body)
		}
	}
}
