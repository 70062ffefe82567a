package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// A Handler processes one message from peer and returns the acknowledgement
// to send back (nil sends none). It returns an error when the message could
// not be taken in (not stored, so not acknowledged): the server then closes
// the connection without answering, and the sender, having no
// acknowledgement, sends the message again. Messages on one connection are
// handled one after the other, in order.
type Handler func(ctx context.Context, peer netip.Addr, msg []byte) (ack []byte, err error)

// A Server accepts MLLP connections and hands each message to its Handler.
// Set its fields, then call Serve or ListenAndServe; a Server serves once.
type Server struct {
	// Handler processes each message. Required.
	Handler Handler
	// AllowedPeers are the addresses (single addresses as /32 or /128
	// prefixes, or ranges) that may connect; others are closed on accept,
	// before any byte is read or a TLS handshake starts. Empty refuses
	// every peer unless AllowAnyPeer is set.
	AllowedPeers []netip.Prefix
	// AllowAnyPeer accepts every peer (for a listener behind something else
	// that checks, or tests). It must be set explicitly.
	AllowAnyPeer bool
	// TLSConfig, when set, makes every connection TLS (set ClientAuth and
	// ClientCAs in it to require client certificates).
	TLSConfig *tls.Config
	// MaxMessageSize bounds a message; DefaultMaxMessageSize when zero.
	MaxMessageSize int
	// ReadTimeout bounds the reading of one message once its start block
	// has arrived (and a TLS handshake); 30 s when zero.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection on which no message starts for this
	// long; zero keeps idle connections open (a PAS usually holds one open
	// for days).
	IdleTimeout time.Duration
	// WriteTimeout bounds the writing of one acknowledgement; 30 s when zero.
	WriteTimeout time.Duration
	// Logger receives connection events and errors; slog.Default() when nil.
	Logger *slog.Logger
}

// ParseAllowList reads peer addresses ("10.1.2.3", "::1") and ranges
// ("10.1.2.0/24") for Server.AllowedPeers.
func ParseAllowList(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("mllp: allowed peer %q: %v", e, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("mllp: allowed peer %q is not an IP address or a CIDR range", e)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// allowed reports whether peer may connect.
func (s *Server) allowed(peer netip.Addr) bool {
	if s.AllowAnyPeer {
		return true
	}
	for _, p := range s.AllowedPeers {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// logger returns the server's logger.
func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// ListenAndServe listens on addr (host:port; bind a loopback address unless
// peers elsewhere must reach it) and serves until ctx is cancelled.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.check(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mllp: %w", err)
	}
	return s.Serve(ctx, ln)
}

// check refuses a server that cannot serve.
func (s *Server) check() error {
	if s.Handler == nil {
		return errors.New("mllp: Server.Handler is nil")
	}
	if len(s.AllowedPeers) == 0 && !s.AllowAnyPeer {
		return errors.New("mllp: no peer is allowed: set AllowedPeers (or AllowAnyPeer)")
	}
	return nil
}

// Serve accepts connections on ln until ctx is cancelled, then closes ln and
// every connection, waits for the handlers running to return and returns
// nil. It returns an error if the server is misconfigured or accepting
// fails. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.check(); err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	log := s.logger()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
			} else {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				err = fmt.Errorf("mllp: accepting: %w", err)
			}
			break
		}
		peer := peerAddr(c)
		if !s.allowed(peer) {
			log.Warn("mllp: refused a peer not on the allow-list", "peer", c.RemoteAddr().String(), "listener", ln.Addr().String())
			c.Close()
			continue
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			s.serveConn(ctx, c, peer)
		}()
	}
	cancel()
	wg.Wait()
	return err
}

// peerAddr is the IP address of c's remote end.
func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// serveConn reads messages from c until it closes or fails.
func (s *Server) serveConn(ctx context.Context, c net.Conn, peer netip.Addr) {
	log := s.logger().With("peer", c.RemoteAddr().String())
	readTimeout := orDefault(s.ReadTimeout, 30*time.Second)
	writeTimeout := orDefault(s.WriteTimeout, 30*time.Second)
	if s.TLSConfig != nil {
		tc := tls.Server(c, s.TLSConfig)
		c.SetDeadline(time.Now().Add(readTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			log.Warn("mllp: TLS handshake failed", "err", err)
			return
		}
		c.SetDeadline(time.Time{})
		c = tc
	}
	r := NewReader(c, s.MaxMessageSize)
	r.started = func() { c.SetReadDeadline(time.Now().Add(readTimeout)) }
	for {
		if s.IdleTimeout > 0 {
			c.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		} else {
			c.SetReadDeadline(time.Time{})
		}
		msg, err := r.ReadMessage()
		if err != nil {
			if err != io.EOF && ctx.Err() == nil {
				log.Warn("mllp: closing the connection", "err", err)
			}
			return
		}
		ack, err := s.handle(ctx, peer, msg)
		if err != nil {
			log.Warn("mllp: the message was not taken in; closing the connection without acknowledging it", "err", err)
			return
		}
		if ack == nil {
			continue
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := WriteMessage(c, ack); err != nil {
			log.Warn("mllp: sending the acknowledgement", "err", err)
			return
		}
	}
}

// handle runs the handler, turning a panic into an error so that one bad
// message closes its connection rather than the process.
func (s *Server) handle(ctx context.Context, peer netip.Addr, msg []byte) (ack []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("mllp: the handler panicked: %v", p)
		}
	}()
	return s.Handler(ctx, peer, msg)
}

// orDefault is d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
