package mllp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// frame wraps s in MLLP bytes.
func frame(s string) string { return "\x0b" + s + "\x1c\r" }

func TestReadMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string // messages read before the error
		wantErr error    // after them; io.EOF for a clean end
	}{
		{name: "one", in: frame("MSH|a"), want: []string{"MSH|a"}, wantErr: io.EOF},
		{name: "two", in: frame("A") + frame("B"), want: []string{"A", "B"}, wantErr: io.EOF},
		{name: "empty stream", in: "", wantErr: io.EOF},
		{name: "empty message", in: frame(""), want: []string{""}, wantErr: io.EOF},
		{name: "newlines between frames", in: "\r\n" + frame("A") + "\n" + frame("B") + "\r\n", want: []string{"A", "B"}, wantErr: io.EOF},
		{name: "garbage first", in: "GET / HTTP/1.1\r\n" + frame("A"), wantErr: ErrGarbage},
		{name: "garbage between", in: frame("A") + "x" + frame("B"), want: []string{"A"}, wantErr: ErrGarbage},
		{name: "no end", in: "\x0bMSH|a", wantErr: ErrUnterminated},
		{name: "end without CR", in: "\x0bMSH|a\x1c", wantErr: ErrUnterminated},
		{name: "end then other byte", in: "\x0bMSH|a\x1cX", wantErr: ErrUnterminated},
		{name: "new start inside", in: "\x0bA" + frame("B"), wantErr: ErrUnterminated},
		{name: "at the limit", in: frame("12345"), max: 5, want: []string{"12345"}, wantErr: io.EOF},
		{name: "over the limit", in: frame("123456"), max: 5, wantErr: ErrTooLarge},
		{name: "far over the limit, no end", in: "\x0b" + strings.Repeat("x", 100000), max: 10, wantErr: ErrTooLarge},
		{name: "large", in: frame(strings.Repeat("y", 50000)), want: []string{strings.Repeat("y", 50000)}, wantErr: io.EOF},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+err": iotest.DataErrReader,
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			r := NewReader(wrap(strings.NewReader(tt.in)), tt.max)
			var got []string
			var err error
			for {
				var m []byte
				if m, err = r.ReadMessage(); err != nil {
					break
				}
				got = append(got, string(m))
			}
			if !errors.Is(err, tt.wantErr) || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("%s (%s reads): got %q, %v; want %q, %v", tt.name, rname, got, err, tt.want, tt.wantErr)
			}
		}
	}
}

func TestWriteMessage(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMessage(&b, []byte("MSH|^~\\&\r")); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "\x0bMSH|^~\\&\r\x1c\r"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
	for _, bad := range []string{"a\x0bb", "a\x1cb"} {
		if err := WriteMessage(&b, []byte(bad)); !errors.Is(err, ErrFrameByte) {
			t.Errorf("WriteMessage(%q) = %v, want ErrFrameByte", bad, err)
		}
	}
}

// FuzzReader checks that the reader never panics or returns more than the
// limit, and that what it reads, framed again, reads back the same.
func FuzzReader(f *testing.F) {
	for _, s := range []string{frame("MSH|^~\\&|A\rPID|1\r"), frame("A") + frame("B"), "\x0b", "\x1c\r", "\r\n\x0bA\x1c", "x", frame(strings.Repeat("z", 70))} {
		f.Add([]byte(s))
	}
	const limit = 64
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), limit)
		var msgs [][]byte
		for {
			m, err := r.ReadMessage()
			if err != nil {
				break
			}
			if len(m) > limit || bytes.IndexByte(m, StartBlock) >= 0 || bytes.IndexByte(m, EndBlock) >= 0 {
				t.Fatalf("read %q", m)
			}
			msgs = append(msgs, m)
		}
		var b bytes.Buffer
		for _, m := range msgs {
			if err := WriteMessage(&b, m); err != nil {
				t.Fatal(err)
			}
		}
		r = NewReader(&b, limit)
		for i, want := range msgs {
			got, err := r.ReadMessage()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("message %d read back as %q, %v; want %q", i, got, err, want)
			}
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("after the messages: %v, want io.EOF", err)
		}
	})
}
