package fhir

// Walking JSON text without decoding it: where a hot path only needs an
// object's members as bytes (to splice a member in or out, or to read the
// first few), decoding the whole value with encoding/json costs several
// times more. encoding/json has no such walk short of json.Decoder's
// tokens, which allocate per token (BenchmarkScan compares them), and
// encoding/json/jsontext still needs GOEXPERIMENT=jsonv2.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ScanFlags select what a scan refuses beyond JSON's grammar (RFC 8259)
// and nesting deeper than MaxDepth, which it always refuses.
type ScanFlags uint8

const (
	// UniqueNames refuses an object, at any depth, whose member names
	// repeat, as ParseObject does. To compare names exactly as decoded,
	// it also refuses a name that is not printable ASCII without escapes,
	// and an object of more than 256 members (names are compared
	// pairwise).
	UniqueNames ScanFlags = 1 << iota
	// Compact refuses whitespace between tokens and around the value,
	// and member names that json.Marshal would write otherwise (with <,
	// > or &, or with escapes) or that are empty: with UniqueNames, what
	// a scan accepts is the text ParseObject keeps byte for byte and
	// Object.Bytes writes back unchanged.
	Compact
)

// maxScanMembers bounds the members of an object that UniqueNames
// compares pairwise.
const maxScanMembers = 256

// ScanError is a scan's refusal: where in the text, and why.
type ScanError struct {
	Offset int    // of the byte where the text stops being acceptable
	Reason string // what was expected or refused there
}

func (e *ScanError) Error() string {
	return "JSON scan: " + e.Reason + " at offset " + strconv.Itoa(e.Offset)
}

// SkipValue returns the offset just past the JSON value that starts at
// b[i] (no whitespace is skipped before or after it), after checking it
// against JSON's grammar and flags, or a *ScanError. It never panics and
// takes time linear in the value's length (with UniqueNames, names are
// compared pairwise within an object of at most 256 members).
func SkipValue(b []byte, i int, flags ScanFlags) (int, error) {
	if i < 0 || i > len(b) {
		return 0, &ScanError{Offset: i, Reason: "offset out of range"}
	}
	s := scanner{b: b, i: i, flags: flags}
	if !s.value() {
		return 0, s.error()
	}
	return s.i, nil
}

// Scan walks the members of one JSON object or the elements of one JSON
// array without decoding them (ScanObject, ScanArray):
//
//	sc := fhir.ScanObject(body, 0)
//	for sc.Next() {
//		use(sc.Name(), sc.Value())
//	}
//	if err := sc.Err(); err != nil { … }
//
// Each member or element is checked as Next reaches it; only when Next
// has returned false and Err is nil was the whole text one valid value
// (with nothing but whitespace around it, none with Compact).
type Scan struct {
	s       scanner
	array   bool
	started bool
	done    bool
	err     error
	n       int        // members or elements so far
	names   [16][2]int // the first names, for UniqueNames
	more    [][2]int   // the names beyond them
	k0, k1  int        // the current name's span, quotes included
	v0      int        // the current value's start
}

// ScanObject returns a Scan of the members of the JSON object that is the
// whole of b.
func ScanObject(b []byte, flags ScanFlags) Scan {
	return Scan{s: scanner{b: b, flags: flags}}
}

// ScanArray returns a Scan of the elements of the JSON array that is the
// whole of b.
func ScanArray(b []byte, flags ScanFlags) Scan {
	return Scan{s: scanner{b: b, flags: flags}, array: true}
}

// Next advances to the next member or element, reporting false at the end
// of the object or array or at the first thing that makes it
// unacceptable (Err says which).
func (sc *Scan) Next() bool {
	if sc.done {
		return false
	}
	s := &sc.s
	open, close := byte('{'), byte('}')
	if sc.array {
		open, close = '[', ']'
	}
	if !sc.started {
		sc.started = true
		s.ws()
		if s.peek() != open {
			s.refuse("expected '" + string(open) + "'")
			return sc.fail(s.error())
		}
		s.i++
		s.depth = 1
		s.ws()
		if s.peek() == close {
			s.i++
			return sc.end()
		}
	} else if end, ok := s.after(close); !ok {
		return sc.fail(s.error())
	} else if end {
		return sc.end()
	}
	sc.k0, sc.k1 = s.i, s.i
	if !sc.array {
		k0, k1, ok := s.key()
		if !ok {
			return sc.fail(s.error())
		}
		sc.k0, sc.k1 = k0, k1
		if s.flags&UniqueNames != 0 && !sc.unique(k0+1, k1-1) {
			return false
		}
	}
	sc.v0 = s.i
	if !s.value() {
		return sc.fail(s.error())
	}
	sc.n++
	return true
}

// unique records the name b[k0:k1] of the current member, failing the
// scan if the object has it already.
func (sc *Scan) unique(k0, k1 int) bool {
	b := sc.s.b
	if repeated(b, sc.names[:min(sc.n, len(sc.names))], k0, k1) || repeated(b, sc.more, k0, k1) {
		return sc.fail(&ScanError{Offset: k0 - 1, Reason: "repeated member name"})
	}
	switch {
	case sc.n < len(sc.names):
		sc.names[sc.n] = [2]int{k0, k1}
	case sc.n >= maxScanMembers:
		return sc.fail(&ScanError{Offset: k0 - 1, Reason: "more than 256 members to compare"})
	default:
		sc.more = append(sc.more, [2]int{k0, k1})
	}
	return true
}

// repeated reports whether b[k0:k1] is one of the names at seen.
func repeated(b []byte, seen [][2]int, k0, k1 int) bool {
	name := b[k0:k1]
	for _, k := range seen {
		if bytes.Equal(b[k[0]:k[1]], name) {
			return true
		}
	}
	return false
}

func (sc *Scan) end() bool {
	sc.done = true
	s := &sc.s
	s.ws()
	if s.i != len(s.b) {
		s.refuse("expected the end of the text")
		sc.err = s.error()
	}
	return false
}

func (sc *Scan) fail(err error) bool {
	sc.done = true
	sc.err = err
	return false
}

// Err returns why the scan stopped early, or nil.
func (sc *Scan) Err() error { return sc.err }

// Key returns the current member's name as written, without its quotes
// (escapes as they are); nil in an array.
func (sc *Scan) Key() []byte {
	if sc.array || sc.k1 < sc.k0+2 {
		return nil
	}
	return sc.s.b[sc.k0+1 : sc.k1-1]
}

// Name returns the current member's name as encoding/json decodes it; ""
// in an array.
func (sc *Scan) Name() string {
	k := sc.Key()
	if bytes.IndexByte(k, '\\') < 0 && utf8.Valid(k) {
		return string(k)
	}
	var name string
	_ = json.Unmarshal(sc.s.b[sc.k0:sc.k1], &name) // a string, as the scan checked
	return name
}

// Value returns the current member's value or the current element, as
// written.
func (sc *Scan) Value() []byte { return sc.s.b[sc.v0:sc.s.i] }

// Offsets returns where the current member or element is in the scanned
// text: the offset of its name's opening quote (of its value, in an
// array), of its value, and just past its value. Key, Name, Value and
// Offsets describe the member Next last reported true for.
func (sc *Scan) Offsets() (name, value, end int) { return sc.k0, sc.v0, sc.s.i }

// scanner checks and skips JSON values in b from i. Its methods report
// false at the first byte that is not acceptable, leaving i there and
// why in reason.
type scanner struct {
	b      []byte
	i      int
	depth  int
	flags  ScanFlags
	reason string
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// ws skips whitespace, unless the scan is Compact.
func (s *scanner) ws() {
	if s.flags&Compact != 0 {
		return
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) refuse(reason string) bool {
	s.reason = reason
	return false
}

func (s *scanner) error() *ScanError {
	reason := s.reason
	if s.i >= len(s.b) && strings.HasPrefix(reason, "expected ") {
		reason += ", found the end of the text"
	}
	return &ScanError{Offset: s.i, Reason: reason}
}

// value skips one JSON value.
func (s *scanner) value() bool {
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == '{' || c == '[':
		return s.container()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	}
	return s.refuse("expected a value")
}

func (s *scanner) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.refuse("expected " + w)
	}
	s.i += len(w)
	return true
}

// name skips a member name: any string, or with UniqueNames or Compact
// one of the names they accept.
func (s *scanner) name() bool {
	if s.peek() != '"' {
		return s.refuse("expected a member name")
	}
	if s.flags&(UniqueNames|Compact) == 0 {
		return s.str()
	}
	compact := s.flags&Compact != 0
	for j := s.i + 1; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			if j == s.i+1 && compact {
				return s.refuse("an empty member name")
			}
			s.i = j + 1
			return true
		case c < 0x20 || c >= 0x7f || c == '\\':
			s.i = j
			return s.refuse("a member name that is not printable ASCII without escapes")
		case compact && (c == '<' || c == '>' || c == '&'):
			s.i = j
			return s.refuse("a member name that json.Marshal escapes")
		}
	}
	s.i = len(s.b)
	return s.refuse("an unterminated string")
}

// str skips a string, checking its escapes.
func (s *scanner) str() bool {
	b := s.b
	for j := s.i + 1; j < len(b); j++ {
		c := b[j]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		switch {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			s.i = j
			return s.refuse("a control character in a string")
		}
		// A backslash.
		if j++; j >= len(b) {
			s.i = len(b)
			return s.refuse("an unterminated string")
		}
		switch b[j] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if j+4 >= len(b) {
				s.i = len(b)
				return s.refuse("an unterminated string")
			}
			for _, h := range b[j+1 : j+5] {
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					s.i = j - 1
					return s.refuse(`an invalid \u escape`)
				}
			}
			j += 4
		default:
			s.i = j - 1
			return s.refuse("an invalid escape")
		}
	}
	s.i = len(b)
	return s.refuse("an unterminated string")
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// number skips a number of JSON's grammar.
func (s *scanner) number() bool {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		s.i = i
		return s.refuse("expected a digit")
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			s.i = j
			return s.refuse("expected a digit")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			s.i = j
			return s.refuse("expected a digit")
		}
		i = j
	}
	s.i = i
	return true
}

// container skips an object or an array.
func (s *scanner) container() bool {
	obj := s.b[s.i] == '{'
	close := byte(']')
	if obj {
		close = '}'
	}
	if s.depth++; s.depth > MaxDepth {
		return s.refuse("nesting deeper than " + strconv.Itoa(MaxDepth))
	}
	defer func() { s.depth-- }()
	s.i++
	s.ws()
	if s.peek() == close {
		s.i++
		return true
	}
	unique := obj && s.flags&UniqueNames != 0
	var names [16][2]int
	keys := names[:0]
	for {
		if obj {
			k0, k1, ok := s.key()
			if !ok {
				return false
			}
			if unique {
				if repeated(s.b, keys, k0+1, k1-1) {
					s.i = k0
					return s.refuse("repeated member name")
				}
				if len(keys) == maxScanMembers {
					s.i = k0
					return s.refuse("more than 256 members to compare")
				}
				keys = append(keys, [2]int{k0 + 1, k1 - 1})
			}
		}
		if !s.value() {
			return false
		}
		if end, ok := s.after(close); !ok || end {
			return ok
		}
	}
}

// key skips a member name and the colon after it, giving the name's span
// (quotes included).
func (s *scanner) key() (k0, k1 int, ok bool) {
	k0 = s.i
	if !s.name() {
		return k0, k0, false
	}
	k1 = s.i
	s.ws()
	if s.peek() != ':' {
		return k0, k1, s.refuse("expected ':'")
	}
	s.i++
	s.ws()
	return k0, k1, true
}

// after skips what follows a member or an element: a comma (end false)
// or the closing close (end true).
func (s *scanner) after(close byte) (end, ok bool) {
	s.ws()
	switch s.peek() {
	case close:
		s.i++
		return true, true
	case ',':
		s.i++
		s.ws()
		return false, true
	}
	return false, s.refuse("expected ',' or '" + string(close) + "'")
}
