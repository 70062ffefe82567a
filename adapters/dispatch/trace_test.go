package dispatch

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestDeliverySpans: with a tracer provider installed (app's
// --otlp-endpoint), each message sent is a span "adapter.deliver" with the
// destination and the attempt, failed when the receiver did not accept
// it, and carrying nothing of the message.
func TestDeliverySpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	h := newHarness(t, nil, map[string][]reply{"b1": {ae("slot locked")}})
	h.ids = enqueue(t, h.s, epoch, "a/a1", "b/b1")
	if _, err := h.d.DispatchOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) < 2 {
		t.Fatalf("%d spans ended, want one per message sent (2)", len(spans))
	}
	var ok, failed int
	for _, s := range spans {
		if s.Name() != "adapter.deliver" {
			continue
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["signpost.destination"] != "pas" || attrs["signpost.attempt"] != "1" || len(attrs) != 2 {
			t.Errorf("span attributes %v, want the destination and the attempt only", attrs)
		}
		switch s.Status().Code {
		case codes.Error:
			failed++
		default:
			ok++
		}
	}
	if ok != 1 || failed != 1 {
		t.Errorf("%d delivery spans accepted and %d failed, want 1 and 1", ok, failed)
	}
}
