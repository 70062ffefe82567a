package export_test

import (
	"fmt"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// BenchmarkExport measures a system-level export of 10,000 Patients and
// 10,000 DocumentReferences, from kick-off to every file read back, through
// the real HTTP stack and SQLite store (the server open: no token checks).
func BenchmarkExport(b *testing.B) {
	_, base := benchServer(b)
	c := client{t: b, base: base}
	b.ResetTimer()
	for b.Loop() {
		got := c.read(c.wait(c.kickOff("/$export?_type=Patient,DocumentReference")))
		if len(got) != 2*benchN {
			b.Fatalf("%d exported, want %d", len(got), 2*benchN)
		}
	}
}

// benchN is how many Patients, and DocumentReferences, benchServer holds.
const benchN = 10000

// benchServer starts an open server holding benchN Patients, each with a
// DocumentReference.
func benchServer(b *testing.B) (*app.App, string) {
	a, ts := apptest.New(b, app.Config{})
	for i := 0; i < benchN; i += 1000 {
		var rs []map[string]any
		for k := i; k < i+1000; k++ {
			pid := fmt.Sprintf("pat-%05d", k)
			rs = append(rs, map[string]any{"resourceType": "Patient", "id": pid, "name": []any{map[string]any{"family": "Bench"}}},
				map[string]any{"resourceType": "DocumentReference", "id": fmt.Sprintf("doc-%05d", k), "status": "current",
					"subject": map[string]any{"reference": "Patient/" + pid},
					"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain"}}}})
		}
		apptest.Seed(b, a, rs...)
	}
	return a, ts.URL + "/fhir"
}
