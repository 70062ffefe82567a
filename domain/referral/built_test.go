package referral_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// TestBuiltResourcesValidate: every resource the referral rules build
// themselves with samply's R4 models (the workflow Task, the Provenance of
// a state change, unauthenticated and with a signed-in author, an
// organisation and a client, the Provenance of $recategorise, and the
// ServiceRequest $convert makes of an advice request), reached
// through the real requests, passes Signpost's own validator as stored.
func TestBuiltResourcesValidate(t *testing.T) {
	v, err := validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	if err != nil {
		t.Fatal(err)
	}
	// all returns the stored JSON of every typ whose param is value.
	all := func(t *testing.T, c *client, typ, param, value string) [][]byte {
		q, err := c.a.Search.Parse(typ, url.Values{param: {value}}, search.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		page, err := c.a.Store.Search(context.Background(), q)
		if err != nil || len(page.Resources) == 0 {
			t.Fatalf("%s?%s=%s: %v (%d found)", typ, param, value, err, len(page.Resources))
		}
		var out [][]byte
		for _, r := range page.Resources {
			out = append(out, r.JSON)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		typ   string // the resource type built
		build func(t *testing.T) [][]byte
	}{
		{"Task of a new referral", "Task", func(t *testing.T) [][]byte {
			c := newClient(t)
			sr := c.create(dermReferral(map[string]any{"priority": "urgent"}))
			return all(t, c, "Task", "focus", sr)
		}},
		{"Provenance of a state change, unauthenticated", "Provenance", func(t *testing.T) [][]byte {
			c := newClient(t)
			sr := c.create(dermReferral(nil))
			return all(t, c, "Provenance", "target", sr)
		}},
		{"Provenance of a deferral, signed in", "Provenance", func(t *testing.T) [][]byte {
			c := newSecureClient(t)
			gp := c.as(c.mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem}))
			provider := c.as(c.mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider}))
			sr := gp.must(201, "POST", "/ServiceRequest", dermReferral(map[string]any{
				"performer": []any{ref("HealthcareService/hs-derm")}}))
			srRef := "ServiceRequest/" + sr["id"].(string)
			provider.must(200, "POST", "/"+srRef+"/$defer", params("reason", "no clinics until spring", "service", ref("HealthcareService/hs-derm")))
			return all(t, c, "Provenance", "target", srRef)
		}},
		{"Provenance of $recategorise", "Provenance", func(t *testing.T) [][]byte {
			w := newRecategoriseWorld(t)
			sr := w.referral(t)
			w.as("referrer").must(200, "POST", "/"+sr+"/$recategorise", recategorise(concept("394579002"),
				param("service", ref("HealthcareService/hs-cardio")), param("reason", "chest pain on exertion")))
			return all(t, w.c, "Provenance", "target", sr)
		}},
		{"ServiceRequest of $convert", "ServiceRequest", func(t *testing.T) [][]byte {
			c := newClient(t)
			loadDirectory(c)
			cr := c.create(map[string]any{"resourceType": "CommunicationRequest", "status": "active",
				"subject": ref("Patient/pat-1"), "requester": ref("Organization/gp-a"),
				"recipient": []any{ref("HealthcareService/hs-derm-city")},
				"payload":   []any{map[string]any{"contentString": "Is this lesion suitable for the two-week wait?"}}})
			sr := c.must(201, "POST", "/"+cr+"/$convert", params("priority", "urgent"))
			return all(t, c, "ServiceRequest", "_id", sr["id"].(string))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, raw := range tc.build(t) {
				for _, is := range v.Validate(raw) {
					if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
						t.Errorf("%s at %v\n%s", is.Diagnostics, is.Expression, raw)
					}
				}
				var m map[string]any
				json.Unmarshal(raw, &m)
				if m["resourceType"] != tc.typ {
					t.Errorf("built a %v, want a %s", m["resourceType"], tc.typ)
				}
			}
		})
	}
}
