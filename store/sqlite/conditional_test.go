package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// TestConcurrentConditionalCreate sends 32 conditional creates for the same
// NHS number at once through the real server: exactly one creates the
// patient (201), the others find it (200), and one patient is stored.
func TestConcurrentConditionalCreate(t *testing.T) {
	a, ts := apptest.New(t, app.Config{})
	const nhs = "9434765919"
	body := `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}],"name":[{"family":"Zoë"}]}`
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	ids := map[string]bool{}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/fhir/Patient", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhs)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
				ids[idOf(b)] = true
			} else {
				t.Errorf("status %d: %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	if got, want := fmt.Sprint(statuses), fmt.Sprint(map[int]int{200: 31, 201: 1}); got != want {
		t.Errorf("statuses %s, want %s", got, want)
	}
	q, err := a.Search.Parse("Patient", map[string][]string{"identifier": {nhs}}, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := a.Store.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Resources) != 1 {
		t.Errorf("%d patients stored with the NHS number, want 1", len(page.Resources))
	}
	if len(ids) != 1 || (len(page.Resources) == 1 && !ids[page.Resources[0].ID]) {
		t.Errorf("responses name patients %v, want only the stored one", ids)
	}
}

// idOf returns the id of a resource's JSON.
func idOf(b []byte) string {
	var r struct{ ID string }
	json.Unmarshal(b, &r)
	return r.ID
}
