package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing: with Config.OTLPEndpoint set (serve --otlp-endpoint), the
// server exports OpenTelemetry spans over OTLP/HTTP (protobuf) to that
// collector: one per HTTP request (named by method and route pattern),
// one per store transaction (store/sqlite) and one per adapter delivery
// (adapters/dispatch). Spans carry no patient data: routes are patterns
// (/fhir/:type/:id), never paths, ids, search values or bodies. Off by
// default; without an endpoint nothing is recorded (OpenTelemetry's no-op
// provider).

// tracerName is the instrumentation scope of the HTTP spans.
const tracerName = "github.com/signpost-fhir/signpost/app"

// startTracing installs a tracer provider exporting to endpoint (an http
// or https URL; the path defaults to /v1/traces) as OpenTelemetry's global
// one, which the store and the adapters' spans use, and returns its
// shutdown, which flushes what is buffered.
func startTracing(ctx context.Context, endpoint string) (func(context.Context) error, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--otlp-endpoint %q: want an http:// or https:// URL of an OTLP/HTTP collector", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	version := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	res := resource.NewSchemaless(attribute.String("service.name", "signpost"), attribute.String("service.version", version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}

// traceRequests is the gin middleware of the HTTP spans: a server span per
// request, continuing the caller's trace (W3C traceparent) when it sends
// one, named "METHOD route" with the route pattern, the method and the
// status as attributes; a 5xx answer marks it failed.
func traceRequests(c *gin.Context) {
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	r := c.Request
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	method := methodName(r.Method)
	ctx, span := otel.Tracer(tracerName).Start(ctx, method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route)))
	defer span.End()
	c.Request = r.WithContext(ctx)
	c.Next()
	status := c.Writer.Status()
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
}

// methodName is method when it is one of HTTP's usual methods, else
// "_OTHER" (OpenTelemetry's convention): a client chooses the method.
func methodName(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "_OTHER"
}
