package directory_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/directory"
)

type client struct {
	t    *testing.T
	base string
}

func (c *client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (c *client) ids(path string) []string {
	c.t.Helper()
	status, b := c.do("GET", path, nil)
	if status != 200 {
		c.t.Fatalf("GET %s: %d %v", path, status, b)
	}
	var out []string
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		out = append(out, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
	}
	slices.Sort(out)
	return out
}

func setup(t *testing.T) *client {
	_, ts := apptest.New(t, app.Config{})
	c := &client{t: t, base: ts.URL + "/fhir"}
	b, err := os.ReadFile("testdata/directory.json")
	if err != nil {
		t.Fatal(err)
	}
	if status, out := c.do("POST", "", b); status != 200 {
		t.Fatalf("loading the directory: %d %v", status, out)
	}
	return c
}

func TestDirectorySearch(t *testing.T) {
	c := setup(t)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"specialty=http://snomed.info/sct|394579002", []string{"hs-cardio"}},
		{"name=paediatric", []string{"hs-derm-kids"}},
		{"organization.identifier=https://fhir.nhs.uk/Id/ods-organization-code|NL1", []string{"hs-derm-gpwsi"}},
		{"commissioner=Organization/icb-south", []string{"hs-derm-far", "hs-derm-south"}},
		{"bookability=directly-bookable&name=far", []string{"hs-derm-far"}},
		{"accepting-referrals=false", []string{"hs-derm-closed"}},
		{"max-age=le16", []string{"hs-derm-kids"}},
		{"eligible-gender=male", []string{"hs-derm-men"}},
		{"location.near=52.5|-0.12|5|km", []string{"hs-derm-far"}},
		// Signpost's own near: the same search through the service's locations.
		{"near=52.5|-0.12|5|km", []string{"hs-derm-far"}},
		{"near=51.52|-0.12|3|km&specialty=http://snomed.info/sct|394582007&commissioner=Organization/icb-north",
			[]string{"hs-derm-city", "hs-derm-closed", "hs-derm-gpwsi", "hs-derm-kids", "hs-derm-men", "hs-derm-old"}},
		{"near=51.52|-0.12|1|mi", []string{"hs-derm-gpwsi"}},
		{"near=0|0|1|km", nil},
		{"active=false", []string{"hs-derm-old"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			if got := c.ids("/HealthcareService?" + tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("HealthcareService?%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
	if status, oo := c.do("GET", "/HealthcareService?near=north", nil); status != 400 {
		t.Errorf("HealthcareService?near=north: %d %v, want 400", status, oo)
	}
	if status, _ := c.do("PUT", "/HealthcareService/hs-bad", map[string]any{"resourceType": "HealthcareService", "id": "hs-bad",
		"characteristic": []any{map[string]any{"coding": []any{map[string]any{"system": directory.BookabilitySystem, "code": "sometimes"}}}}}); status != 422 {
		t.Errorf("unknown bookability code: %d, want 422", status)
	}
}

// TestWaitingTimeFollowsSlots: the waiting time follows slot writes, is
// searchable and cannot be written by clients.
func TestWaitingTimeFollowsSlots(t *testing.T) {
	c := setup(t)
	_, sched := c.do("POST", "/Schedule", map[string]any{"resourceType": "Schedule",
		"actor": []any{map[string]any{"reference": "HealthcareService/hs-derm-city"}}})
	now := time.Now().UTC()
	slot := func(days int) string {
		start := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, days)
		_, s := c.do("POST", "/Slot", map[string]any{"resourceType": "Slot", "status": "free",
			"schedule": map[string]any{"reference": "Schedule/" + sched["id"].(string)},
			"start":    start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)})
		return s["id"].(string)
	}
	first := slot(3)
	slot(5)
	wait := func() string {
		_, hs := c.do("GET", "/HealthcareService/hs-derm-city", nil)
		w, ok := directory.ReadWait(mustJSON(hs), time.Now())
		if !ok {
			return "none"
		}
		return strings.Join([]string{itoa(w.Days), ftoa(w.AverageDays), itoa(w.Sample)}, "/")
	}
	if got := wait(); got != "3/4/2" {
		t.Errorf("wait = %s, want 3 days, average 4 over 2", got)
	}
	_, s := c.do("GET", "/Slot/"+first, nil)
	s["status"] = "busy"
	c.do("PUT", "/Slot/"+first, s)
	if got := wait(); got != "5/5/1" {
		t.Errorf("after the first slot is taken, wait = %s, want 5/5/1", got)
	}
	if got := c.ids("/HealthcareService?waiting-time=le5"); !slices.Equal(got, []string{"hs-derm-city"}) {
		t.Errorf("waiting-time=le5 = %v", got)
	}
	// _sort=waiting-time puts the shortest wait first.
	_, sched2 := c.do("POST", "/Schedule", map[string]any{"resourceType": "Schedule",
		"actor": []any{map[string]any{"reference": "HealthcareService/hs-derm-far"}}})
	start := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	c.do("POST", "/Slot", map[string]any{"resourceType": "Slot", "status": "free",
		"schedule": map[string]any{"reference": "Schedule/" + sched2["id"].(string)},
		"start":    start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)})
	_, sorted := c.do("GET", "/HealthcareService?_sort=waiting-time&waiting-time:missing=false", nil)
	var order []string
	for _, e := range sorted["entry"].([]any) {
		order = append(order, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
	}
	if want := []string{"hs-derm-far", "hs-derm-city"}; !slices.Equal(order, want) {
		t.Errorf("_sort=waiting-time = %v, want %v", order, want)
	}
	// A client's PUT cannot change the waiting time.
	_, hs := c.do("GET", "/HealthcareService/hs-derm-city", nil)
	delete(hs, "extension")
	if status, out := c.do("PUT", "/HealthcareService/hs-derm-city", hs); status != 200 {
		t.Fatalf("PUT service: %d %v", status, out)
	}
	if got := wait(); got != "5/5/1" {
		t.Errorf("after a client PUT without it, wait = %s, want 5/5/1 kept", got)
	}
	s["status"] = "free"
	c.do("PUT", "/Slot/"+first, s)
	if got := wait(); got != "3/4/2" {
		t.Errorf("after the slot is freed, wait = %s, want 3/4/2", got)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
func itoa(n int) string     { b, _ := json.Marshal(n); return string(b) }
func ftoa(f float64) string { b, _ := json.Marshal(f); return string(b) }

func TestComputeWait(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/London")
	now := time.Date(2026, 3, 28, 23, 30, 0, 0, loc) // the night before the clocks change
	at := func(d, h int) time.Time { return time.Date(2026, 3, 28+d, h, 0, 0, 0, loc) }
	for _, tc := range []struct {
		name   string
		starts []time.Time
		n      int
		want   directory.Wait
	}{
		{"none", nil, 5, directory.Wait{}},
		{"tomorrow morning is one day", []time.Time{at(1, 9)}, 5, directory.Wait{NextSlot: at(1, 9), Days: 1, AverageDays: 1, Sample: 1}},
		{"unordered, averaged over n", []time.Time{at(10, 9), at(2, 9), at(4, 9)}, 2, directory.Wait{NextSlot: at(2, 9), Days: 2, AverageDays: 3, Sample: 2}},
	} {
		got := directory.ComputeWait(now, tc.starts, tc.n)
		if !got.NextSlot.Equal(tc.want.NextSlot) || got.Days != tc.want.Days || got.AverageDays != tc.want.AverageDays || got.Sample != tc.want.Sample {
			t.Errorf("%s: ComputeWait = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
