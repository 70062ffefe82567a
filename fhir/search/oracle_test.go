package search

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
)

// loadDataset reads testdata/oracle-dataset.json: resources with their
// meta.lastUpdated, in the order they were written.
func loadDataset(t *testing.T) []*fhir.Resource {
	t.Helper()
	var raws []json.RawMessage
	if err := json.Unmarshal(readTestdata(t, "oracle-dataset.json"), &raws); err != nil {
		t.Fatal(err)
	}
	var out []*fhir.Resource
	for _, raw := range raws {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Meta         struct {
				LastUpdated time.Time `json:"lastUpdated"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			t.Fatal(err)
		}
		out = append(out, &fhir.Resource{Type: head.ResourceType, ID: head.ID, Version: 1,
			LastUpdated: head.Meta.LastUpdated, JSON: raw})
	}
	return out
}

func ids(rs []*fhir.Resource) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, " ")
}

// TestSemantics runs searches through Parse and the oracle over a small
// data set built for the cases servers get wrong.
func TestSemantics(t *testing.T) {
	r := testRegistry(t)
	o, err := NewOracle(r, loadDataset(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, query, want string
	}{
		{"Slot", "status=free", "sl1 sl3 sl4 sl5 sl6"},
		{"Slot", "status:not=busy", "sl1 sl3 sl4 sl5 sl6"},
		{"Slot", "status=free,busy", "sl1 sl2 sl3 sl4 sl5 sl6"},
		// Date precision.
		{"Slot", "start=2026", "sl1 sl2 sl3 sl4 sl5 sl6"},
		{"Slot", "start=2026-03", "sl1 sl2 sl3 sl4"},
		{"Slot", "start=2026-03-02T09:15:00Z", "sl2"},
		{"Slot", "start=ge2026-03-02T09:15:00Z", "sl2 sl3 sl4 sl5 sl6"},
		{"Slot", "start=gt2026-03-02T09:15:00Z", "sl3 sl4 sl5 sl6"},
		{"Slot", "start=sa2026-03-02", "sl3 sl4 sl5 sl6"},
		{"Slot", "start=eb2026-03-03", "sl1 sl2"},
		// Zones: the same instant with an offset, in Z and without a zone
		// (read as London time: GMT in March, BST in April).
		{"Slot", "start=2026-03-02T10:15:00%2B01:00", "sl2"},
		{"Slot", "start=2026-03-02T09:15:00", "sl2"},
		{"Slot", "start=2026-04-01T10:00:00", "sl6"},
		// UK clock changes: 29 March 2026 (23 h) and 25 October 2026 (25 h).
		{"Slot", "start=2026-03-29", "sl3"},
		{"Slot", "start=2026-03-28", "sl4"},
		{"Slot", "start=2026-10-25", "sl5"},
		{"Slot", "start=2026-10-24", ""},
		// GP Connect's window: fully inside [2 March, 09:20Z].
		{"Slot", "start=ge2026-03-02&end=le2026-03-02T09:20:00Z", "sl1"},
		// References: relative, absolute on this server, elsewhere.
		{"Slot", "schedule=Schedule/s2", "sl4 sl5"},
		{"Slot", "schedule=s2", "sl4 sl5"},
		{"Slot", "schedule=https://signpost.test/fhir/Schedule/s2", "sl4 sl5"},
		{"Slot", "schedule=https://elsewhere.example/fhir/Schedule/x", "sl6"},
		// Chains.
		{"Slot", "schedule.actor:HealthcareService.specialty=http://snomed.info/sct|394582007", "sl1 sl2 sl3"},
		{"Slot", "schedule.actor:Practitioner.family=okafor", "sl1 sl2 sl3"},
		{"Slot", "schedule.actor:HealthcareService.name=cardio", "sl4 sl5"},
		// Escaping and token text.
		{"Slot", `service-type=a\,b\|c`, "sl6"},
		{"Slot", `service-type=http://example.org/st|a\,b\|c`, "sl6"},
		{"Slot", "service-type:text=minor", "sl6"},
		{"Slot", "service-type:text=surg", "sl6"},
		{"Slot", "service-type:missing=true", "sl1 sl2 sl3 sl4 sl5"},
		{"Slot", "service-type:missing=false", "sl6"},
		{"Slot", "_id=sl3,sl1", "sl1 sl3"},
		{"Slot", "_lastUpdated=gt2026-01-01T00:00:08Z", "sl5 sl6"},
		// Strings: case and accents.
		{"Patient", "family=zoe", "p1 p2"},
		{"Patient", "family=ZOË", "p1 p2"},
		{"Patient", "family:exact=Zoë", "p1"},
		{"Patient", "family:contains=zoel", "p3"},
		{"Patient", "name=bea", "p2"},
		// Tokens without system, with system, with empty system.
		{"Patient", "identifier=123", "p2 p3"},
		{"Patient", "identifier=|123", "p2"},
		{"Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000017", "p2"},
		{"Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|", ""},
		{"Patient", "active:missing=true", "p2"},
		{"Patient", "active=false", "p3"},
		{"Patient", "active:not=true", "p2 p3"},
		// Date precision on birth dates.
		{"Patient", "birthdate=1980", "p1 p2 p3"},
		{"Patient", "birthdate=1980-06", "p2 p3"},
		{"Patient", "birthdate=ne1980", ""},
		{"Patient", "birthdate=lt1980-06-15", "p1 p3"},
		// ne on a repeating element: any value that differs matches.
		{"ServiceRequest", "occurrence=ne2026-03-01", "sr1"},
		{"ServiceRequest", "occurrence=2026-03-01", "sr1 sr2"},
		// Reverse chaining, nested.
		{"Patient", "_has:Appointment:patient:status=booked", "p1"},
		{"Schedule", "_has:Slot:schedule:_has:Appointment:slot:status=booked", "s1"},
		{"ServiceRequest", "subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009", "sr1"},
		// Sorting: descending dates by their end, strings normalised, ties
		// by _lastUpdated.
		{"Patient", "_sort=-birthdate", "p1 p3 p2"},
		{"Patient", "_sort=birthdate", "p1 p3 p2"},
		{"Patient", "_sort=family", "p3 p1 p2"},
		{"Patient", "_sort=-family,-_lastUpdated", "p2 p1 p3"},
		{"Slot", "_sort=-start&status=free", "sl5 sl6 sl3 sl4 sl1"},
		{"Slot", "_sort=service-type,_id", "sl6 sl1 sl2 sl3 sl4 sl5"},
	}
	for _, tt := range tests {
		q, err := r.Parse(tt.typ, mustQuery(t, tt.query), ParseOptions{Strict: true})
		if err != nil {
			t.Errorf("%s?%s: %v", tt.typ, tt.query, err)
			continue
		}
		if got := ids(o.Search(q)); got != tt.want {
			t.Errorf("%s?%s = [%s], want [%s]", tt.typ, tt.query, got, tt.want)
		}
	}
}

func TestOracleIncludes(t *testing.T) {
	r := testRegistry(t)
	o, err := NewOracle(r, loadDataset(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, query       string
		matches, include string
	}{
		{"Slot", "_id=sl1&_include=Slot:schedule&_include:iterate=Schedule:actor:Practitioner&_revinclude=Appointment:slot",
			"sl1", "a2 pr1 s1"},
		// Without :iterate the Schedule's actors are not followed.
		{"Slot", "_id=sl1&_include=Slot:schedule&_include=Schedule:actor", "sl1", "s1"},
		{"Slot", "_id=sl1&_include=Slot:schedule&_include:recurse=Schedule:actor", "sl1", "hs1 pr1 s1"},
		{"Slot", "schedule.actor:HealthcareService=hs2&_include=Slot:*", "sl4 sl5", "s2"},
		{"Patient", "_id=p1&_revinclude=*", "p1", "a1 sr1"},
	}
	for _, tt := range tests {
		q, err := r.Parse(tt.typ, mustQuery(t, tt.query), ParseOptions{Strict: true})
		if err != nil {
			t.Errorf("%s?%s: %v", tt.typ, tt.query, err)
			continue
		}
		m := o.Search(q)
		inc := o.Included(q, m)
		if got := [2]string{ids(m), ids(inc)}; !reflect.DeepEqual(got, [2]string{tt.matches, tt.include}) {
			t.Errorf("%s?%s = %q, want matches %q and included %q", tt.typ, tt.query, got, tt.matches, tt.include)
		}
	}
}
