package search

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkReferencesRegion: _include over pages drawn at random from a
// region's 4,000 free Slots (80 schedules' first 50), from parallel
// clients: Slots as signpost bench seeds them (small) and as a directory
// fills them in (full); each body in turn (References) and the page at
// once (Targets, as _include asks).
func BenchmarkReferencesRegion(b *testing.B) {
	r := testRegistry(b)
	shapes := map[string]func(i int) string{
		// As signpost bench seeds them.
		"small": func(i int) string {
			return `{"resourceType":"Slot","id":"b3otyq-slot-` + strconv.Itoa(i) + `","meta":{"versionId":"1","lastUpdated":"2026-12-07T01:02:03.456Z"},` +
				`"schedule":{"reference":"Schedule/b3otyq-sch-` + strconv.Itoa(i/50) + `"},"status":"free","start":"2026-12-08T09:00:00Z","end":"2026-12-08T09:15:00Z"}`
		},
		// With the identifiers and coded service a directory's Slots carry.
		"full": func(i int) string {
			return `{"resourceType":"Slot","id":"slot-` + strconv.Itoa(i) + `","meta":{"versionId":"3","lastUpdated":"2026-12-07T01:02:03.456Z"},` +
				`"identifier":[{"system":"https://signpost.example/slot","value":"` + strconv.Itoa(i) + `"}],"serviceCategory":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/service-category","code":"35","display":"Hospital"}]}],` +
				`"serviceType":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110","display":"Trauma and orthopaedics"}]}],` +
				`"specialty":[{"coding":[{"system":"http://snomed.info/sct","code":"394801008","display":"Trauma and orthopaedics"}]}],"appointmentType":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0276","code":"ROUTINE"}]},` +
				`"schedule":{"reference":"Schedule/sch-` + strconv.Itoa(i/50) + `"},"status":"free","start":"2026-12-08T09:00:00Z","end":"2026-12-08T09:15:00Z","comment":"Face to face, ground floor clinic room 4"}`
		},
	}
	for _, name := range []string{"small", "full"} {
		var bodies [][]byte
		for i := range 4000 {
			bodies = append(bodies, []byte(shapes[name](i)))
		}
		// Each body on its own (the reference memo), and the page at
		// once (Targets: the page memo).
		b.Run(name+"/each", func(b *testing.B) {
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
		})
		b.Run(name+"/page", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(1, 2))
				for pb.Next() {
					p := rng.IntN(80)
					if _, err := r.Targets("Slot", bodies[p*50:p*50+50], "schedule", ""); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
