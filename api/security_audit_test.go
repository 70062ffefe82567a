package api_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// TestAuditRecordsValid checks that every AuditEvent the server writes
// (reads, searches, writes, refusals) is a valid R4 AuditEvent.
func TestAuditRecordsValid(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.cruds", Patient: "pat-a"})
	cc := s.mint(t, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	s.must(request{path: "Appointment/appt-a", header: bearer(patA)}, 200)
	s.must(request{path: "Appointment?status=booked", header: bearer(patA)}, 200)
	s.must(request{path: "Appointment/appt-b", header: bearer(patA)}, 404)
	s.must(request{path: "Appointment/appt-a"}, 401)
	s.must(request{method: "POST", path: "Appointment", header: bearer(cc),
		body: `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-b"},"status":"needs-action"}]}`}, 201)

	v, err := validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	if err != nil {
		t.Fatal(err)
	}
	s.app.API.Flush()
	page, err := s.app.Store.Search(context.Background(), &search.Query{Type: "AuditEvent", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Resources) < 5 {
		t.Fatalf("%d AuditEvents for 5 requests", len(page.Resources))
	}
	for _, r := range page.Resources {
		if issues := v.Validate(r.JSON); len(issues) > 0 {
			t.Errorf("AuditEvent/%s is not valid: %v\n%s", r.ID, issues, r.JSON)
		}
		if !bytes.Contains(r.JSON, []byte(`"meta":{"versionId":"1","lastUpdated":`)) {
			t.Errorf("AuditEvent/%s lacks its meta: %s", r.ID, r.JSON)
		}
	}
}

// TestAuditSearch checks the audit trail's index: the parameters auditors
// search by find the records; the ones it is not indexed for are refused
// with 400 rather than silently finding nothing.
func TestAuditSearch(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"})
	auditor := s.mint(t, devserver.TokenOptions{Scope: "user/AuditEvent.rs", Client: devserver.ClientAuditor})
	system := s.mint(t, devserver.TokenOptions{Scope: "system/*.rs system/AuditEvent.rs", Client: devserver.ClientCallCentre})
	s.must(request{path: "Appointment/appt-a", header: bearer(patA)}, 200)
	s.must(request{path: "Appointment/appt-b", header: bearer(patA)}, 404)
	s.app.API.Flush()

	for _, r := range []struct {
		tok    string
		path   string
		status int
		want   string // in the body
	}{
		{auditor, "AuditEvent?entity=Appointment/appt-a&subtype=read&_total=accurate", 200, `"total":1`},
		{auditor, "AuditEvent?patient=Patient/pat-a&outcome=4&_total=accurate", 200, `"total":1`},
		{auditor, "AuditEvent?agent:identifier=https://signpost.example/fhir/Id/oauth-client|patient-app&_total=accurate", 200, `"total":2`},
		{auditor, "AuditEvent?altid=Patient/pat-a&action=R&date=ge2000-01-01&type=rest&_total=accurate", 200, `"total":2`},
		{auditor, "AuditEvent?address=127.0.0.1", 400, "address"},
		{auditor, "AuditEvent?site=x", 400, "UNSUPPORTED_PARAMETER"},
		{auditor, "AuditEvent?entity-role=1", 400, "entity-role"},
		{auditor, "AuditEvent?_sort=agent-name", 400, "agent-name"},
		{system, "Patient?_has:AuditEvent:patient:site=x", 400, "site"},
		{system, "Patient?_has:AuditEvent:patient:subtype=read&_total=accurate", 200, `"total":1`},
	} {
		got := s.do(request{path: r.path, header: bearer(r.tok)})
		if got.status != r.status || !bytes.Contains(got.body, []byte(r.want)) {
			t.Errorf("GET %s: status %d (want %d), want %q in %s", r.path, got.status, r.status, r.want, got.body)
		}
	}
}

// BenchmarkAuditFlush measures storing buffered read records: the cost
// each audited read or search adds to the store's writer.
func BenchmarkAuditFlush(b *testing.B) {
	s := newSecureServer(b, app.Config{})
	tok := bearer(s.mint(b, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"}))
	const batch = 1000
	for b.Loop() {
		b.StopTimer()
		for range batch {
			s.must(request{path: "Appointment/appt-a", header: tok}, 200)
		}
		b.StartTimer()
		s.app.API.Flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch)/1e3, "µs/record")
}
