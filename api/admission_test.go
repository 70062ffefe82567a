package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// TestReadsTakeTurns: the server admits Config.Reads FHIR reads at a
// time (package admission) and lets writes through: a read operation that
// computes for a while never runs more than that many at once, with twelve
// clients calling it, while the same operation invoked with POST, and
// without a bound (Reads -1), does.
func TestReadsTakeTurns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reads  int
		method string
		most   func(int32) bool
	}{
		{"GET, two at once", 2, http.MethodGet, func(m int32) bool { return m == 2 }},
		{"GET, one at once", 1, http.MethodGet, func(m int32) bool { return m == 1 }},
		{"POST passes", 1, http.MethodPost, func(m int32) bool { return m > 1 }},
		{"no bound", -1, http.MethodGet, func(m int32) bool { return m > 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := app.New(app.Config{Data: t.TempDir(), Open: true, Reads: tc.reads, BaseURL: "http://127.0.0.1/fhir"})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			var now, most atomic.Int32
			a.API.AddOperation(&operation.Operation{Name: "computing", TypeLevel: true, Types: []string{"Patient"},
				Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
					n := now.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					time.Sleep(5 * time.Millisecond)
					now.Add(-1)
					return &operation.Result{Body: []byte(`{"resourceType":"Parameters"}`)}, nil
				}})
			ts := httptest.NewServer(a.Handler())
			defer ts.Close()
			var wg sync.WaitGroup
			for range 12 {
				wg.Go(func() {
					for range 4 {
						var body io.Reader
						if tc.method == http.MethodPost {
							body = strings.NewReader(`{"resourceType":"Parameters"}`)
						}
						req, _ := http.NewRequest(tc.method, ts.URL+"/fhir/Patient/$computing", body)
						req.Header.Set("Content-Type", "application/fhir+json")
						res, err := ts.Client().Do(req)
						if err != nil {
							t.Error(err)
							return
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != http.StatusOK {
							t.Errorf("%s: status %d", tc.method, res.StatusCode)
						}
					}
				})
			}
			wg.Wait()
			if m := most.Load(); !tc.most(m) {
				t.Errorf("%d invocations at once", m)
			}
		})
	}
}
