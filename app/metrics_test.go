package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/booking/bookingtest"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// probe is an adapter instance of the test kind "metrics-probe": it does
// nothing and says it is degraded, so that the adapter state the metrics
// report can be told from the default.
type probe struct{}

func (probe) Start(context.Context) error { return nil }
func (probe) Stop(context.Context) error  { return nil }
func (probe) Status(context.Context) adapters.Status {
	return adapters.Status{State: adapters.StateDegraded}
}

func init() {
	adapters.Register("metrics-probe", func(adapters.Env, json.RawMessage) (adapters.Adapter, error) { return probe{}, nil })
}

// scrape reads the metrics served at url, as Prometheus would.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include labels (a histogram's sample count), and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// do sends a request to the FHIR server and returns its status and body.
func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case method == "PATCH":
		req.Header.Set("Content-Type", "application/json-patch+json")
	case body != "":
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestMetrics makes requests of the real server (a booking, the same
// slot again, a hold that expires, a read, requests no route matches),
// scrapes the metrics listener and checks that each counter moved by what
// those requests did, with the right labels; that no label carries an id
// or a path; and that the FHIR listener does not serve /metrics.
func TestMetrics(t *testing.T) {
	a, ts := apptest.New(t, app.Config{HoldFor: time.Hour,
		Adapters: &adapters.File{Adapters: []adapters.Instance{{Name: "probe", Kind: "metrics-probe",
			Principal: adapters.PrincipalConfig{Role: "provider", Organization: "RH8"}}}}})
	ms := httptest.NewServer(a.MetricsHandler())
	defer ms.Close()
	ctx := context.Background()
	base := ts.URL + "/fhir"
	w := bookingtest.Workload{Slots: 4, Services: 1, Patient: "metrics-patient"}
	if err := w.Seed(ctx, base); err != nil {
		t.Fatal(err)
	}
	err := a.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.(store.OutboxTx).Enqueue(ctx, store.Message{Destination: "probe", Key: "Appointment/m1", ControlID: "m1",
			ContentType: "application/hl7-v2", Payload: []byte("MSH|")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	before := scrape(t, ms.URL+"/metrics")
	appt := func(status, slot string) string {
		return `{"resourceType":"Appointment","status":"` + status + `","slot":[{"reference":"Slot/` + slot + `"}],` +
			`"participant":[{"actor":{"reference":"Patient/metrics-patient"},"status":"accepted"}]}`
	}
	st, body := do(t, "POST", base+"/Appointment", appt("booked", bookingtest.SlotID(0)))
	if st != http.StatusCreated {
		t.Fatalf("booking: %d %s", st, body)
	}
	var booked struct{ ID string }
	json.Unmarshal(body, &booked)
	if st, body := do(t, "POST", base+"/Appointment", appt("booked", bookingtest.SlotID(0))); st != http.StatusConflict ||
		!strings.Contains(string(body), "SLOT_NOT_AVAILABLE") {
		t.Fatalf("booking a taken slot: %d %s, want 409 SLOT_NOT_AVAILABLE", st, body)
	}
	hold := func(slot string) string {
		st, body := do(t, "POST", base+"/Appointment", appt("pending", slot))
		var h struct{ ID string }
		if json.Unmarshal(body, &h); st != http.StatusCreated || h.ID == "" {
			t.Fatalf("holding Slot/%s: %d %s", slot, st, body)
		}
		return h.ID
	}
	expire(t, a, hold(bookingtest.SlotID(1)))
	if _, err := a.Booking.Sweep(ctx); err != nil { // releases the hold, unless the background sweep did
		t.Fatal(err)
	}
	confirm := hold(bookingtest.SlotID(2))
	if st, body := do(t, "PATCH", base+"/Appointment/"+confirm, `[{"op":"replace","path":"/status","value":"booked"}]`); st != http.StatusOK {
		t.Fatalf("confirming a hold: %d %s", st, body)
	}
	for range 2 { // the second read finds the first's row in the heads cache
		if st, body := do(t, "GET", base+"/Appointment/"+booked.ID, ""); st != http.StatusOK {
			t.Fatalf("reading the booking: %d %s", st, body)
		}
	}
	if st, _ := do(t, "GET", ts.URL+"/no/such/"+booked.ID, ""); st != http.StatusNotFound {
		t.Fatalf("an unrouted path: %d, want 404", st)
	}
	if st, _ := do(t, "BREW", base+"/Patient", ""); st != http.StatusNotFound {
		t.Fatalf("an unknown method: %d, want 404", st)
	}
	after := scrape(t, ms.URL+"/metrics")

	const (
		delta   = iota // the value grew by want
		value          // the value is want
		atLeast        // the value is at least want
	)
	const requests = "signpost_http_request_duration_seconds"
	for _, c := range []struct {
		name   string
		labels map[string]string
		how    int
		want   float64
	}{
		{requests, map[string]string{"route": "/fhir/:type", "method": "POST", "status": "201"}, delta, 3},
		{requests, map[string]string{"route": "/fhir/:type/:id", "method": "PATCH", "status": "200"}, delta, 1},
		{requests, map[string]string{"route": "/fhir/:type", "method": "POST", "status": "409"}, delta, 1},
		{requests, map[string]string{"route": "/fhir/:type/:id", "method": "GET", "status": "200"}, delta, 2},
		{requests, map[string]string{"route": "unmatched", "method": "GET", "status": "404"}, delta, 1},
		{requests, map[string]string{"route": "unmatched", "method": "other", "status": "404"}, delta, 1},
		{"signpost_http_requests_in_flight", nil, value, 0},
		{"signpost_bookings_total", nil, delta, 2}, // a booking, a hold confirmed
		{"signpost_holds_created_total", nil, delta, 2},
		{"signpost_holds_expired_total", nil, delta, 1},
		{"signpost_booking_conflicts_total", map[string]string{"code": "SLOT_NOT_AVAILABLE"}, delta, 1},
		{"signpost_booking_conflicts_total", map[string]string{"code": "HOLD_EXPIRED"}, value, 0},
		// The bookings, the holds and the release committed (in one
		// batch or more). The SQLite store's only.
		{"signpost_store_commit_batch_size", nil, atLeast, 1},
		{"signpost_store_commit_seconds", nil, atLeast, 1},
		{"signpost_store_batch_seconds", nil, atLeast, 1},
		{"signpost_store_cache_hits_total", map[string]string{"store": "main", "cache": "heads"}, atLeast, 1},
		{"signpost_store_cache_entries", map[string]string{"store": "main", "cache": "bodies"}, atLeast, 1},
		{"signpost_store_cache_misses_total", map[string]string{"store": "main", "cache": "bodies"}, atLeast, 1},
		{"signpost_store_cache_bytes", map[string]string{"store": "main", "cache": "heads"}, atLeast, 1},
		{"signpost_adapter_state", map[string]string{"instance": "probe", "kind": "metrics-probe", "state": "degraded"}, value, 1},
		{"signpost_adapter_state", map[string]string{"instance": "probe", "state": "up"}, value, 0},
		{"signpost_outbox_messages", map[string]string{"destination": "probe", "state": "pending"}, value, 1},
		{"signpost_outbox_messages", map[string]string{"destination": "probe", "state": "dead"}, value, 0},
		{"signpost_outbox_oldest_pending_seconds", map[string]string{"destination": "probe"}, atLeast, 0},
		{"go_goroutines", nil, atLeast, 1},
		{"process_resident_memory_bytes", nil, atLeast, 1},
	} {
		if _, isSQLite := a.Store.(*sqlite.Store); !isSQLite && a.Audits == nil && strings.HasPrefix(c.name, "signpost_store_") {
			continue
		}
		got, ok := sample(after, c.name, c.labels)
		if !ok {
			t.Errorf("%s %v: no such series", c.name, c.labels)
			continue
		}
		if c.how == delta {
			was, _ := sample(before, c.name, c.labels)
			got -= was
		}
		if c.how == atLeast && got < c.want || c.how != atLeast && got != c.want {
			t.Errorf("%s %v: %v, want %s%v", c.name, c.labels, got, map[int]string{delta: "+", value: "", atLeast: ">= "}[c.how], c.want)
		}
	}
	// No label carries what a request named: ids, paths, the patient.
	for name, f := range after {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if strings.Contains(v, booked.ID) || strings.Contains(v, "metrics-patient") || strings.Contains(v, "/no/such") ||
					v == bookingtest.SlotID(0) || strings.Contains(v, "BREW") {
					t.Errorf("%s has label %s=%q from a request", name, l.GetName(), v)
				}
			}
		}
	}
	// The FHIR listener does not serve the metrics.
	if st, body := do(t, "GET", ts.URL+"/metrics", ""); st != http.StatusNotFound || strings.Contains(string(body), "signpost_") {
		t.Errorf("GET /metrics on the FHIR listener: %d %.200s, want 404 without metrics", st, body)
	}
}

// expire moves the hold Appointment/id's expiry into the past, straight
// in the store, as time passing would.
func expire(t *testing.T, a *app.App, id string) {
	t.Helper()
	err := a.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		res, err := tx.Read(ctx, "Appointment", id)
		if err != nil {
			return err
		}
		obj, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return err
		}
		obj.Set("extension", []map[string]string{{"url": booking.ExtHoldExpires, "valueInstant": "2020-01-01T00:00:00Z"}})
		idx, err := a.Search.Extract("Appointment", obj.Bytes())
		if err != nil {
			return err
		}
		return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Appointment", ID: id, Version: res.Version + 1,
			LastUpdated: time.Now().UTC(), JSON: obj.Bytes()}, Index: idx})
	})
	if err != nil {
		t.Fatalf("expiring the hold Appointment/%s: %v", id, err)
	}
}

// TestMetricsAuditQueue: with authorisation and audit on, the audit
// queue's depth and the mover's lag are reported (an open server keeps no
// audit trail); two servers in one process keep registries of their own.
func TestMetricsAuditQueue(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  app.Config
		want bool
	}{
		{"open", app.Config{}, false},
		{"auth and audit", app.Config{Auth: true}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, _ := apptest.New(t, c.cfg)
			ms := httptest.NewServer(a.MetricsHandler())
			defer ms.Close()
			scraped := scrape(t, ms.URL)
			for _, name := range []string{"signpost_audit_queue_records", "signpost_audit_mover_lag_seconds"} {
				got, ok := sample(scraped, name, nil)
				if ok != c.want || got < 0 || got > 60 {
					t.Errorf("%s: %v (present %v), want present %v", name, got, ok, c.want)
				}
			}
		})
	}
}
