package audit_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// BenchmarkReadAudit measures what storing a read's record costs the
// audit database's writer: 1,000 searches recorded (a call centre's token,
// the searched type and query), then one Flush, with the real search
// parameters. It reports the process's CPU per record during the flush
// (µs-cpu/record) besides the flush's wall time.
func BenchmarkReadAudit(b *testing.B) {
	reg := storetest.Registry(b)
	mainDB := openSQLite(b)
	auditDB := openSQLite(b)
	trail := audit.New(audit.Config{BaseURL: storetest.Base, Writes: write.New(mainDB, reg), Store: auditDB,
		Mover: audit.NewMover(mainDB, auditDB, reg), Search: benchIndex(reg), Flush: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer trail.Close()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(trail.Middleware)
	p := &auth.Principal{ClientID: "call-centre", Subject: "user-1", Role: "call-centre", Organization: "RBENCH", FHIRUser: "Practitioner/p1"}
	r.GET("/fhir/Slot", func(c *gin.Context) {
		audit.Authenticated(c.Request.Context(), p)
		audit.Note(c.Request.Context(), "Slot", "", c.Request.URL.RawQuery)
		c.String(http.StatusOK, "ok")
	})
	const batch = 1000
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		for range batch {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest("GET", "/fhir/Slot?schedule=Schedule/sch-7&status=free&start=ge2026-12-08&_include=Slot:schedule", nil))
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
		before := processCPU()
		b.StartTimer()
		trail.Flush()
		b.StopTimer()
		cpu += processCPU() - before
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch)/1e3, "µs/record")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch)/1e3, "µs-cpu/record")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchIndex is the benchmark's extractor: the registry, or with
// BENCH_INDEX set, a part of its entries (none, all but _id and
// _lastUpdated, tokens or dates alone, all but the tokens every record
// shares a few values of), to see what each costs the writer.
func benchIndex(reg *search.Registry) audit.Extractor {
	switch os.Getenv("BENCH_INDEX") {
	case "none":
		return noIndex{}
	case "noid":
		return filtered{reg, func(e search.Entry) bool { return e.Param != "_id" && e.Param != "_lastUpdated" }}
	case "tokens":
		return filtered{reg, func(e search.Entry) bool { return e.Type == search.Token }}
	case "noshared":
		return filtered{reg, func(e search.Entry) bool {
			return e.Param != "type" && e.Param != "subtype" && e.Param != "action" && e.Param != "outcome"
		}}
	case "dates":
		return filtered{reg, func(e search.Entry) bool { return e.Type == search.Date }}
	}
	return reg
}

type filtered struct {
	reg  *search.Registry
	keep func(search.Entry) bool
}

func (f filtered) Extract(typ string, body []byte) ([]search.Entry, error) {
	all, err := f.reg.Extract(typ, body)
	var out []search.Entry
	for _, e := range all {
		if f.keep(e) {
			out = append(out, e)
		}
	}
	return out, err
}
