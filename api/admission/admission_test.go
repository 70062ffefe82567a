package admission

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

// server serves h behind gate g (with a request deadline of timeout) on a
// loopback listener.
func server(t *testing.T, g *Gate, timeout time.Duration, h gin.HandlerFunc) *httptest.Server {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	})
	r.Use(g.Middleware(func(c *gin.Context, err error) {
		status := http.StatusInternalServerError
		if fhir.KindOf(err) == fhir.Unavailable {
			status = http.StatusServiceUnavailable
		}
		c.String(status, err.Error())
	}))
	r.Any("/r", h)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// call sends one request and returns its status.
func call(t *testing.T, srv *httptest.Server, method string) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+"/r", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// concurrency counts the handlers running at once and the most seen.
type concurrency struct{ now, most atomic.Int32 }

func (c *concurrency) enter() {
	n := c.now.Add(1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *concurrency) leave() { c.now.Add(-1) }

// TestGateBoundsReads: at most the gate's size of GET (and HEAD) handlers
// compute at once, whatever the number of clients; other methods pass.
func TestGateBoundsReads(t *testing.T) {
	for _, tc := range []struct {
		method string
		size   int
		want   func(most int32) bool
	}{
		{http.MethodGet, 2, func(m int32) bool { return m == 2 }},
		{http.MethodHead, 3, func(m int32) bool { return m == 3 }},
		{http.MethodGet, 1, func(m int32) bool { return m == 1 }},
		{http.MethodPost, 2, func(m int32) bool { return m > 2 }},
	} {
		t.Run(tc.method, func(t *testing.T) {
			var cc concurrency
			srv := server(t, New(tc.size), 10*time.Second, func(c *gin.Context) {
				cc.enter()
				time.Sleep(5 * time.Millisecond) // computing, slot held
				cc.leave()
				c.String(http.StatusOK, "ok")
			})
			var wg sync.WaitGroup
			for range 12 {
				wg.Go(func() {
					for range 5 {
						if st := call(t, srv, tc.method); st != http.StatusOK {
							t.Errorf("status %d", st)
						}
					}
				})
			}
			wg.Wait()
			if m := cc.most.Load(); !tc.want(m) {
				t.Errorf("%s with %d slots: %d handlers at once", tc.method, tc.size, m)
			}
		})
	}
}

// TestGateReleases: a read gives its slot back when it starts sending its
// response, around Outside, and after the hold; a read waiting past its
// deadline is answered 503. Each case fills the gate's one slot with a
// first request that stays in its handler, and checks whether a second
// read gets through meanwhile.
func TestGateReleases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hold  time.Duration
		first func(c *gin.Context, stay <-chan struct{}) // runs in the first request's handler
		want  int                                        // the second read's status
	}{
		{"response begun", time.Hour, func(c *gin.Context, stay <-chan struct{}) {
			c.Writer.WriteString("partial")
			c.Writer.Flush()
			<-stay // a slow client or a long stream: the slot is free
		}, http.StatusOK},
		{"outside", time.Hour, func(c *gin.Context, stay <-chan struct{}) {
			Outside(c.Request.Context(), func() { <-stay }) // waiting on the writer
		}, http.StatusOK},
		{"hold passed", 30 * time.Millisecond, func(c *gin.Context, stay <-chan struct{}) {
			<-stay // computing for longer than the hold
		}, http.StatusOK},
		{"computing", time.Hour, func(c *gin.Context, stay <-chan struct{}) {
			<-stay // the slot stays taken: the second read times out waiting
		}, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(1)
			g.hold = tc.hold
			stay := make(chan struct{})
			entered := make(chan struct{}, 2)
			var first atomic.Bool
			srv := server(t, g, 300*time.Millisecond+tc.hold%time.Hour, func(c *gin.Context) {
				entered <- struct{}{}
				if first.CompareAndSwap(false, true) {
					tc.first(c, stay)
				}
				c.String(http.StatusOK, "ok")
			})
			done := make(chan struct{})
			go func() {
				defer close(done)
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/r", nil)
				if res, err := srv.Client().Do(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}()
			<-entered
			if got := call(t, srv, http.MethodGet); got != tc.want {
				t.Errorf("second read: status %d, want %d", got, tc.want)
			}
			close(stay)
			<-done
			if n := len(g.slots); n != 0 {
				t.Errorf("%d slots still taken after both requests", n)
			}
		})
	}
}

// TestOutsideTakesTheSlotAgain: after Outside, the read holds a slot again
// (others wait), and without a slot in ctx Outside just runs fn.
func TestOutsideTakesTheSlotAgain(t *testing.T) {
	ran := false
	Outside(context.Background(), func() { ran = true })
	if !ran {
		t.Fatal("Outside without a slot did not run fn")
	}
	g := New(1)
	g.hold = time.Hour
	s := &slot{g: g}
	g.slots <- struct{}{}
	s.held.Store(true)
	s.timer = time.AfterFunc(time.Hour, func() { s.release() })
	defer s.timer.Stop()
	ctx := context.WithValue(context.Background(), slotKey{}, s)
	Outside(ctx, func() {
		if len(g.slots) != 0 {
			t.Error("the slot is still taken inside Outside")
		}
	})
	if !s.held.Load() || len(g.slots) != 1 {
		t.Error("the slot was not taken again after Outside")
	}
	wait, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if g.take(wait) || !errors.Is(wait.Err(), context.DeadlineExceeded) {
		t.Error("another read got the slot Outside took again")
	}
}
