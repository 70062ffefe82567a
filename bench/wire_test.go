package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TestWire sends through a client's own connection: the request reaches
// the server as net/http's client would send it, the answer comes back,
// the connection is kept while the server keeps it, dialled again when
// the server closed it or it failed, and the end of the context cuts a
// slow answer off.
func TestWire(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/slow":
			time.Sleep(time.Second)
		case "/broken": // a connection dropped before the answer
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, r.Method+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Accept")+" "+r.Header.Get("Content-Type")+" "+string(body))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	var w wire
	defer w.close()
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		timeout            time.Duration
		want               string // the body; "" for an error
		conns              int32  // connections opened in all after it
	}{
		{"a GET", "GET", "/", nil, 0, "GET Bearer tok application/fhir+json  ", 1},
		{"a POST on the same connection", "POST", "/", []byte(`{"a":1}`), 0, `POST Bearer tok application/fhir+json application/fhir+json {"a":1}`, 1},
		{"the server closes it", "GET", "/close", nil, 0, "GET Bearer tok application/fhir+json  ", 1},
		{"so the next request dials", "GET", "/", nil, 0, "GET Bearer tok application/fhir+json  ", 2},
		{"a connection dropped", "GET", "/broken", nil, 0, "", 2},
		{"dialled again", "GET", "/", nil, 0, "GET Bearer tok application/fhir+json  ", 3},
		{"cut off by the context", "GET", "/slow", nil, 100 * time.Millisecond, "", 3},
		{"and after that", "POST", "/", []byte(`x`), 0, "POST Bearer tok application/fhir+json application/fhir+json x", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			st, b, err := w.send(ctx, "tok", tc.method, srv.URL+tc.path, tc.body)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("status %d, %q; want an error", st, b)
			case tc.want == "" && tc.timeout > 0 && !errors.Is(err, os.ErrDeadlineExceeded):
				t.Errorf("error %v; want the deadline's", err)
			case tc.want != "" && (err != nil || st != http.StatusCreated || string(b) != tc.want):
				t.Errorf("got %d, %q, %v; want 201, %q", st, b, err, tc.want)
			}
			if tc.timeout > 0 && time.Since(start) > 500*time.Millisecond {
				t.Errorf("took %s after a context of %s", time.Since(start), tc.timeout)
			}
			if n := conns.Load(); n != tc.conns {
				t.Errorf("%d connections opened; want %d", n, tc.conns)
			}
		})
	}
}
