package audit_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// fullOnly hides the registry's ExtractParams: Index then extracts every
// parameter and keeps the indexed ones, as it did before.
type fullOnly struct{ reg *search.Registry }

func (f fullOnly) Extract(typ string, body []byte) ([]search.Entry, error) {
	return f.reg.Extract(typ, body)
}

// TestIndexEvaluatesOnlyIndexed: Index, evaluating only the parameters the
// trail is indexed for, gives exactly the entries of a full extraction
// filtered to them, for the records Signpost writes (a search, a write
// with a patient in context, a refusal) and for other types.
func TestIndexEvaluatesOnlyIndexed(t *testing.T) {
	reg := storetest.Registry(t)
	const agent = `"agent":[{"role":[{"text":"call-centre"}],"who":{"identifier":{"system":"https://signpost.example/fhir/Id/oauth-client","value":"call-centre"},"display":"sub1"},"altId":"sub1","name":"Practitioner/x","requestor":true},` +
		`{"type":{"text":"organisation"},"who":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RBENCH"}},"requestor":false},` +
		`{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"DEV","display":"device"}]},"who":{"display":"network client"},"requestor":false,"network":{"address":"127.0.0.1","type":"2"}}]`
	head := `{"resourceType":"AuditEvent","id":"abc","meta":{"versionId":"1","lastUpdated":"2026-12-07T03:00:00.000Z"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},`
	source := `"source":{"site":"request 123","observer":{"display":"Signpost http://x/fhir"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]}`
	bodies := map[string]string{
		"AuditEvent": head + `"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"search-type"}],"action":"E","recorded":"2026-12-07T03:00:00.000Z","outcome":"0",` +
			agent + `,` + source + `,"entity":[{"type":{"system":"http://hl7.org/fhir/resource-types","code":"Slot"},"query":"c2NoZWR1bGU9U2NoZWR1bGUveA=="}]}`,
	}
	write := head + `"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"create"}],"action":"C","recorded":"2026-12-07T03:00:00.000Z","outcome":"0",` +
		agent + `,` + source + `,"entity":[{"what":{"reference":"ServiceRequest/sr1"}},{"description":"$book"},{"what":{"reference":"Patient/p1"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}}]}`
	refused := head + `"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read"}],"action":"R","recorded":"2026-12-07T03:00:00.000Z","outcome":"4","outcomeDesc":"access refused: Forbidden",` +
		`"agent":[{"who":{"display":"unauthenticated"},"requestor":true}],` + source + `,"entity":[{"what":{"reference":"Appointment/a1"}}]}`
	cases := []struct{ typ, body string }{
		{"AuditEvent", bodies["AuditEvent"]},
		{"AuditEvent", write},
		{"AuditEvent", refused},
		{"Slot", `{"resourceType":"Slot","id":"s1","schedule":{"reference":"Schedule/x"},"status":"free","start":"2026-12-08T09:00:00Z","end":"2026-12-08T09:15:00Z"}`},
	}
	for i, c := range cases {
		got, err := audit.Index(reg, c.typ, []byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		want, err := audit.Index(fullOnly{reg}, c.typ, []byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d (%s): evaluating the indexed parameters gives\n%+v\nthe full extraction, filtered\n%+v", i, c.typ, got, want)
		}
		if c.typ == "AuditEvent" && len(got) < 8 {
			t.Errorf("%d: only %d entries: %+v", i, len(got), got)
		}
		for _, e := range got {
			if p, _, _ := strings.Cut(e.Param, ":"); c.typ == "AuditEvent" && (p == "address" || p == "site" || p == "agent-name") {
				t.Errorf("%d: entry of an unindexed parameter %s", i, e.Param)
			}
		}
	}
}

// BenchmarkAuditIndex: the index entries of a search's record, evaluating
// the indexed parameters only (params) and all of them (full).
func BenchmarkAuditIndex(b *testing.B) {
	reg := storetest.Registry(b)
	body := []byte(`{"resourceType":"AuditEvent","id":"abc","meta":{"versionId":"1","lastUpdated":"2026-12-07T03:00:00.000Z"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},` +
		`"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"search-type"}],"action":"E","recorded":"2026-12-07T03:00:00.000Z","outcome":"0",` +
		`"agent":[{"role":[{"text":"call-centre"}],"who":{"identifier":{"system":"https://signpost.example/fhir/Id/oauth-client","value":"call-centre"},"display":"sub1"},"altId":"sub1","name":"Practitioner/x","requestor":true},` +
		`{"type":{"text":"organisation"},"who":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RBENCH"}},"requestor":false},` +
		`{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"DEV","display":"device"}]},"who":{"display":"network client"},"requestor":false,"network":{"address":"127.0.0.1","type":"2"}}],` +
		`"source":{"site":"request 123","observer":{"display":"Signpost http://x/fhir"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},` +
		`"entity":[{"type":{"system":"http://hl7.org/fhir/resource-types","code":"Slot"},"query":"c2NoZWR1bGU9U2NoZWR1bGUveA=="}]}`)
	for _, c := range []struct {
		name string
		ex   audit.Extractor
	}{{"params", reg}, {"full", fullOnly{reg}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := audit.Index(c.ex, "AuditEvent", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
