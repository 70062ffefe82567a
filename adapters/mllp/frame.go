// Package mllp carries HL7 v2 messages over TCP with the Minimal Lower Layer
// Protocol: each message framed as 0x0B, the message, 0x1C 0x0D. It gives a
// frame Reader and WriteMessage, a Server (a listener that hands each message
// to a Handler and sends back the acknowledgement it returns, one goroutine
// per connection, peers checked against an allow-list, optional TLS) and a
// Client (send a message, wait for its acknowledgement, reconnect when the
// connection broke).
//
// The package moves bytes: what a message says and what to acknowledge is
// the caller's (package hl7v2 parses and builds them).
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The MLLP frame bytes.
const (
	StartBlock     byte = 0x0B // vertical tab: a message starts
	EndBlock       byte = 0x1C // file separator: the message ended
	CarriageReturn byte = 0x0D // follows EndBlock
)

// DefaultMaxMessageSize is the largest message read when no limit is given:
// 1 MiB, far above any appointment or patient message.
const DefaultMaxMessageSize = 1 << 20

// Errors a Reader returns (wrapped with detail; test with errors.Is). After
// any of them the stream is out of step, so the connection should be closed.
var (
	ErrGarbage      = errors.New("mllp: bytes before the start block (0x0B)")
	ErrTooLarge     = errors.New("mllp: message larger than the limit")
	ErrUnterminated = errors.New("mllp: message not terminated by 0x1C 0x0D")
	ErrFrameByte    = errors.New("mllp: message contains a frame byte (0x0B or 0x1C)")
)

// A Reader reads framed messages from a stream.
type Reader struct {
	br      *bufio.Reader
	max     int
	started func() // called when a start block arrives (Conn sets the frame deadline)
}

// NewReader reads frames from r, refusing messages larger than maxSize bytes
// (DefaultMaxMessageSize when maxSize <= 0).
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 4096), max: maxSize}
}

// ReadMessage returns the next message without its frame. Whitespace between
// frames (a CR or LF some senders add) is skipped. It returns io.EOF when
// the stream ends cleanly between messages; ErrGarbage, ErrTooLarge,
// ErrUnterminated or the stream's own error otherwise. The returned slice is
// the caller's.
func (r *Reader) ReadMessage() ([]byte, error) {
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return nil, err // io.EOF between messages is a clean end
		}
		if c == StartBlock {
			break
		}
		if c == '\r' || c == '\n' || c == ' ' || c == '\t' {
			continue
		}
		return nil, fmt.Errorf("%w: got 0x%02X", ErrGarbage, c)
	}
	if r.started != nil {
		r.started()
	}
	var msg []byte
	for {
		chunk, err := r.br.ReadSlice(EndBlock)
		body := chunk
		if err == nil {
			body = chunk[:len(chunk)-1]
		}
		if i := bytes.IndexByte(body, StartBlock); i >= 0 {
			return nil, fmt.Errorf("%w: a new start block after %d bytes of a message", ErrUnterminated, len(msg)+i)
		}
		if len(msg)+len(body) > r.max {
			return nil, fmt.Errorf("%w of %d bytes", ErrTooLarge, r.max)
		}
		msg = append(msg, body...)
		switch {
		case err == nil:
			c, err := r.br.ReadByte()
			if err == io.EOF {
				return nil, fmt.Errorf("%w: the stream ended after 0x1C", ErrUnterminated)
			}
			if err != nil {
				return nil, fmt.Errorf("mllp: reading a message: %w", err)
			}
			if c != CarriageReturn {
				return nil, fmt.Errorf("%w: 0x1C followed by 0x%02X", ErrUnterminated, c)
			}
			return msg, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			return nil, fmt.Errorf("%w: the stream ended %d bytes into a message", ErrUnterminated, len(msg))
		default:
			return nil, fmt.Errorf("mllp: reading a message: %w", err)
		}
	}
}

// WriteMessage writes msg to w in one frame, with one Write. A message
// holding a frame byte cannot be framed: ErrFrameByte.
func WriteMessage(w io.Writer, msg []byte) error {
	if bytes.IndexByte(msg, StartBlock) >= 0 || bytes.IndexByte(msg, EndBlock) >= 0 {
		return ErrFrameByte
	}
	frame := make([]byte, 0, len(msg)+3)
	frame = append(frame, StartBlock)
	frame = append(frame, msg...)
	frame = append(frame, EndBlock, CarriageReturn)
	_, err := w.Write(frame)
	return err
}
