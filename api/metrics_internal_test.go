package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRequestMetrics is the cost of the metrics middleware: a gin
// route answering from memory, without and with it (the difference is
// what every request pays; docs/operations.md).
func BenchmarkRequestMetrics(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	for _, on := range []bool{false, true} {
		name := "without"
		if on {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			r := gin.New()
			if on {
				r.Use(newHTTPMetrics(prometheus.NewRegistry(), nil).observe)
			}
			r.GET("/fhir/:type/:id", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
			req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/p1", nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := httptest.NewRecorder()
				for pb.Next() {
					w.Body.Reset()
					r.ServeHTTP(w, req)
				}
			})
		})
	}
}
