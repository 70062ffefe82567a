package search

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkReferencesRegion: _include over pages drawn at random from a
// region's 4,000 free Slots (80 schedules' first 50), from parallel
// clients.
func BenchmarkReferencesRegion(b *testing.B) {
	r := testRegistry(b)
	var bodies [][]byte
	for i := range 4000 {
		bodies = append(bodies, []byte(`{"resourceType":"Slot","id":"slot-`+strconv.Itoa(i)+`","meta":{"versionId":"3","lastUpdated":"2026-12-07T01:02:03.456Z"},`+
			`"identifier":[{"system":"https://signpost.example/slot","value":"`+strconv.Itoa(i)+`"}],"serviceType":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110"}]}],`+
			`"schedule":{"reference":"Schedule/sch-`+strconv.Itoa(i/50)+`"},"status":"free","start":"2026-12-08T09:00:00Z","end":"2026-12-08T09:15:00Z"}`))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(1, 2))
		for pb.Next() {
			p := rng.IntN(80)
			for _, body := range bodies[p*50 : p*50+50] {
				if _, err := r.References("Slot", body, "schedule"); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
