package mllp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/adaptertest"
)

// quiet discards the server's log lines.
var quiet = slog.New(slog.DiscardHandler)

// loopback allows 127.0.0.1 only.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// echo acknowledges each message with "ACK:" and the message.
func echo(_ context.Context, _ netip.Addr, msg []byte) ([]byte, error) {
	return append([]byte("ACK:"), msg...), nil
}

// serve starts s on a free 127.0.0.1 port and returns its address; the
// server stops, and is waited for, when the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Logger == nil {
		s.Logger = quiet
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after its context was cancelled")
		}
	})
	return ln.Addr().String()
}

func TestRoundTrip(t *testing.T) {
	var peers atomic.Value
	addr := serve(t, &Server{AllowedPeers: loopback, Handler: func(ctx context.Context, peer netip.Addr, msg []byte) ([]byte, error) {
		peers.Store(peer)
		return echo(ctx, peer, msg)
	}})
	c := &Client{Addr: addr, AckTimeout: 5 * time.Second}
	defer c.Close()
	for _, msg := range []string{"MSH|1\r", "MSH|2\r", strings.Repeat("PID|x\r", 5000)} {
		ack, err := c.Send(context.Background(), []byte(msg))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if string(ack) != "ACK:"+msg {
			t.Errorf("ack %.40q, want ACK:%.40q", ack, msg)
		}
	}
	if got := peers.Load(); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("the handler saw peer %v", got)
	}
}

func TestAllowList(t *testing.T) {
	var called atomic.Int32
	addr := serve(t, &Server{
		AllowedPeers: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("192.168.0.0/16")},
		Handler: func(ctx context.Context, peer netip.Addr, msg []byte) ([]byte, error) {
			called.Add(1)
			return echo(ctx, peer, msg)
		},
	})
	c := &Client{Addr: addr, AckTimeout: 2 * time.Second}
	defer c.Close()
	_, err := c.Send(context.Background(), []byte("MSH|1\r"))
	if err == nil || errors.Is(err, ErrAckTimeout) {
		t.Fatalf("Send from a peer not allowed = %v, want the connection closed", err)
	}
	if n := called.Load(); n != 0 {
		t.Errorf("the handler ran %d times for a refused peer", n)
	}
}

func TestParseAllowList(t *testing.T) {
	got, err := ParseAllowList([]string{"127.0.0.1", " 10.1.2.3 ", "10.9.0.0/16", "::1", "::ffff:10.1.2.4", "10.5.5.5/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1/32", "10.1.2.3/32", "10.9.0.0/16", "::1/128", "10.1.2.4/32", "10.0.0.0/8"}
	for i := range want {
		if i >= len(got) || got[i].String() != want[i] {
			t.Fatalf("ParseAllowList = %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"pas.example", "10.1.2", "10.0.0.0/33", ""} {
		if _, err := ParseAllowList([]string{bad}); err == nil {
			t.Errorf("ParseAllowList(%q) succeeded", bad)
		}
	}
}

func TestServerConfig(t *testing.T) {
	tests := []struct {
		name string
		s    Server
		want string
	}{
		{"no handler", Server{AllowAnyPeer: true}, "Handler"},
		{"no peers", Server{Handler: echo}, "no peer is allowed"},
	}
	for _, tt := range tests {
		err := tt.s.ListenAndServe(context.Background(), "127.0.0.1:0")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ListenAndServe = %v, want an error about %s", tt.name, err, tt.want)
		}
	}
}

func TestAckTimeoutThenReconnect(t *testing.T) {
	addr := serve(t, &Server{AllowedPeers: loopback, Handler: func(ctx context.Context, peer netip.Addr, msg []byte) ([]byte, error) {
		if string(msg) == "slow" {
			select {
			case <-time.After(3 * time.Second):
			case <-ctx.Done():
			}
		}
		return echo(ctx, peer, msg)
	}})
	c := &Client{Addr: addr, AckTimeout: 200 * time.Millisecond}
	defer c.Close()
	start := time.Now()
	_, err := c.Send(context.Background(), []byte("slow"))
	if !errors.Is(err, ErrAckTimeout) {
		t.Fatalf("Send = %v, want ErrAckTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the timeout took %v", d)
	}
	c.AckTimeout = 5 * time.Second
	ack, err := c.Send(context.Background(), []byte("fast"))
	if err != nil || string(ack) != "ACK:fast" {
		t.Errorf("the next Send = %q, %v; want its own ACK on a new connection", ack, err)
	}
}

func TestSendContextCancelled(t *testing.T) {
	addr := serve(t, &Server{AllowedPeers: loopback, Handler: func(ctx context.Context, _ netip.Addr, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	c := &Client{Addr: addr, AckTimeout: 10 * time.Second}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := c.Send(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want the context's deadline", err)
	}
}

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	start := func(ln net.Listener, tag string) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		s := &Server{AllowedPeers: loopback, Logger: quiet, Handler: func(_ context.Context, _ netip.Addr, msg []byte) ([]byte, error) {
			return []byte(tag + string(msg)), nil
		}}
		go func() { s.Serve(ctx, ln); close(done) }()
		return func() { cancel(); <-done }
	}
	stop := start(ln, "first:")
	c := &Client{Addr: addr, AckTimeout: 5 * time.Second}
	defer c.Close()
	if ack, err := c.Send(context.Background(), []byte("1")); err != nil || string(ack) != "first:1" {
		t.Fatalf("Send = %q, %v", ack, err)
	}
	stop() // closes the client's connection from the server's side
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	stop2 := start(ln2, "second:")
	defer stop2()
	if ack, err := c.Send(context.Background(), []byte("2")); err != nil || string(ack) != "second:2" {
		t.Fatalf("Send after the restart = %q, %v; want the message sent again on a new connection", ack, err)
	}
}

func TestServerReadTimeoutAndLimits(t *testing.T) {
	tests := []struct {
		name string
		send string
	}{
		{"a message that never ends", "\x0bMSH|half a message"},
		{"garbage", "GET / HTTP/1.1\r\n\r\n"},
		{"over the size limit", "\x0b" + strings.Repeat("x", 2000)},
	}
	var called atomic.Int32
	addr := serve(t, &Server{AllowedPeers: loopback, MaxMessageSize: 1000, ReadTimeout: 200 * time.Millisecond,
		Handler: func(ctx context.Context, peer netip.Addr, msg []byte) ([]byte, error) {
			called.Add(1)
			return echo(ctx, peer, msg)
		}})
	for _, tt := range tests {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(tt.send))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		n, err := io.ReadAll(conn)
		if err != nil || len(n) != 0 {
			t.Errorf("%s: the server answered %q, %v; want the connection closed", tt.name, n, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: closed after %v", tt.name, d)
		}
		conn.Close()
	}
	if n := called.Load(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	addr := serve(t, &Server{AllowedPeers: loopback, IdleTimeout: 150 * time.Millisecond, Handler: echo})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(conn); err != nil || len(b) != 0 {
		t.Errorf("an idle connection: read %q, %v; want it closed", b, err)
	}
}

func TestHandlerFailureClosesWithoutAck(t *testing.T) {
	addr := serve(t, &Server{AllowedPeers: loopback, Handler: func(_ context.Context, _ netip.Addr, msg []byte) ([]byte, error) {
		switch string(msg) {
		case "fail":
			return nil, errors.New("store unavailable")
		case "panic":
			panic("a bug in the handler")
		}
		return []byte("ok"), nil
	}})
	c := &Client{Addr: addr, AckTimeout: 5 * time.Second}
	defer c.Close()
	for _, msg := range []string{"fail", "panic"} {
		if ack, err := c.Send(context.Background(), []byte(msg)); err == nil || errors.Is(err, ErrAckTimeout) {
			t.Errorf("Send(%q) = %q, %v; want the connection closed without an acknowledgement", msg, ack, err)
		}
		if ack, err := c.Send(context.Background(), []byte("next")); err != nil || string(ack) != "ok" {
			t.Errorf("Send after %q = %q, %v; want the server still serving", msg, ack, err)
		}
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handlerCancelled := make(chan struct{})
	entered := make(chan struct{})
	s := &Server{AllowedPeers: loopback, Logger: quiet, Handler: func(ctx context.Context, _ netip.Addr, _ []byte) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		close(handlerCancelled)
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := &Client{Addr: ln.Addr().String(), AckTimeout: 10 * time.Second}
	defer c.Close()
	sent := make(chan error, 1)
	go func() { _, err := c.Send(context.Background(), []byte("x")); sent <- err }()
	<-entered
	cancel()
	for name, ch := range map[string]<-chan struct{}{"the handler's context": handlerCancelled} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s was not cancelled", name)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := <-sent; err == nil {
		t.Error("Send succeeded against a server that stopped")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the listener still accepts after Serve returned")
	}
}

func TestTLS(t *testing.T) {
	certPEM, keyPEM := adaptertest.SelfSigned(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	addr := serve(t, &Server{AllowedPeers: loopback, Handler: echo, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	c := &Client{Addr: addr, AckTimeout: 5 * time.Second, TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer c.Close()
	if ack, err := c.Send(context.Background(), []byte("secret")); err != nil || string(ack) != "ACK:secret" {
		t.Errorf("Send over TLS = %q, %v", ack, err)
	}
	plain := &Client{Addr: addr, AckTimeout: 300 * time.Millisecond}
	defer plain.Close()
	if ack, err := plain.Send(context.Background(), []byte("x")); err == nil {
		t.Errorf("a plain client got %q from a TLS server", ack)
	}
	untrusting := &Client{Addr: addr, AckTimeout: 2 * time.Second, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	defer untrusting.Close()
	if _, err := untrusting.Send(context.Background(), []byte("x")); err == nil {
		t.Error("a client not trusting the certificate connected")
	}
}
