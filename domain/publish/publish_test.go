package publish_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/publish"
)

const phone = "01632 960001"

// world is a small region: a directly bookable service with free, busy and
// past slots and a booked patient; an indirectly bookable service and an
// inactive one, neither of which may be published.
func world(now time.Time) []map[string]any {
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	slot := func(id, sched, status string, start time.Duration) map[string]any {
		return map[string]any{"resourceType": "Slot", "id": id, "schedule": map[string]any{"reference": "Schedule/" + sched},
			"status": status, "start": at(start), "end": at(start + 20*time.Minute)}
	}
	service := func(id, loc, bookability string, active bool) map[string]any {
		return map[string]any{"resourceType": "HealthcareService", "id": id, "active": active, "name": "Service " + id,
			"providedBy": map[string]any{"reference": "Organization/org-1"},
			"location":   []any{map[string]any{"reference": "Location/" + loc}},
			"telecom":    []any{map[string]any{"system": "phone", "value": phone}},
			"type": []any{map[string]any{"coding": []any{map[string]any{"system": publish.ServiceTypes, "code": "165",
				"display": "Dermatology"}}}},
			"characteristic": []any{map[string]any{"coding": []any{map[string]any{
				"system": "https://signpost.example/fhir/CodeSystem/bookability", "code": bookability}}}}}
	}
	location := func(id string) map[string]any {
		return map[string]any{"resourceType": "Location", "id": id, "name": "Clinic " + id, "status": "active",
			"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/ods-site-code", "value": "RX1" + id}},
			"address":    map[string]any{"line": []any{"1 Station Road"}, "city": "Ellingford", "state": "WX", "postalCode": "WX1 1AA"},
			"position":   map[string]any{"latitude": 50.9, "longitude": -1.4},
			"telecom":    []any{map[string]any{"system": "phone", "value": "01632 960000"}}}
	}
	return []map[string]any{
		{"resourceType": "Organization", "id": "org-1", "name": "Wessex Trust", "active": true},
		location("loc-1"), location("loc-2"), location("loc-3"),
		service("hs-direct", "loc-1", "directly-bookable", true),
		service("hs-indirect", "loc-2", "indirectly-bookable", true),
		service("hs-inactive", "loc-3", "directly-bookable", false),
		{"resourceType": "Schedule", "id": "sch-1", "active": true, "actor": []any{map[string]any{"reference": "HealthcareService/hs-direct"}}},
		{"resourceType": "Schedule", "id": "sch-2", "active": true, "actor": []any{map[string]any{"reference": "HealthcareService/hs-indirect"}}},
		{"resourceType": "Schedule", "id": "sch-3", "active": true, "actor": []any{map[string]any{"reference": "HealthcareService/hs-inactive"}}},
		slot("sl-free", "sch-1", "free", 48*time.Hour),
		slot("sl-busy", "sch-1", "busy", 49*time.Hour),
		slot("sl-past", "sch-1", "free", -48*time.Hour),
		slot("sl-indirect", "sch-2", "free", 48*time.Hour),
		slot("sl-inactive", "sch-3", "free", 48*time.Hour),
		{"resourceType": "Patient", "id": "pat-zeb", "name": []any{map[string]any{"family": "Zebedee"}}},
	}
}

func get(t testing.TB, u string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// manifest is the Slot Publisher API's manifest.
type manifest struct {
	TransactionTime string `json:"transactionTime"`
	Request         string `json:"request"`
	Output          []struct {
		Type      string `json:"type"`
		URL       string `json:"url"`
		Extension *struct {
			State []string `json:"state"`
		} `json:"extension"`
	} `json:"output"`
	Error []any `json:"error"`
}

// timestamp is the specification's timestamp format (FHIR instant).
var timestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)

func fetchManifest(t testing.TB, u string, header map[string]string) (manifest, http.Header) {
	t.Helper()
	status, h, body := get(t, u, header)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, status, body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"transactionTime", "request", "output", "error"} {
		if raw[k] == nil {
			t.Errorf("the manifest has no %s: %s", k, body)
		}
	}
	var m manifest
	_ = json.Unmarshal(body, &m)
	if !timestamp.MatchString(m.TransactionTime) {
		t.Errorf("transactionTime %q is not a timestamp", m.TransactionTime)
	}
	return m, h
}

// lines downloads every file of m, by type; each line as a JSON object.
func lines(t *testing.T, m manifest) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, o := range m.Output {
		if !slices.Contains([]string{"Location", "Schedule", "Slot"}, o.Type) {
			t.Errorf("output type %q", o.Type)
		}
		for _, accept := range []string{"", "application/fhir+ndjson"} {
			status, h, body := get(t, o.URL, map[string]string{"Accept": accept})
			if status != http.StatusOK || h.Get("Content-Type") != publish.NDJSON || h.Get("ETag") == "" {
				t.Fatalf("GET %s (Accept %q): %d %v %s", o.URL, accept, status, h, body)
			}
			if strings.Contains(string(body), "Patient") || strings.Contains(string(body), "Zebedee") || strings.Contains(string(body), "pat-zeb") {
				t.Errorf("patient data published: %s", body)
			}
			if accept != "" {
				continue
			}
			sc := bufio.NewScanner(bytes.NewReader(body))
			for sc.Scan() {
				var r map[string]any
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("%s: %v", o.URL, err)
				}
				if r["resourceType"] != o.Type {
					t.Errorf("a %v in a %s file", r["resourceType"], o.Type)
				}
				out[o.Type] = append(out[o.Type], r)
			}
		}
	}
	return out
}

func ids(rs []map[string]any) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r["id"].(string))
	}
	sort.Strings(out)
	return out
}

// TestBulkPublish checks the manifest and its files against the SMART
// Scheduling Links specification: the manifest's fields, each file's
// required fields and extension URLs, only bookable services, no past
// slots, no patient data, and no token needed.
func TestBulkPublish(t *testing.T) {
	a, ts := apptest.New(t, app.Config{Auth: true})
	now := time.Now()
	apptest.Seed(t, a, world(now)...)
	base := ts.URL + "/fhir"
	for _, accept := range []string{"", "application/json"} {
		m, h := fetchManifest(t, base+"/$bulk-publish", map[string]string{"Accept": accept})
		if m.Request != base+"/$bulk-publish" {
			t.Errorf("request %q", m.Request)
		}
		if !strings.Contains(h.Get("Cache-Control"), "max-age=") || h.Get("ETag") == "" || h.Get("Last-Modified") == "" {
			t.Errorf("no cache headers: %v", h)
		}
		if status, _, _ := get(t, base+"/$bulk-publish", map[string]string{"If-None-Match": h.Get("ETag")}); status != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", status)
		}
		if status, _, _ := get(t, base+"/$bulk-publish", map[string]string{"If-Modified-Since": h.Get("Last-Modified")}); status != http.StatusNotModified {
			t.Errorf("If-Modified-Since: %d, want 304", status)
		}
		for _, o := range m.Output {
			if !strings.HasPrefix(o.URL, base+"/") {
				t.Errorf("url %q is not absolute on the server", o.URL)
			}
			if o.Type == "Slot" && (o.Extension == nil || !slices.Equal(o.Extension.State, []string{"WX"})) {
				t.Errorf("Slot output without extension.state [WX]: %+v", o.Extension)
			}
		}
	}
	m, _ := fetchManifest(t, base+"/$bulk-publish", nil)
	got := lines(t, m)

	if want := []string{"loc-1"}; !slices.Equal(ids(got["Location"]), want) {
		t.Errorf("Locations %v, want %v", ids(got["Location"]), want)
	}
	for _, l := range got["Location"] {
		for _, k := range []string{"name", "telecom", "address", "identifier", "position"} {
			if l[k] == nil {
				t.Errorf("Location without %s: %v", k, l)
			}
		}
		addr, _ := l["address"].(map[string]any)
		for _, k := range []string{"line", "city", "state", "postalCode"} {
			if addr[k] == nil {
				t.Errorf("Location address without %s: %v", k, addr)
			}
		}
		for _, c := range l["telecom"].([]any) {
			if s := c.(map[string]any)["system"]; s != "phone" && s != "url" {
				t.Errorf("telecom system %v", s)
			}
		}
	}
	if want := []string{"sch-1"}; !slices.Equal(ids(got["Schedule"]), want) {
		t.Errorf("Schedules %v, want %v", ids(got["Schedule"]), want)
	}
	for _, s := range got["Schedule"] {
		actor, _ := s["actor"].([]any)
		if len(actor) != 1 || actor[0].(map[string]any)["reference"] != "Location/loc-1" {
			t.Errorf("Schedule actor %v, want exactly Location/loc-1", s["actor"])
		}
		st, _ := s["serviceType"].([]any)
		if len(st) == 0 || !strings.Contains(mustJSON(st), `"system":"`+publish.ServiceTypes+`"`) {
			t.Errorf("Schedule serviceType %v", s["serviceType"])
		}
	}
	if want := []string{"sl-busy", "sl-free"}; !slices.Equal(ids(got["Slot"]), want) {
		t.Errorf("Slots %v, want %v", ids(got["Slot"]), want)
	}
	root := strings.TrimSuffix(base, "/fhir")
	for _, s := range got["Slot"] {
		for _, k := range []string{"schedule", "status", "start", "end"} {
			if s[k] == nil {
				t.Errorf("Slot without %s: %v", k, s)
			}
		}
		if s["schedule"].(map[string]any)["reference"] != "Schedule/sch-1" {
			t.Errorf("Slot schedule %v", s["schedule"])
		}
		for _, k := range []string{"start", "end"} {
			if !timestamp.MatchString(s[k].(string)) {
				t.Errorf("Slot %s %v is not a timestamp", k, s[k])
			}
		}
		ext := map[string]map[string]any{}
		for _, e := range asSlice(s["extension"]) {
			em := e.(map[string]any)
			ext[em["url"].(string)] = em
		}
		switch s["id"] {
		case "sl-free":
			if s["status"] != "free" || ext[publish.BookingDeepLink]["valueUrl"] != root+"/book?slot=sl-free" ||
				ext[publish.BookingPhone]["valueString"] != phone || len(ext) != 2 {
				t.Errorf("free slot %v", s)
			}
		case "sl-busy":
			if s["status"] != "busy" || len(ext) != 0 {
				t.Errorf("busy slot %v", s)
			}
		}
	}
	if publish.BookingDeepLink != "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link" ||
		publish.BookingPhone != "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-phone" {
		t.Error("the extension URLs are not the specification's")
	}
}

// TestBulkPublishSince: with _since, the files hold only what changed
// since; a change to a service republishes its schedules and slots.
func TestBulkPublishSince(t *testing.T) {
	a, ts := apptest.New(t, app.Config{})
	now := time.Now()
	apptest.Seed(t, a, world(now)...)
	base := ts.URL + "/fhir"
	time.Sleep(5 * time.Millisecond) // lastUpdated has millisecond precision: the cut falls between the writes
	cut := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	apptest.Seed(t, a, map[string]any{"resourceType": "Slot", "id": "sl-new", "schedule": map[string]any{"reference": "Schedule/sch-1"},
		"status": "free", "start": now.Add(72 * time.Hour).UTC().Format(time.RFC3339), "end": now.Add(73 * time.Hour).UTC().Format(time.RFC3339)})
	since := "?_since=" + url.QueryEscape(cut.Format(time.RFC3339Nano))
	m, _ := fetchManifest(t, base+"/$bulk-publish"+since, nil)
	for _, o := range m.Output {
		if !strings.Contains(o.URL, "_since=") {
			t.Errorf("file url %s does not carry _since", o.URL)
		}
	}
	got := lines(t, m)
	if len(got["Location"]) != 0 || len(got["Schedule"]) != 0 || !slices.Equal(ids(got["Slot"]), []string{"sl-new"}) {
		t.Errorf("since the cut: %v %v %v, want only Slot sl-new", ids(got["Location"]), ids(got["Schedule"]), ids(got["Slot"]))
	}
	full, _ := fetchManifest(t, base+"/$bulk-publish", nil)
	if all := lines(t, full); !slices.Equal(ids(all["Slot"]), []string{"sl-busy", "sl-free", "sl-new"}) {
		t.Errorf("without _since: %v", ids(all["Slot"]))
	}

	// The service's phone changes: its schedule and slots are published again.
	time.Sleep(5 * time.Millisecond)
	cut = time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	hs := world(now)[4]
	hs["telecom"] = []any{map[string]any{"system": "phone", "value": "01632 960999"}}
	apptest.Seed(t, a, hs)
	m, _ = fetchManifest(t, base+"/$bulk-publish?_since="+url.QueryEscape(cut.Format(time.RFC3339Nano)), nil)
	got = lines(t, m)
	if !slices.Equal(ids(got["Schedule"]), []string{"sch-1"}) || !slices.Equal(ids(got["Slot"]), []string{"sl-busy", "sl-free", "sl-new"}) ||
		!slices.Equal(ids(got["Location"]), []string{"loc-1"}) {
		t.Errorf("after the service changed: %v %v %v", ids(got["Location"]), ids(got["Schedule"]), ids(got["Slot"]))
	}
	if !strings.Contains(mustJSON(got["Slot"]), "01632 960999") {
		t.Error("the slots do not carry the new phone")
	}
}

// TestBulkPublishFileErrors: a file URL not made by the manifest is a 400
// OperationOutcome naming the input.
func TestBulkPublishFileErrors(t *testing.T) {
	_, ts := apptest.New(t, app.Config{Auth: true})
	for _, tt := range []struct{ query, where string }{
		{"type=Patient&from=a&to=b", "type"},
		{"type=Slot&from=%20&to=b", "from"},
		{"type=Slot&from=a&to=b&_since=yesterday", "_since"},
	} {
		status, _, body := get(t, ts.URL+"/fhir/$bulk-publish-file?"+tt.query, nil)
		if status != http.StatusBadRequest || !strings.Contains(string(body), `"`+tt.where+`"`) {
			t.Errorf("%s: %d %s", tt.query, status, body)
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
