package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"time"
)

// wire is one benchmark client's own keep-alive connection to the
// server. A request is written and its answer read on the client's own
// goroutine, in net/http's wire format (Request.Write, ReadResponse),
// without http.Transport: its connection pool hands every request to a
// writing and a reading goroutine of the connection and back, which took
// 41% of the load generator's CPU (docs/PERFORMANCE.md, "A lighter load
// generator"), from the cores it shares with a server on the same
// machine. A connection that failed is closed and dialled again by the
// next request; nothing is retried.
type wire struct {
	c   net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	buf bytes.Buffer // the last answer's body
}

// send sends one request with token and returns the status and body, as
// Config.send does. The body is valid until the next send.
func (w *wire) send(ctx context.Context, token, method, u string, body []byte) (int, []byte, error) {
	req, err := newRequest(ctx, token, method, u, body)
	if err != nil {
		return 0, nil, err
	}
	if w.c == nil {
		if err := w.dial(ctx, req.URL); err != nil {
			return 0, nil, err
		}
	}
	st, err := w.roundTrip(ctx, req)
	if err != nil {
		w.close()
		return 0, nil, err
	}
	return st, w.buf.Bytes(), nil
}

// roundTrip writes req and reads its answer's body into w.buf. The end
// of ctx cuts it off.
func (w *wire) roundTrip(ctx context.Context, req *http.Request) (int, error) {
	c := w.c // not w.c in the func, which close may clear meanwhile
	if err := c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := req.Write(w.bw); err != nil {
		return 0, err
	}
	if err := w.bw.Flush(); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(w.br, req)
	if err != nil {
		return 0, err
	}
	w.buf.Reset()
	_, err = w.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		w.close() // the server closes it: the next request dials again
	}
	return resp.StatusCode, err
}

// dial connects to u's host, through TLS for https.
func (w *wire) dial(ctx context.Context, u *url.URL) error {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return err
	}
	if u.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return err
		}
		c = tc
	}
	w.c, w.br, w.bw = c, bufio.NewReaderSize(c, 32<<10), bufio.NewWriter(c)
	return nil
}

// close closes the connection, if one is open.
func (w *wire) close() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
}
