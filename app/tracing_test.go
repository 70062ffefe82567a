package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// otlpReceiver is an OTLP/HTTP collector on 127.0.0.1 that keeps the spans
// it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	paths []string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req collector.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.paths = append(o.paths, r.URL.Path)
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// TestTracingExportsSpans: with OTLPEndpoint, requests are exported as
// server spans named by route pattern, each write's store transaction as a
// child span in the request's trace, to an OTLP/HTTP collector; no span
// name or attribute carries an id, a search value or anything from a body.
func TestTracingExportsSpans(t *testing.T) {
	rec := &otlpReceiver{}
	col := httptest.NewServer(rec)
	defer col.Close()
	_, ts := apptest.New(t, app.Config{OTLPEndpoint: col.URL})
	for _, r := range []struct{ method, path, body string }{
		{"PUT", "/fhir/Patient/secret-id-1", `{"resourceType":"Patient","id":"secret-id-1","name":[{"family":"Secretname"}]}`},
		{"GET", "/fhir/Patient/secret-id-1", ""},
		{"GET", "/fhir/Patient?family=Secretname", ""},
		{"GET", "/fhir/Patient/missing-id", ""},
	} {
		req, _ := http.NewRequest(r.method, ts.URL+r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	tp, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	if !ok {
		t.Fatalf("the global tracer provider is %T, want the SDK's", otel.GetTracerProvider())
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	byName := map[string][]*tracepb.Span{}
	for _, s := range rec.spans {
		byName[s.Name] = append(byName[s.Name], s)
		for _, a := range s.Attributes {
			v := a.Value.String()
			if strings.Contains(v, "secret-id") || strings.Contains(v, "Secretname") || strings.Contains(v, "missing-id") {
				t.Errorf("span %q attribute %s carries request data: %s", s.Name, a.Key, v)
			}
		}
		if strings.Contains(s.Name, "secret") || strings.Contains(s.Name, "Secretname") {
			t.Errorf("span name %q carries request data", s.Name)
		}
	}
	for _, name := range []string{"PUT /fhir/:type/:id", "GET /fhir/:type/:id", "GET /fhir/:type", "sqlite.update"} {
		if len(byName[name]) == 0 {
			t.Errorf("no span %q among %d exported (paths %v)", name, len(rec.spans), rec.paths)
		}
	}
	if len(byName["GET /fhir/:type/:id"]) != 2 {
		t.Errorf("%d spans of GET /fhir/:type/:id, want 2", len(byName["GET /fhir/:type/:id"]))
	}
	put := byName["PUT /fhir/:type/:id"]
	if len(put) == 1 {
		if put[0].Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("the request span is of kind %v, want server", put[0].Kind)
		}
		child := false
		for _, s := range byName["sqlite.update"] {
			if string(s.TraceId) == string(put[0].TraceId) && string(s.ParentSpanId) == string(put[0].SpanId) {
				child = true
			}
		}
		if !child {
			t.Error("the PUT's store transaction is not a child span of the request")
		}
		attrs := map[string]string{}
		for _, a := range put[0].Attributes {
			attrs[a.Key] = a.Value.String()
		}
		if !strings.Contains(attrs["http.route"], "/fhir/:type/:id") || !strings.Contains(attrs["http.response.status_code"], "201") {
			t.Errorf("the PUT span's attributes: %v", attrs)
		}
	}
	for _, p := range rec.paths {
		if p != "/v1/traces" {
			t.Errorf("exported to %s, want /v1/traces", p)
		}
	}
}
