package api_test

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
)

// invalidExamples lists official examples that are themselves invalid, so
// they cannot round-trip: the server must refuse them instead. Each maps to
// the element every reported issue is about.
var invalidExamples = map[string]string{
	// Nested display items (e.g. item[0].item[0]) have no linkId, which R4
	// requires (Questionnaire.item.linkId is 1..1).
	"Questionnaire-qs1.json": "linkId",
}

// refusedByRules lists valid official examples that a domain rule refuses
// with 422, each with the rule's message. They are reported to the rule's
// owner; the test asserts the refusal so that a change is noticed.
var refusedByRules = map[string]string{
	// booking (domain/booking/rules.go): Appointment/examplereq's second
	// participant has a type and no actor; the response is how a
	// practitioner takes that place, but the rule only accepts actors
	// already named.
	"AppointmentResponse-exampleresp.json": "Practitioner/example is not a participant of Appointment/examplereq",
	// referral (domain/referral/fit.go): Appointment/example is booked,
	// based on the referral ServiceRequest/myringotomy, but names no
	// HealthcareService, so it cannot be checked against the referral
	// (a booking fits its referral); its AppointmentResponse then
	// answers an appointment that does not exist.
	"Appointment-example.json":         "the appointment names no HealthcareService (as a participant or its slots' schedule actor), so it cannot be checked against its referral ServiceRequest/myringotomy",
	"AppointmentResponse-example.json": "Appointment/example does not exist",
	// subscriptions (domain/subscription): Signpost serves no Observation,
	// so a subscription to Observations would never hear of anything.
	"Subscription-example.json":       `"Observation?code=http://loinc.org|1975-2": Signpost has no subscriptions on Observation`,
	"Subscription-example-error.json": `"Observation?code=http://loinc.org|1975-2": Signpost has no subscriptions on Observation`,
}

// TestExamplesRoundTrip creates every official R4 example of a writable type
// (testdata/examples, copied from the specification's examples) and reads it
// back: the served resource must equal the one sent, semantically (decimals
// compared as written), apart from id, meta.versionId and meta.lastUpdated.
// It is the proof that Signpost keeps the client's JSON: contained
// resources, extensions, primitive extensions, other meta members and
// decimal precision survive.
func TestExamplesRoundTrip(t *testing.T) {
	s := newServer(t, app.Config{})
	files, err := filepath.Glob(filepath.Join("testdata", "examples", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in testdata/examples: %v", err)
	}
	sort.Strings(files)
	writable := map[string]bool{}
	for _, typ := range writableTypes(t) {
		writable[typ] = true
	}

	// Create every example. Domain rules refuse a resource that refers to
	// one not yet created (an Appointment basedOn a ServiceRequest) with
	// 422, so those are retried once the others exist.
	created := map[string]response{}
	pending := files
	for pass := 0; pass < 3 && len(pending) > 0; pass++ {
		var again []string
		for _, file := range pending {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sent := decode(t, raw)
			typ, _ := sent["resourceType"].(string)
			var r response
			if id, ok := sent["id"].(string); ok {
				r = s.do(request{method: "PUT", path: typ + "/" + id, body: string(raw)})
			} else {
				r = s.do(request{method: "POST", path: typ, body: string(raw)})
			}
			if r.status == http.StatusUnprocessableEntity {
				again = append(again, file)
			}
			created[file] = r
		}
		pending = again
	}

	seen := map[string]bool{}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sent := decode(t, raw)
			typ, _ := sent["resourceType"].(string)
			if !writable[typ] {
				t.Fatalf("%s is not a writable type; only writable types belong in testdata/examples", typ)
			}
			seen[typ] = true
			r := created[file]
			if elem, ok := invalidExamples[name]; ok {
				if r.status != http.StatusBadRequest {
					t.Fatalf("an invalid example: status %d, want 400", r.status)
				}
				for _, x := range parseOutcome(t, r.body).expressions() {
					if !strings.HasSuffix(x, "."+elem) {
						t.Errorf("issue at %s, want only issues about %s", x, elem)
					}
				}
				return
			}
			if msg, ok := refusedByRules[name]; ok {
				oo := parseOutcome(t, r.body)
				if r.status != http.StatusUnprocessableEntity || len(oo.Issue) != 1 || oo.Issue[0].Diagnostics != msg {
					t.Fatalf("refused by a rule: got %d %s, want 422 %q", r.status, r.body, msg)
				}
				return
			}
			if r.status != http.StatusCreated {
				t.Fatalf("create: status %d, want 201: %.2000s", r.status, r.body)
			}
			id, vid, _ := meta(t, r.body)
			// Read the version created: later examples' rules may have
			// changed the resource since (an AppointmentResponse updates
			// its Appointment).
			got := s.must(request{method: "GET", path: typ + "/" + id + "/_history/" + vid}, http.StatusOK)
			served := withoutServerWritten(sent, decode(t, got.body))
			if diff := cmp.Diff(withoutServerMeta(sent), withoutServerMeta(served)); diff != "" {
				t.Errorf("read back (-sent +served):\n%s", diff)
			}
			if diff := cmp.Diff(decode(t, got.body), decode(t, r.body)); diff != "" {
				t.Errorf("create answered differently from the read (-read +create):\n%s", diff)
			}
		})
	}
	for typ := range writable {
		if !seen[typ] {
			t.Logf("no official example of %s", typ)
		}
	}
}

// ubrnSystem identifies the UBRN the referral rules give every ServiceRequest.
const ubrnSystem = "https://fhir.nhs.uk/Id/UBRN"

// withoutServerWritten removes from served the elements a domain rule
// writes and the client did not send, so that only the client's content is
// compared. Each is documented by the capability that owns it:
//   - ServiceRequest.identifier with the UBRN system (referral);
//   - Appointment.identifier with the UBRN of the referral it is basedOn
//     (referral).
func withoutServerWritten(sent, served map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range served {
		out[k] = v
	}
	if rt := served["resourceType"]; rt == "ServiceRequest" || rt == "Appointment" {
		ids, _ := served["identifier"].([]any)
		var kept []any
		for _, id := range ids {
			if m, ok := id.(map[string]any); ok && m["system"] == ubrnSystem && !sentIdentifier(sent, m) {
				continue
			}
			kept = append(kept, id)
		}
		if len(kept) == 0 {
			delete(out, "identifier")
		} else {
			out["identifier"] = kept
		}
	}
	return out
}

func sentIdentifier(sent map[string]any, id map[string]any) bool {
	ids, _ := sent["identifier"].([]any)
	for _, x := range ids {
		if cmp.Equal(x, any(id)) {
			return true
		}
	}
	return false
}
