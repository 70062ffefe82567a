package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// BenchmarkAuthCost measures what authorisation and audit add to the two
// hottest reads (issue 15, item 2: at most 2× their --open cost): a
// free-slot search of one schedule with _include=Slot:schedule, and a read
// by id, from one client, on a server with authorisation and audit on (a
// call-centre token; every request audited, reads flushed in batches)
// and one with them off. Compare the sub-benchmarks' ns/op from one run:
//
//	go test ./api -run '^$' -bench AuthCost -benchtime 3000x -count 5
func BenchmarkAuthCost(b *testing.B) {
	start := time.Now().UTC().Truncate(time.Hour).Add(24 * time.Hour)
	for _, op := range []string{"slot-search", "read"} {
		for _, mode := range []string{"open", "auth"} {
			b.Run(op+"/"+mode, func(b *testing.B) {
				a, ts := apptest.New(b, app.Config{Auth: mode == "auth"})
				seed := []map[string]any{{"resourceType": "HealthcareService", "id": "hs", "name": "Clinic", "active": true}}
				for s := range 4 {
					seed = append(seed, map[string]any{"resourceType": "Schedule", "id": fmt.Sprintf("sc%d", s), "active": true,
						"actor": []any{map[string]any{"reference": "HealthcareService/hs"}}})
					for i := range 500 {
						t0 := start.Add(time.Duration(i) * 15 * time.Minute)
						seed = append(seed, map[string]any{"resourceType": "Slot", "id": fmt.Sprintf("s%d-%d", s, i), "status": "free",
							"schedule": map[string]any{"reference": fmt.Sprintf("Schedule/sc%d", s)},
							"start":    t0.Format(time.RFC3339), "end": t0.Add(15 * time.Minute).Format(time.RFC3339)})
					}
				}
				apptest.Seed(b, a, seed...)
				tok := ""
				if mode == "auth" {
					var err error
					tok, err = devserver.MintToken(a.Config.Data, devserver.TokenOptions{Client: "call-centre",
						Role: "call-centre", Org: "RBENCH", Scope: "system/*.cruds"})
					if err != nil {
						b.Fatal(err)
					}
				}
				url := ts.URL + "/fhir/Slot?schedule=Schedule/sc1&status=free&start=ge" + start.Format("2006-01-02") + "&_include=Slot:schedule&_count=20"
				if op == "read" {
					url = ts.URL + "/fhir/Slot/s1-7"
				}
				c := benchClient()
				b.ResetTimer()
				for range b.N {
					req, _ := http.NewRequest("GET", url, nil)
					if tok != "" {
						req.Header.Set("Authorization", "Bearer "+tok)
					}
					resp, err := c.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
	}
}
