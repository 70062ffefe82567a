package sqlite

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestShapeWidenedByRolledBackRequest: a request that widens a date
// parameter's shape and then fails must not leave the saved shape behind
// what later, committed requests wrote: a later write of the same width
// found the shape already wide in memory and did not save it, so after a
// restart the planner's ranges missed it.
func TestShapeWidenedByRolledBackRequest(t *testing.T) {
	reg := storetest.Registry(t)
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	patient := func(id, birth string) *store.Write {
		body := `{"resourceType":"Patient","id":"` + id + `","birthDate":"` + birth + `"}`
		idx, err := reg.Extract("Patient", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &store.Write{Resource: &fhir.Resource{Type: "Patient", ID: id, Version: 1, LastUpdated: time.Now(), JSON: []byte(body)}, Index: idx}
	}
	put := func(w *store.Write, fail bool) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
			if fail {
				return errors.New("a later rule refuses the request")
			}
			return nil
		})
	}
	if err := put(patient("day", "1970-01-01"), false); err != nil { // shape: a day wide
		t.Fatal(err)
	}
	if err := put(patient("refused", "1974"), true); err == nil { // widens to a year (as long as 1973 in London), rolled back
		t.Fatal("the refused request committed")
	}
	if err := put(patient("year", "1973"), false); err != nil { // a year wide, committed
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	planMode = driveAlways // three patients: left to its costs, the planner would walk them
	defer func() { planMode = costBased }()
	params, _ := url.ParseQuery("birthdate=gt1973-06-01")
	q, err := reg.Parse("Patient", params, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Resources) != 1 || page.Resources[0].ID != "year" {
		var ids []string
		for _, r := range page.Resources {
			ids = append(ids, r.ID)
		}
		t.Errorf("Patient?birthdate=gt1973-06-01 after a restart = %v, want [year]", ids)
	}
}
