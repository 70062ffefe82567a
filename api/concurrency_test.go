package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
)

// race sends n requests at once (build(i) builds the i-th) and counts the
// statuses.
func (s *server) race(n int, build func(i int) request) map[int]int {
	s.t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		start   = make(chan struct{})
		counts  = map[int]int{}
		failure error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := s.try(build(i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failure = err
				return
			}
			counts[r.status]++
		}()
	}
	close(start)
	wg.Wait()
	if failure != nil {
		s.t.Fatal(failure)
	}
	return counts
}

func TestConcurrentIfMatch(t *testing.T) {
	s := newServer(t, app.Config{})
	s.must(request{method: "PUT", path: "Patient/race", body: patientWithID("race", "race", "V1")}, http.StatusCreated)
	s.must(request{method: "PUT", path: "Patient/race", body: patientWithID("race", "race", "V2")}, http.StatusOK)

	tests := []struct {
		name string
		req  func(i int) request
	}{
		{"PUT", func(i int) request {
			return request{method: "PUT", path: "Patient/race", body: patientWithID("race", "race", fmt.Sprint("Racer", i)),
				header: map[string]string{"If-Match": `W/"%d"`}}
		}},
		{"PATCH", func(i int) request {
			return request{method: "PATCH", path: "Patient/race", body: fmt.Sprintf(`[{"op":"replace","path":"/name/0/family","value":"Patcher%d"}]`, i),
				header: map[string]string{"Content-Type": "application/json-patch+json", "If-Match": `W/"%d"`}}
		}},
		{"DELETE", func(i int) request {
			return request{method: "DELETE", path: "Patient/race", header: map[string]string{"If-Match": `W/"%d"`}}
		}},
	}
	version := 2
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.snapshot())
			etag := fmt.Sprintf(`W/"%d"`, version)
			got := s.race(32, func(i int) request {
				r := tt.req(i)
				r.header["If-Match"] = etag
				return r
			})
			success := http.StatusOK
			if tt.name == "DELETE" {
				success = http.StatusNoContent
			}
			if diff := cmp.Diff(map[int]int{success: 1, http.StatusPreconditionFailed: 31}, got); diff != "" {
				t.Errorf("statuses of 32 racing %ss with If-Match %s (-want +got):\n%s", tt.name, etag, diff)
			}
			if n := len(s.snapshot()) - before; n != 1 {
				t.Errorf("%d new versions, want 1", n)
			}
			version++
		})
	}
}

// TestConcurrentConditionalCreate races creates with the same If-None-Exist:
// the condition and the write are one transaction, so exactly one creates.
func TestConcurrentConditionalCreate(t *testing.T) {
	s := newServer(t, app.Config{})
	got := s.race(32, func(i int) request {
		return request{method: "POST", path: "Patient", body: patient("once", fmt.Sprint("Racer", i)),
			header: map[string]string{"If-None-Exist": "identifier=" + nhs + "|once"}}
	})
	if diff := cmp.Diff(map[int]int{http.StatusCreated: 1, http.StatusOK: 31}, got); diff != "" {
		t.Errorf("statuses of 32 racing conditional creates (-want +got):\n%s", diff)
	}
	if n := len(s.snapshot()); n != 1 {
		t.Errorf("%d versions stored, want 1", n)
	}
}
