// Package hl7v2 reads and writes HL7 version 2 messages in their usual
// encoding, ER7 (the "pipe and hat" text): Parse turns bytes into a Message,
// Message.Encode turns it back, paths such as "PID-3[2].1" read and set
// values, and Ack builds the acknowledgement a receiver returns.
//
// No Go HL7 v2 module can be had in this project's build environment, so
// the codec is Signpost's own. It covers what a hospital PAS sends over MLLP
// in versions 2.3 to 2.5.1: the separators the MSH segment declares (they need
// not be |^~\&), repetitions, components, subcomponents and escape sequences
// (\F\ \S\ \T\ \R\ \E\ and \Xhh..\; other escapes such as \H\ or \.br\ are
// kept as they came). It knows no message structures: which segments a
// message type holds is the adapter's business.
//
// A Message keeps each value as it appeared on the wire (escaped), so
// parsing and encoding again gives back the same bytes apart from segment
// endings; Get unescapes, Set escapes.
package hl7v2

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Delimiters are the separators a message declares in MSH-1 and MSH-2.
type Delimiters struct {
	Field        byte // MSH-1, usually |
	Component    byte // usually ^
	Repetition   byte // usually ~
	Escape       byte // usually \
	Subcomponent byte // usually &
}

// DefaultDelimiters are the separators almost every sender uses: |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// encodingCharacters is the MSH-2 value the delimiters declare.
func (d Delimiters) encodingCharacters() string {
	return string([]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent})
}

// check reports whether the delimiters can delimit: five distinct bytes,
// none a letter, digit, space or segment ending.
func (d Delimiters) check() error {
	all := []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent}
	names := []string{"field separator (MSH-1)", "component separator", "repetition separator", "escape character", "subcomponent separator"}
	for i, c := range all {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			return fmt.Errorf("%s %q is a letter or digit", names[i], c)
		case c == '\r' || c == '\n' || c == ' ' || c == 0:
			return fmt.Errorf("%s %q is a space, NUL or segment ending", names[i], c)
		}
		for j := range i {
			if all[j] == c {
				return fmt.Errorf("%s and %s are both %q", names[j], names[i], c)
			}
		}
	}
	return nil
}

// A Message is a parsed HL7 v2 message: its delimiters and its segments in
// order. The first segment is MSH.
type Message struct {
	Delimiters Delimiters
	Segments   []*Segment
}

// A Segment is one line of a message: its three-character name and its
// fields, Fields[0] being field 1. In MSH, Fields[0] is MSH-1 (the field
// separator) and Fields[1] is MSH-2 (the encoding characters), each held
// whole as the standard numbers them.
type Segment struct {
	Name   string
	Fields []Field
}

// A Field is one field: its repetitions (one for a field that does not
// repeat, none for an empty field).
type Field []Repetition

// A Repetition is one occurrence of a field: its components.
type Repetition []Component

// A Component is one component: its subcomponents, each the text as it
// appeared on the wire (escaped).
type Component []string

// ErrSyntax is the error every Parse failure wraps, so callers can tell a
// message that cannot be read (and answer it with AR) from other failures.
var ErrSyntax = errors.New("hl7v2: malformed message")

// syntaxErr builds an ErrSyntax error with a location.
func syntaxErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))
}

// Parse reads one ER7 message. Segments may end in \r (the standard), \n or
// \r\n, and blank lines are skipped; trailing separators are accepted. The
// separators are those MSH-1 and MSH-2 declare; an MSH segment after the
// first is read as an ordinary segment. Parse checks the syntax only:
// CheckHeader checks that MSH carries what a receiver needs. Parse sets no
// size limit of its own (its time and memory are linear in the input): the
// transport bounds a message (mllp.Server.MaxMessageSize).
func Parse(data []byte) (*Message, error) {
	lines := splitSegments(data)
	if len(lines) == 0 {
		return nil, syntaxErr("the message is empty")
	}
	head := lines[0]
	if !bytes.HasPrefix(head, []byte("MSH")) {
		return nil, syntaxErr("the message does not start with an MSH segment (it starts %q)", clip(head, 10))
	}
	if len(head) < 8 {
		return nil, syntaxErr("MSH is too short to declare its separators (%q): MSH-1 and the four characters of MSH-2 are needed", head)
	}
	d := Delimiters{Field: head[3], Component: head[4], Repetition: head[5], Escape: head[6], Subcomponent: head[7]}
	if err := d.check(); err != nil {
		return nil, syntaxErr("MSH-1/MSH-2: %v", err)
	}
	// MSH-2 runs to the next field separator: four characters, or five from
	// v2.7 (the truncation character), which is kept but not interpreted.
	rest := head[4:]
	enc := rest
	var tail []byte
	hasTail := false
	if i := bytes.IndexByte(rest, d.Field); i >= 0 {
		enc, tail, hasTail = rest[:i], rest[i+1:], true
	}
	if len(enc) > 5 {
		return nil, syntaxErr("MSH-2 %q is longer than the encoding characters it should hold", clip(enc, 10))
	}
	if len(enc) == 5 {
		if t := enc[4]; bytes.IndexByte(enc[:4], t) >= 0 || t == d.Field || isSegmentName([]byte{t}) {
			return nil, syntaxErr("MSH-2 %q: the truncation character %q repeats a separator or is a letter or digit", enc, t)
		}
	}
	m := &Message{Delimiters: d}
	msh := &Segment{Name: "MSH", Fields: []Field{
		{{{char(d.Field)}}},
		{{{string(enc)}}},
	}}
	if hasTail {
		msh.Fields = append(msh.Fields, splitFields(tail, d)...)
	}
	m.Segments = append(m.Segments, msh)
	for n, line := range lines[1:] {
		name, fields, found := bytes.Cut(line, []byte{d.Field})
		if len(name) != 3 || !isSegmentName(name) {
			return nil, syntaxErr("segment %d: %q is not a segment name (three letters or digits)", n+2, clip(name, 10))
		}
		seg := &Segment{Name: string(name)}
		if found {
			seg.Fields = splitFields(fields, d)
		}
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

// isSegmentName reports whether b is made of upper-case letters and digits.
func isSegmentName(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// clip shortens b for an error message.
func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// splitSegments cuts data at \r, \n or \r\n, dropping empty lines.
func splitSegments(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexAny(data, "\r\n")
		line := data
		if i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) > 0 {
			out = append(out, line)
		}
	}
	return out
}

// splitFields splits the text after a segment name into fields.
func splitFields(b []byte, d Delimiters) []Field {
	parts := bytes.Split(b, []byte{d.Field})
	fields := make([]Field, len(parts))
	for i, p := range parts {
		fields[i] = splitField(p, d)
	}
	return fields
}

// splitField splits one field's text into repetitions, components and
// subcomponents. An empty field has no repetitions.
func splitField(b []byte, d Delimiters) Field {
	if len(b) == 0 {
		return nil
	}
	reps := bytes.Split(b, []byte{d.Repetition})
	f := make(Field, len(reps))
	for i, r := range reps {
		comps := bytes.Split(r, []byte{d.Component})
		rep := make(Repetition, len(comps))
		for j, c := range comps {
			subs := strings.Split(string(c), char(d.Subcomponent))
			rep[j] = Component(subs)
		}
		f[i] = rep
	}
	return f
}

// Encode writes the message in ER7, each segment ended by \r.
func (m *Message) Encode() []byte {
	var b bytes.Buffer
	d := m.Delimiters
	for _, s := range m.Segments {
		b.WriteString(s.Name)
		fields := s.Fields
		if s.Name == "MSH" && len(fields) >= 2 && s == m.Segments[0] {
			b.WriteByte(d.Field)
			b.WriteString(fields[1].raw(d))
			fields = fields[2:]
		}
		for _, f := range fields {
			b.WriteByte(d.Field)
			b.WriteString(f.raw(d))
		}
		b.WriteByte('\r')
	}
	return b.Bytes()
}

// String returns the message in ER7 with segments on lines of their own
// (\n), for logs and test failures.
func (m *Message) String() string {
	return strings.ReplaceAll(string(m.Encode()), "\r", "\n")
}

// raw is the field as it appears on the wire.
func (f Field) raw(d Delimiters) string {
	var b strings.Builder
	for i, r := range f {
		if i > 0 {
			b.WriteByte(d.Repetition)
		}
		b.WriteString(r.raw(d))
	}
	return b.String()
}

// raw is the repetition as it appears on the wire.
func (r Repetition) raw(d Delimiters) string {
	var b strings.Builder
	for i, c := range r {
		if i > 0 {
			b.WriteByte(d.Component)
		}
		b.WriteString(strings.Join(c, char(d.Subcomponent)))
	}
	return b.String()
}

// NewMessage starts a message with the given delimiters and an MSH segment
// holding only MSH-1 and MSH-2; Set fills the rest.
func NewMessage(d Delimiters) (*Message, error) {
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("hl7v2: %v", err)
	}
	return &Message{Delimiters: d, Segments: []*Segment{{Name: "MSH", Fields: []Field{
		{{{char(d.Field)}}},
		{{{d.encodingCharacters()}}},
	}}}}, nil
}

// Segment returns the n-th segment (1-based) named name, or nil.
func (m *Message) Segment(name string, n int) *Segment {
	for _, s := range m.Segments {
		if s.Name == name {
			n--
			if n == 0 {
				return s
			}
		}
	}
	return nil
}

// All returns every segment named name, in order.
func (m *Message) All(name string) []*Segment {
	var out []*Segment
	for _, s := range m.Segments {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// AddSegment appends an empty segment named name and returns it.
func (m *Message) AddSegment(name string) *Segment {
	s := &Segment{Name: name}
	m.Segments = append(m.Segments, s)
	return s
}
