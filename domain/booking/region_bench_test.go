package booking_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

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
//	SIGNPOST_FIND_DATA=/path/to/d go test ./domain/booking/ -run '^$' \
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
	timeLoop(b, func() { find() })
}
