package api_test

import (
	"bytes"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/write"
)

// TestIdempotencyAfterAuthentication: Idempotency-Keys are claimed after
// the token is verified and scoped by the verified principal: a new token
// of the same caller gets the replay, a bad token never does (401 before
// any replay), and two callers' equal keys are two keys.
func TestIdempotencyAfterAuthentication(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	callCentre := func() string {
		return s.mint(t, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	}
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.cruds", Patient: "pat-a"})
	const proposal = `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-a"},"status":"needs-action"}]}`
	send := func(tok, body string) response {
		h := bearer(tok)
		h["Idempotency-Key"] = "k1"
		return s.do(request{method: "POST", path: "Appointment", body: body, header: h})
	}
	idOf := func(r response) string {
		id, _ := decode(t, r.body)["id"].(string)
		return id
	}

	first := send(callCentre(), proposal)
	if first.status != 201 || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d (replayed %q), want 201, not replayed: %s", first.status, first.header.Get("Idempotent-Replayed"), first.body)
	}
	again := send(callCentre(), proposal) // another token of the same caller
	if again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || idOf(again) != idOf(first) {
		t.Errorf("retry: %d (replayed %q) %s, want 201 replaying %s", again.status, again.header.Get("Idempotent-Replayed"), idOf(again), idOf(first))
	}

	valid := callCentre()
	for name, tok := range map[string]string{
		"tampered signature": valid[:len(valid)-4] + "AAAA",
		"unsigned":           jwt(map[string]any{"alg": "none"}, map[string]any{"sub": devserver.ClientCallCentre, "client_id": devserver.ClientCallCentre}, func([]byte) []byte { return nil }),
		"garbage":            "not-a-token",
	} {
		r := send(tok, proposal)
		if r.status != 401 || r.header.Get("Idempotent-Replayed") != "" || bytes.Contains(r.body, []byte(idOf(first))) {
			t.Errorf("%s token: %d (replayed %q), want 401 and no replay: %s", name, r.status, r.header.Get("Idempotent-Replayed"), r.body)
		}
	}

	other := send(patA, proposal) // the same key from another client acts
	if other.status != 201 || other.header.Get("Idempotent-Replayed") != "" || idOf(other) == idOf(first) {
		t.Errorf("same key, other client: %d (replayed %q) %s, want a new 201", other.status, other.header.Get("Idempotent-Replayed"), idOf(other))
	}
	if r := send(patA, proposal); r.header.Get("Idempotent-Replayed") != "true" || idOf(r) != idOf(other) {
		t.Errorf("other client's retry: replayed %q %s, want its own answer %s", r.header.Get("Idempotent-Replayed"), idOf(r), idOf(other))
	}

	changed := `{"resourceType":"Appointment","status":"proposed","comment":"other","participant":[{"actor":{"reference":"Patient/pat-a"},"status":"needs-action"}]}`
	if r := send(callCentre(), changed); r.status != 422 || !bytes.Contains(r.body, []byte(write.ErrIdempotencyKeyReuse)) {
		t.Errorf("same key, other request: %d %s, want 422 %s", r.status, r.body, write.ErrIdempotencyKeyReuse)
	}
}
