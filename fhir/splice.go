package fhir

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// replaceCompact is ReplaceExtensions for the bodies the store serves:
// compact JSON (no whitespace between tokens) whose member names are plain
// ASCII without escapes. It finds the top-level "extension" array and each
// extension's url by scanning the bytes once, and splices the result
// together from the body's own bytes. It declines (ok false) whatever it
// cannot answer exactly as replaceParsed would: whitespace, escaped or
// unusual member names, a duplicate member, nesting deeper than MaxDepth,
// an "extension" that is not an array, an extension whose url is not a
// plain string or whose name differs from "url" only in case, characters
// that the decoding path's json.Marshal would escape (<, >, &, U+2028,
// U+2029) in the extensions it re-encodes, new extensions that are not
// compact JSON, and anything that is not valid JSON. A declined body goes
// through the decoding path, which gives the answer or the error.
func replaceCompact(body []byte, urls []string, exts []json.RawMessage) ([]byte, bool) {
	sc := scanner{b: body}
	if len(body) < 2 || body[0] != '{' {
		return nil, false
	}
	// The top-level members: name and value spans.
	type member struct{ k0, k1, v0, v1 int }
	var members []member
	ext := -1
	sc.i = 1
	sc.depth = 1
	if sc.peek() == '}' {
		sc.i++
	} else {
		for {
			k0 := sc.i
			if !sc.key() {
				return nil, false
			}
			k1 := sc.i
			if sc.peek() != ':' {
				return nil, false
			}
			sc.i++
			v0 := sc.i
			if !sc.value() {
				return nil, false
			}
			m := member{k0, k1, v0, sc.i}
			name := body[k0+1 : k1-1]
			for _, o := range members {
				if bytes.Equal(body[o.k0+1:o.k1-1], name) {
					return nil, false
				}
			}
			if string(name) == "extension" {
				ext = len(members)
			}
			members = append(members, m)
			if len(members) > maxScanMembers {
				return nil, false
			}
			c := sc.peek()
			sc.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return nil, false
			}
		}
	}
	if sc.i != len(body) {
		return nil, false
	}
	// The extensions, and which stay.
	var cur [][2]int
	if ext >= 0 {
		m := members[ext]
		if body[m.v0] != '[' {
			return nil, false
		}
		if cur = elements(body, m.v0, m.v1); cur == nil && m.v1-m.v0 != 2 {
			return nil, false
		}
	}
	keep := make([][2]int, 0, len(cur))
	for _, e := range cur {
		u, ok := plainURL(body[e[0]:e[1]])
		if !ok {
			return nil, false
		}
		if !slices.Contains(urls, u) {
			keep = append(keep, e)
		}
	}
	if len(keep) == len(cur) && len(exts) == 0 {
		return body, true
	}
	// The decoding path re-encodes the extensions it keeps and adds with
	// json.Marshal: they must come out byte for byte as they are.
	for _, e := range keep {
		if needsEscape(body[e[0]:e[1]]) {
			return nil, false
		}
	}
	for _, x := range exts {
		xs := scanner{b: x}
		if len(x) == 0 || !xs.value() || xs.i != len(x) || needsEscape(x) {
			return nil, false
		}
	}
	n := len(body) + 16
	for _, x := range exts {
		n += len(x) + 1
	}
	out := make([]byte, 0, n)
	writeExt := func() {
		out = append(out, `"extension":[`...)
		i := 0
		for _, e := range keep {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, body[e[0]:e[1]]...)
			i++
		}
		for _, x := range exts {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, x...)
			i++
		}
		out = append(out, ']')
	}
	empty := len(keep)+len(exts) == 0
	out = append(out, '{')
	first := true
	for i, m := range members {
		if i == ext && empty {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		if i == ext {
			writeExt()
			continue
		}
		out = append(out, body[m.k0:m.v1]...)
	}
	if ext < 0 && !empty {
		if !first {
			out = append(out, ',')
		}
		writeExt()
	}
	return append(out, '}'), true
}

// maxScanMembers bounds the members of one object replaceCompact checks
// for duplicates pairwise; a larger object goes through the decoding path.
const maxScanMembers = 256

// scanner checks and skips compact JSON values in b from i.
type scanner struct {
	b     []byte
	i     int
	depth int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// key skips a member name: a string of plain ASCII, no escapes, none of
// the characters json.Marshal would write differently.
func (s *scanner) key() bool {
	if s.peek() != '"' {
		return false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			if j == s.i+1 {
				return false // "" is valid, but rare enough to leave to the decoder
			}
			s.i = j + 1
			return true
		case c < 0x20 || c >= 0x7f || c == '\\' || c == '<' || c == '>' || c == '&':
			return false
		}
	}
	return false
}

// value skips one JSON value.
func (s *scanner) value() bool {
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	}
	return false
}

func (s *scanner) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return false
	}
	s.i += len(w)
	return true
}

// str skips a string, checking its escapes.
func (s *scanner) str() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(s.b) {
				return false
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
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
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
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
			return false
		}
		i = j
	}
	s.i = i
	return true
}

// object skips an object, refusing duplicate member names.
func (s *scanner) object() bool {
	if s.depth++; s.depth > MaxDepth {
		return false
	}
	defer func() { s.depth-- }()
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	var names [16][2]int
	keys := names[:0]
	for {
		k0 := s.i
		if !s.key() {
			return false
		}
		name := s.b[k0+1 : s.i-1]
		for _, k := range keys {
			if bytes.Equal(s.b[k[0]:k[1]], name) {
				return false
			}
		}
		if len(keys) == maxScanMembers {
			return false
		}
		keys = append(keys, [2]int{k0 + 1, s.i - 1})
		if s.peek() != ':' {
			return false
		}
		s.i++
		if !s.value() {
			return false
		}
		c := s.peek()
		s.i++
		switch c {
		case '}':
			return true
		case ',':
		default:
			return false
		}
	}
}

// array skips an array.
func (s *scanner) array() bool {
	if s.depth++; s.depth > MaxDepth {
		return false
	}
	defer func() { s.depth-- }()
	s.i++
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		if !s.value() {
			return false
		}
		c := s.peek()
		s.i++
		switch c {
		case ']':
			return true
		case ',':
		default:
			return false
		}
	}
}

// elements returns the spans of the elements of the (already checked)
// array body[from:to], nil for an empty one.
func elements(body []byte, from, to int) [][2]int {
	if to-from == 2 {
		return nil
	}
	var out [][2]int
	s := scanner{b: body[:to], i: from + 1}
	for s.i < to {
		e0 := s.i
		if !s.value() {
			return nil
		}
		out = append(out, [2]int{e0, s.i})
		s.i++ // ',' or the closing ']'
	}
	return out
}

// plainURL returns an extension's url as the decoding path reads it
// (extensionURL), when it can be read from the bytes alone: "" for an
// element that is not an object or has no url (or a null one), the url
// when it is a string without escapes. It declines a url of another type,
// one with escapes, and a member whose name matches "url" only without
// regard to case (which encoding/json would also read).
func plainURL(e []byte) (string, bool) {
	if e[0] != '{' {
		return "", true
	}
	s := scanner{b: e, i: 1}
	url := ""
	if s.peek() == '}' {
		return "", true
	}
	for {
		k0 := s.i
		if !s.key() {
			return "", false
		}
		name := e[k0+1 : s.i-1]
		s.i++ // ':'
		v0 := s.i
		if !s.value() {
			return "", false
		}
		switch {
		case string(name) == "url":
			v := e[v0:s.i]
			switch {
			case string(v) == "null":
			case v[0] == '"' && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v):
				url = string(v[1 : len(v)-1])
			default:
				return "", false
			}
		case bytes.EqualFold(name, []byte("url")):
			return "", false
		}
		if s.peek() == '}' {
			break
		}
		s.i++
	}
	return url, true
}

// needsEscape reports whether json.Marshal would write the compact JSON
// value b differently: it escapes <, > and & and the line and paragraph
// separators in strings (and they can only occur in strings).
func needsEscape(b []byte) bool {
	return bytes.IndexByte(b, '<') >= 0 || bytes.IndexByte(b, '>') >= 0 || bytes.IndexByte(b, '&') >= 0 ||
		bytes.Contains(b, []byte("\u2028")) || bytes.Contains(b, []byte("\u2029"))
}
