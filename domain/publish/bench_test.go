package publish_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// BenchmarkBulkPublishFeed measures a client reading the whole feed once:
// the manifest, then every Location, Schedule and Slot file, over a region
// of 40 directly bookable services with 250 future slots each (10,000
// slots), through the real HTTP stack and SQLite store.
func BenchmarkBulkPublishFeed(b *testing.B) {
	a, ts := apptest.New(b, app.Config{})
	now := time.Now()
	const services, slots = 40, 250
	for i := range services {
		id := fmt.Sprintf("%02d", i)
		rs := world(now)[:4] // the organisation and locations
		hs := world(now)[4]
		hs["id"] = "hs-" + id
		hs["location"] = []any{map[string]any{"reference": "Location/loc-1"}}
		rs = append(rs, hs, map[string]any{"resourceType": "Schedule", "id": "sch-" + id, "active": true,
			"actor": []any{map[string]any{"reference": "HealthcareService/hs-" + id}}})
		for k := range slots {
			start := now.Add(24*time.Hour + time.Duration(k)*30*time.Minute)
			rs = append(rs, map[string]any{"resourceType": "Slot", "id": fmt.Sprintf("sl-%s-%03d", id, k),
				"schedule": map[string]any{"reference": "Schedule/sch-" + id}, "status": "free",
				"start": start.UTC().Format(time.RFC3339), "end": start.Add(20 * time.Minute).UTC().Format(time.RFC3339)})
		}
		apptest.Seed(b, a, rs...)
	}
	base := ts.URL + "/fhir"
	b.ResetTimer()
	for b.Loop() {
		m, _ := fetchManifest(b, base+"/$bulk-publish", nil)
		n := 0
		for _, o := range m.Output {
			res, err := http.Get(o.URL)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("%s: %d", o.URL, res.StatusCode)
			}
			if o.Type == "Slot" {
				for _, c := range body {
					if c == '\n' {
						n++
					}
				}
			}
		}
		if n != services*slots {
			b.Fatalf("%d slots published, want %d", n, services*slots)
		}
	}
}
