package bulk

import "testing"

// BenchmarkFastHead: recognising a line of a bulk load whose meta can be
// spliced in (a slot as publishers send them, and a service with nested
// content).
//
//	go test ./domain/bulk -run '^$' -bench BenchmarkFastHead
func BenchmarkFastHead(b *testing.B) {
	for _, c := range []struct{ name, line string }{
		{"slot", `{"resourceType":"Slot","id":"slot-000123","identifier":[{"system":"https://signpost.example/slot","value":"S123"}],` +
			`"serviceType":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110"}]}],"schedule":{"reference":"Schedule/sch-7"},` +
			`"status":"free","start":"2026-12-08T09:00:00Z","end":"2026-12-08T09:15:00Z","comment":"Room 4, \"east\" wing"}`},
		{"service", `{"resourceType":"HealthcareService","id":"svc-7","identifier":[{"system":"https://signpost.example/service","value":"svc-7"}],` +
			`"active":true,"providedBy":{"reference":"Organization/RBENCH"},"type":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110","display":"Trauma and orthopaedics"}]}],` +
			`"location":[{"reference":"Location/loc-3"}],"name":"Orthopaedics clinic 7","telecom":[{"system":"phone","value":"01234 567890"}],` +
			`"availableTime":[{"daysOfWeek":["mon","tue","wed"],"availableStartTime":"09:00:00","availableEndTime":"17:00:00"}],"extension":[{"url":"https://x/y","valueDecimal":1.50e2}]}`},
	} {
		line := []byte(c.line)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, at := fastHead(line); at == 0 {
					b.Fatal("not recognised")
				}
			}
		})
	}
}
