package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts and times the requests the server answers, by route
// pattern (gin's FullPath, such as /fhir/:type/:id: never the request's
// path, which carries ids and search values), method and status. Its
// labels are bounded whatever clients send: a request no route matches is
// "unmatched", a method outside HTTP's usual ones "other".
type httpMetrics struct {
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// requestBuckets are the latency histogram's upper bounds, in seconds:
// from a cached read (a fraction of a millisecond) to the request timeout.
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// newHTTPMetrics registers the request metrics in reg, and the audit
// queue's depth when audits can tell it (audit.Trail).
func newHTTPMetrics(reg prometheus.Registerer, audits Auditor) *httpMetrics {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signpost_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern, method and status; its _count is the number of requests.",
			Buckets: requestBuckets,
		}, []string{"route", "method", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signpost_http_requests_in_flight",
			Help: "HTTP requests being answered.",
		}),
	}
	reg.MustRegister(m.duration, m.inFlight)
	if q, ok := audits.(interface{ Pending() int }); ok {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signpost_audit_queue_records",
			Help: "Audit records of reads, searches and refusals buffered, waiting to be stored.",
		}, func() float64 { return float64(q.Pending()) }))
	}
	if l, ok := audits.(interface{ MoverLag() float64 }); ok {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signpost_audit_mover_lag_seconds",
			Help: "How long ago the audit records of writes were last all copied into the audit database (0 without one).",
		}, l.MoverLag))
	}
	return m
}

// observe is the middleware that times the rest of the chain.
func (m *httpMetrics) observe(c *gin.Context) {
	start := time.Now()
	m.inFlight.Inc()
	defer m.inFlight.Dec() // also when a handler panics through (http.ErrAbortHandler)
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.duration.WithLabelValues(route, methodLabel(c.Request.Method), statusLabel(c.Writer.Status())).
		Observe(time.Since(start).Seconds())
}

// methodLabel is method when it is one of HTTP's usual methods, else
// "other": a client chooses the method, and must not grow the series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// statusLabels are the status codes' texts, made once (a label per
// request should not cost an allocation).
var statusLabels = func() (out [600]string) {
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}
