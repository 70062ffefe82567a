package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrAckTimeout is returned (wrapped) when no acknowledgement came in time.
// The connection is then closed, so a late acknowledgement cannot be taken
// for the answer to the next message.
var ErrAckTimeout = errors.New("mllp: no acknowledgement in time")

// A Client sends messages to one MLLP peer over one connection, which it
// opens on first use and opens again when it broke. Send is safe for
// concurrent use; messages go one at a time, each waiting for its
// acknowledgement.
type Client struct {
	// Addr is the peer's host:port.
	Addr string
	// TLSConfig, when set, makes the connection TLS.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting (and a TLS handshake); 10 s when zero.
	DialTimeout time.Duration
	// AckTimeout bounds the wait for an acknowledgement after sending; 30 s
	// when zero.
	AckTimeout time.Duration
	// MaxMessageSize bounds an acknowledgement; DefaultMaxMessageSize when zero.
	MaxMessageSize int

	mu   sync.Mutex
	conn net.Conn
	r    *Reader
}

// Send sends msg and returns the acknowledgement's bytes. When the
// connection it holds turns out broken (the peer closed it or restarted),
// it connects again and sends once more; the message may then arrive twice,
// which is why a message is resent with its control id unchanged (the peer
// de-duplicates by MSH-10). A timeout is not retried: it returns
// ErrAckTimeout. ctx bounds the whole call.
func (c *Client) Send(ctx context.Context, msg []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if !reused {
			if err := c.dial(ctx); err != nil {
				return nil, err
			}
		}
		ack, err := c.exchange(ctx, msg)
		if err == nil {
			return ack, nil
		}
		c.closeConn()
		if reused && attempt == 0 && broken(err) && ctx.Err() == nil {
			continue // a stale connection: once more on a new one
		}
		return nil, err
	}
}

// broken reports whether err says the connection was closed or reset by
// the peer (as opposed to a timeout or a framing error).
func broken(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, ErrUnterminated) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// dial opens the connection.
func (c *Client) dial(ctx context.Context) error {
	timeout := orDefault(c.DialTimeout, 10*time.Second)
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	var conn net.Conn
	var err error
	if c.TLSConfig != nil {
		td := tls.Dialer{NetDialer: &d, Config: c.TLSConfig}
		conn, err = td.DialContext(ctx, "tcp", c.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return fmt.Errorf("mllp: connecting to %s: %w", c.Addr, err)
	}
	c.conn, c.r = conn, NewReader(conn, c.MaxMessageSize)
	return nil
}

// exchange writes msg and reads one acknowledgement on the open connection.
func (c *Client) exchange(ctx context.Context, msg []byte) ([]byte, error) {
	timeout := orDefault(c.AckTimeout, 30*time.Second)
	deadline := time.Now().Add(timeout)
	ctxFirst := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxFirst = d, true
	}
	conn := c.conn
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := WriteMessage(conn, msg); err != nil {
		if errors.Is(err, ErrFrameByte) {
			return nil, err
		}
		return nil, c.wrap(ctx, ctxFirst, "sending", err, timeout)
	}
	ack, err := c.r.ReadMessage()
	if err != nil {
		return nil, c.wrap(ctx, ctxFirst, "waiting for the acknowledgement", err, timeout)
	}
	return ack, nil
}

// wrap names what failed, turning a deadline into ErrAckTimeout or the
// context's error (ctxFirst: the context's deadline was the nearer one).
func (c *Client) wrap(ctx context.Context, ctxFirst bool, doing string, err error, timeout time.Duration) error {
	if ctx.Err() != nil {
		return fmt.Errorf("mllp: %s to %s: %w", doing, c.Addr, ctx.Err())
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && ctxFirst {
		return fmt.Errorf("mllp: %s to %s: %w", doing, c.Addr, context.DeadlineExceeded)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w from %s (%v)", ErrAckTimeout, c.Addr, timeout)
	}
	return fmt.Errorf("mllp: %s to %s: %w", doing, c.Addr, err)
}

// closeConn drops the connection.
func (c *Client) closeConn() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// Close closes the connection (after a Send in progress returns); a later
// Send opens a new one.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeConn()
	return nil
}
