package referral_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// newSecureClient starts the real server with authorisation on and returns
// a client without a token, seeded with a GP practice (the demo referrer's
// ODS code), a provider with a dermatology service (the demo provider's)
// and a patient. Seeding goes through the repo as a setup principal with
// system scopes.
func newSecureClient(t *testing.T) *client {
	t.Helper()
	a, ts := apptest.New(t, app.Config{Auth: true})
	c := &client{t: t, base: ts.URL + "/fhir", a: a}
	seed := []map[string]any{
		{"resourceType": "Organization", "id": "gp-a", "name": "Demo Practice",
			"identifier": []any{map[string]any{"system": referral.ODSSystem, "value": devserver.DemoGPPractice}}},
		{"resourceType": "Organization", "id": "trust", "name": "Demo Trust",
			"identifier": []any{map[string]any{"system": referral.ODSSystem, "value": devserver.DemoProvider}}},
		{"resourceType": "HealthcareService", "id": "hs-derm", "name": "Dermatology", "providedBy": ref("Organization/trust"),
			"specialty": []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "394582007"}}}}},
		{"resourceType": "Patient", "id": "pat-1", "birthDate": "1980-05-17", "generalPractitioner": []any{ref("Organization/gp-a")},
			"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": "9990000018"}}},
	}
	apptest.Seed(t, a, seed...)
	return c
}

// mint returns a development-server token, as signpost token does.
func (c *client) mint(opts devserver.TokenOptions) string {
	c.t.Helper()
	tok, err := devserver.MintToken(c.a.Config.Data, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// TestProvenanceNamesThePrincipal: with authorisation on, every referral
// Provenance names the signed-in author (subject, role), the organisation
// it acts for (ODS code) and, when it differs, the client that entered it.
func TestProvenanceNamesThePrincipal(t *testing.T) {
	c := newSecureClient(t)
	gp := c.as(c.mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem}))
	provider := c.as(c.mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider}))

	sr := gp.must(201, "POST", "/ServiceRequest", dermReferral(map[string]any{
		"performer": []any{ref("HealthcareService/hs-derm")}}))
	srRef := "ServiceRequest/" + sr["id"].(string)
	provider.must(200, "POST", "/"+srRef+"/$defer", params("reason", "no clinics until spring", "service", ref("HealthcareService/hs-derm")))

	agents := map[string]any{}
	for _, p := range gp.search("/Provenance?target=" + srRef) {
		agents[get(p, "activity", "coding", 0, "code").(string)] = p["agent"]
	}
	author := func(subject, role, ods string) map[string]any {
		return map[string]any{
			"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author", "display": "Author"}}},
			"who":  map[string]any{"identifier": map[string]any{"system": referral.SubjectSystem, "value": subject}, "display": subject},
			"role": []any{map[string]any{"text": role}},
			"onBehalfOf": map[string]any{"type": "Organization",
				"identifier": map[string]any{"system": referral.ODSSystem, "value": ods}},
		}
	}
	want := map[string]any{
		"awaiting-booking": []any{author(devserver.ClientGPSystem, "referrer", devserver.DemoGPPractice)},
		"slot-issue":       []any{author(devserver.ClientProvider, "provider", devserver.DemoProvider)},
	}
	if diff := cmp.Diff(want, agents); diff != "" {
		t.Errorf("Provenance agents by activity (-want +got):\n%s", diff)
	}
}

// TestProvenancePatientAgent: a patient signed in through the patient app
// is the author by reference, and the app is the enterer. (The Provenance
// is outside the patient's compartment: the server writes it on its own
// account, so the patient's action is not refused for it.)
func TestProvenancePatientAgent(t *testing.T) {
	c := newSecureClient(t)
	gp := c.as(c.mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem}))
	sr := gp.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	srRef := "ServiceRequest/" + sr["id"].(string)
	patient := c.as(c.mint(devserver.TokenOptions{Scope: "patient/*.cruds", Patient: "pat-1"}))
	status, oo := patient.do("POST", "/"+srRef+"/$cancel", params())
	if status != 200 {
		t.Fatalf("the patient's $cancel of their referral: %d %v, want 200", status, oo)
	}
	var got any
	for _, p := range gp.search("/Provenance?target=" + srRef) {
		if get(p, "activity", "coding", 0, "code") == "cancelled" {
			got = p["agent"]
		}
	}
	want := []any{
		map[string]any{
			"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author", "display": "Author"}}},
			"who": map[string]any{"reference": "Patient/pat-1", "display": "Patient/pat-1",
				"identifier": map[string]any{"system": referral.SubjectSystem, "value": "Patient/pat-1"}},
			"role": []any{map[string]any{"text": "patient"}},
		},
		map[string]any{
			"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "enterer", "display": "Enterer"}}},
			"who": map[string]any{"type": "Device", "display": "client patient-app",
				"identifier": map[string]any{"system": referral.ClientSystem, "value": "patient-app"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Provenance agents of the patient's cancellation (-want +got):\n%s", diff)
	}
}
