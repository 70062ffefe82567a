package booking_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// BenchmarkFindRegion runs Appointment/$find in process (no network)
// against an existing data directory, such as the 1M-slot region of
// docs/PERFORMANCE.md, named by SIGNPOST_FIND_DATA; it is skipped without
// it. SIGNPOST_FIND_PATH replaces the default request (one service's
// default window) with another GET path under the server's root. The store is opened without reindexing, under the base URL
// SIGNPOST_FIND_BASE (default http://127.0.0.1:18947/fhir, as served in
// docs/PERFORMANCE.md), so that the directory stays usable by serve. For
// profiling:
//
//	SIGNPOST_FIND_DATA=/path/to/d go test ./fhir/booking/ -run '^$' \
//	  -bench FindRegion -benchtime 3000x -cpuprofile find.prof
func BenchmarkFindRegion(b *testing.B) {
	dir := os.Getenv("SIGNPOST_FIND_DATA")
	if dir == "" {
		b.Skip("SIGNPOST_FIND_DATA names no data directory")
	}
	base := os.Getenv("SIGNPOST_FIND_BASE")
	if base == "" {
		base = "http://127.0.0.1:18947/fhir"
	}
	path := os.Getenv("SIGNPOST_FIND_PATH")
	if path == "" {
		path = "/fhir/Appointment/$find?healthcare-service=HealthcareService/hs-00003"
	}
	a, err := app.New(app.Config{Data: dir, BaseURL: base, Open: true, NoReindex: true})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	h := a.Handler()
	find := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		return w
	}
	find()
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		find()
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
