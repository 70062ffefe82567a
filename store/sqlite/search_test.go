package sqlite_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestSearchMatchesOracle loads the search engine's semantic data set and
// requires the SQLite translation to return what the in-memory oracle
// returns, in the same order, page by page.
func TestSearchMatchesOracle(t *testing.T) {
	reg := storetest.Registry(t)
	raw, err := os.ReadFile("../../fhir/search/testdata/oracle-dataset.json")
	if err != nil {
		t.Fatal(err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(raw, &raws); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var all []*fhir.Resource
	for _, b := range raws {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Meta         struct {
				LastUpdated time.Time `json:"lastUpdated"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			t.Fatal(err)
		}
		res := &fhir.Resource{Type: head.ResourceType, ID: head.ID, Version: 1, LastUpdated: head.Meta.LastUpdated, JSON: b}
		idx, err := reg.Extract(res.Type, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.Put(ctx, &store.Write{Resource: res, Index: idx})
		}); err != nil {
			t.Fatal(err)
		}
		all = append(all, res)
	}
	o, err := search.NewOracle(reg, all)
	if err != nil {
		t.Fatal(err)
	}
	queries := []string{
		"Slot?status=free", "Slot?status:not=busy", "Slot?start=2026-03", "Slot?start=2026-03-29", "Slot?start=2026-10-25",
		"Slot?start=ge2026-03-02T09:15:00Z", "Slot?start=sa2026-03-02", "Slot?start=eb2026-03-03",
		"Slot?start=ge2026-03-02&end=le2026-03-02T09:20:00Z", "Slot?schedule=Schedule/s2", "Slot?schedule=s2",
		"Slot?schedule=https://signpost.test/fhir/Schedule/s2", "Slot?schedule=https://elsewhere.example/fhir/Schedule/x",
		"Slot?schedule.actor:HealthcareService.specialty=http://snomed.info/sct|394582007",
		"Slot?schedule.actor:Practitioner.family=okafor", `Slot?service-type=a\,b\|c`, "Slot?service-type:text=surg",
		"Slot?service-type:missing=true", "Slot?service-type:missing=false", "Slot?_id=sl3,sl1",
		"Slot?_lastUpdated=gt2026-01-01T00:00:08Z", "Patient?family=zoe", "Patient?family:exact=Zoë",
		"Patient?family:contains=zoel", "Patient?identifier=|123", "Patient?identifier=123", "Patient?active:missing=true",
		"Patient?active:not=true", "Patient?birthdate=1980-06", "Patient?birthdate=lt1980-06-15",
		"ServiceRequest?occurrence=ne2026-03-01", "Patient?_has:Appointment:patient:status=booked",
		"Schedule?_has:Slot:schedule:_has:Appointment:slot:status=booked",
		"ServiceRequest?subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009",
		"Slot?_count=2", "Patient?_count=1",
	}
	for _, qs := range queries {
		typ, raw, _ := strings.Cut(qs, "?")
		params, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		q, err := reg.Parse(typ, params, search.ParseOptions{Strict: true})
		if err != nil {
			t.Errorf("%s: %v", qs, err)
			continue
		}
		want := ids(o.Search(q))
		var got []string
		for pages := 0; pages < 20; pages++ {
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", qs, err)
			}
			for _, r := range page.Resources {
				got = append(got, r.ID)
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("%s: store [%s], oracle [%s]", qs, g, want)
		}
	}
}

func ids(rs []*fhir.Resource) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, " ")
}
