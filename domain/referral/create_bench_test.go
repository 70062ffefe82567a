package referral_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// BenchmarkReferralCreate: one client POSTs referrals (ServiceRequest
// create, as signpost bench's referral operation does) through the HTTP
// API with authorisation and audit on, as the call centre, each to one
// of 20 services for one of 100 patients: the referral, its workflow Task
// and the Task's Provenance, each audited, in one transaction. It reports
// the p50 and p99 latency and the process's CPU time per create (server
// and client).
func BenchmarkReferralCreate(b *testing.B) {
	a, ts := apptest.New(b, app.Config{Auth: true})
	const services, patients = 20, 100
	seed := []map[string]any{{"resourceType": "Organization", "id": "rbench", "name": "Bench Trust",
		"identifier": []any{map[string]any{"system": referral.ODSSystem, "value": "RBENCH"}}}}
	for i := range services {
		seed = append(seed, map[string]any{"resourceType": "HealthcareService", "id": fmt.Sprintf("hs-%d", i), "name": "Clinic",
			"providedBy": ref("Organization/rbench"),
			"specialty":  []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "394582007"}}}}})
	}
	for i := range patients {
		seed = append(seed, map[string]any{"resourceType": "Patient", "id": fmt.Sprintf("pat-%d", i), "name": []any{map[string]any{"family": "Bench"}}})
	}
	apptest.Seed(b, a, seed...)
	tok, err := devserver.MintToken(a.Config.Data, devserver.TokenOptions{Client: devserver.ClientCallCentre, Role: "call-centre", Org: "RBENCH"})
	if err != nil {
		b.Fatal(err)
	}
	hc := ts.Client()
	post := func(i int) {
		body, _ := json.Marshal(map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
			"subject":       ref(fmt.Sprintf("Patient/pat-%d", i%patients)),
			"requester":     ref("Organization/rbench"),
			"performer":     []any{ref(fmt.Sprintf("HealthcareService/hs-%d", i%services))},
			"performerType": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "394582007"}}},
			"authoredOn":    time.Now().UTC().Format("2006-01-02")})
		req, _ := http.NewRequest("POST", ts.URL+"/fhir/ServiceRequest", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("POST ServiceRequest: %d %s", resp.StatusCode, raw)
		}
	}
	post(0) // the first write prepares the statements
	var lat []time.Duration
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	i := 0
	for b.Loop() {
		i++
		t := time.Now()
		post(i)
		lat = append(lat, time.Since(t))
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	slices.Sort(lat)
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-µs/op")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
