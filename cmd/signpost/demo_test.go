package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/fhir/directory"
	"github.com/signpost-fhir/signpost/fhir/referral"
	"github.com/signpost-fhir/signpost/fhir/search"
)

func TestDemoLoadsOnceAndTopsUp(t *testing.T) {
	a, _ := app.NewTest(t, app.Config{})
	ctx := context.Background()
	var out bytes.Buffer
	if err := loadDemo(ctx, a, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "demo county loaded") {
		t.Errorf("first start says %q", out.String())
	}
	out.Reset()
	if err := loadDemo(ctx, a, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already loaded") || !strings.Contains(out.String(), " 0 free slots added") {
		t.Errorf("second start says %q, want already loaded with no slots added", out.String())
	}
	q, err := a.Search.Parse("HealthcareService", map[string][]string{"_count": {"200"}}, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := a.Store.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	waits := 0
	for _, r := range page.Resources {
		if _, ok := directory.ReadWait(r.JSON, time.Now()); ok {
			waits++
		}
	}
	if len(page.Resources) < 25 || waits < 20 {
		t.Errorf("%d services, %d with a waiting time; want at least 25 and 20", len(page.Resources), waits)
	}
	for n := 1; n <= 80; n++ {
		if err := referral.CheckNHSNumber(demoNHSNumber(n)); err != nil || !strings.HasPrefix(demoNHSNumber(n), "999") {
			t.Errorf("demo NHS number %d = %s: %v", n, demoNHSNumber(n), err)
		}
	}
}
