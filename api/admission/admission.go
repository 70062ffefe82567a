// Package admission lets a bounded number of reads (GET and HEAD
// requests) compute at once; the others wait their turn before they start.
//
// Why: the store has one writer goroutine, and every booking, referral and
// inbound message waits for it. Go's scheduler has no priorities: with
// sixteen searches runnable, the writer, woken from an fsync or a lock,
// waits behind them for a processor, and a write's latency grows with the
// number of reads in flight rather than with the work queued for the
// writer (an execution trace of the mixed workload showed the writers
// runnable but not running for more than half of its time). Admitting one
// read fewer than there are processors keeps the run queue short and a
// processor for the writers (the store's and the audit trail's), so a
// writer gets one soon after it asks; on two cores that costs the reads a
// few percent of their throughput, when the writers are idle, and took a
// booking's p99 under the mixed workload from about 100 ms to about 50
// (docs/PERFORMANCE.md, "Reads take turns").
//
// A read holds its slot while its handler computes: the store's work and
// the response body (authentication and the audit record come before and
// after it, in the server's middleware). It gives the slot back when it
// starts sending the response (its first Write, Flush or Hijack), so a
// slow client holds no slot; around a wait on the writer (Outside), so a
// read that must first have a write done (the audit trail's copy of
// queued records) does not hold up other reads meanwhile; and after Hold
// (20 ms) at most, so a costly search (a _total over a million slots) does
// not keep short reads waiting behind it: it carries on unadmitted,
// competing for the processors as every request did before. Writes are
// not gated: they wait for the writer, not for a processor.
package admission

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

// Hold is the longest a read keeps its slot.
const Hold = 20 * time.Millisecond

// Gate admits reads, at most its size at once.
type Gate struct {
	slots chan struct{}
	hold  time.Duration
}

// New returns a gate of n slots; n <= 0 means one fewer than
// runtime.GOMAXPROCS(0), and at least one.
func New(n int) *Gate {
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	return &Gate{slots: make(chan struct{}, n), hold: Hold}
}

// Middleware admits GET and HEAD requests through g; others pass. A read
// still waiting when its context ends (the request's deadline, or the
// client gone) is answered 503 through fail.
func (g *Gate) Middleware(fail func(*gin.Context, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead {
			c.Next()
			return
		}
		ctx := c.Request.Context()
		if !g.take(ctx) {
			fail(c, fhir.Errorf(fhir.Unavailable, "transient", "", "the server is busy: the request ended before its turn to be read"))
			c.Abort()
			return
		}
		s := &slot{g: g}
		s.held.Store(true)
		s.timer = time.AfterFunc(g.hold, func() { s.release() })
		defer s.timer.Stop()
		defer s.release()
		c.Request = c.Request.WithContext(context.WithValue(ctx, slotKey{}, s))
		c.Writer = &releasingWriter{ResponseWriter: c.Writer, s: s}
		c.Next()
	}
}

// take waits for a slot until ctx ends.
func (g *Gate) take(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	select {
	case g.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// Outside runs fn without the slot the request of ctx holds, if any, and
// takes a slot again afterwards (or carries on without one if ctx ends
// first). A read calls it around a wait on the writer.
func Outside(ctx context.Context, fn func()) {
	s, _ := ctx.Value(slotKey{}).(*slot)
	if s == nil || !s.release() {
		fn()
		return
	}
	fn()
	if s.g.take(ctx) {
		s.held.Store(true)
		s.timer.Reset(s.g.hold)
	}
}

type slotKey struct{}

// slot is one admitted request's hold on its gate.
type slot struct {
	g     *Gate
	held  atomic.Bool
	timer *time.Timer // releases the slot after the gate's hold (a no-op once released)
}

// release gives the slot back if it is held, and reports whether it was.
// The request's goroutine and its timer may both call it.
func (s *slot) release() bool {
	if !s.held.CompareAndSwap(true, false) {
		return false
	}
	<-s.g.slots
	return true
}

// releasingWriter gives the request's slot back before the response's
// bytes go to the connection.
type releasingWriter struct {
	gin.ResponseWriter
	s *slot
}

func (w *releasingWriter) Write(b []byte) (int, error) {
	w.s.release()
	return w.ResponseWriter.Write(b)
}

func (w *releasingWriter) WriteString(s string) (int, error) {
	w.s.release()
	return w.ResponseWriter.WriteString(s)
}

func (w *releasingWriter) Flush() {
	w.s.release()
	w.ResponseWriter.Flush()
}

func (w *releasingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.s.release()
	return w.ResponseWriter.Hijack()
}
