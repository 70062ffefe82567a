package search

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The kinds of node in a parsed JSON document.
const (
	kNull byte = iota
	kBool
	kNumber
	kString
	kObject
	kArray
)

// node is one value of a parsed JSON document, stored in a flat slab. Members
// of an object (with their key) and items of an array are chained through
// first (the first child) and next (the following sibling); -1 ends a chain.
// Strings are substrings of the document, unescaped only when needed.
type node struct {
	kind  byte
	key   string // the member name, when the parent is an object
	val   string // string value (unescaped), number or "true"/"false"
	first int32
	next  int32
}

// doc is a parsed JSON document. Its zero value is ready to use, and a doc
// may be reused for another document (parse resets it), which is what makes
// extraction nearly allocation-free.
type doc struct {
	nodes []node
	src   string
	pos   int
	// only, when not nil, lists the members of the root object to parse;
	// the others are skipped without making nodes (see Registry.References).
	only []step
}

// parse parses src, which must be one JSON value, into d. The root is node 0.
func (d *doc) parse(src string) error {
	d.nodes = d.nodes[:0]
	d.src = src
	d.pos = 0
	if _, err := d.value(""); err != nil {
		return err
	}
	d.space()
	if d.pos != len(d.src) {
		return d.errorf("unexpected data after the JSON value")
	}
	return nil
}

func (d *doc) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON at offset %d: %s", d.pos, fmt.Sprintf(format, args...))
}

func (d *doc) space() {
	for d.pos < len(d.src) {
		switch d.src[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *doc) add(kind byte, key string) int32 {
	d.nodes = append(d.nodes, node{kind: kind, key: key, first: -1, next: -1})
	return int32(len(d.nodes) - 1)
}

func (d *doc) value(key string) (int32, error) {
	d.space()
	if d.pos >= len(d.src) {
		return 0, d.errorf("unexpected end of input")
	}
	switch c := d.src[d.pos]; {
	case c == '{':
		return d.object(key)
	case c == '[':
		return d.array(key)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return 0, err
		}
		i := d.add(kString, key)
		d.nodes[i].val = s
		return i, nil
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(d.src)-d.pos >= len(lit) && d.src[d.pos:d.pos+len(lit)] == lit {
				d.pos += len(lit)
				if lit == "null" {
					return d.add(kNull, key), nil
				}
				i := d.add(kBool, key)
				d.nodes[i].val = lit
				return i, nil
			}
		}
		return 0, d.errorf("invalid literal")
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.pos
		for d.pos < len(d.src) {
			c := d.src[d.pos]
			if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				d.pos++
				continue
			}
			break
		}
		i := d.add(kNumber, key)
		d.nodes[i].val = d.src[start:d.pos]
		return i, nil
	default:
		return 0, d.errorf("unexpected character %q", c)
	}
}

func (d *doc) object(key string) (int32, error) {
	self := d.add(kObject, key)
	d.pos++ // {
	last := int32(-1)
	d.space()
	if d.pos < len(d.src) && d.src[d.pos] == '}' {
		d.pos++
		return self, nil
	}
	for {
		d.space()
		if d.pos >= len(d.src) || d.src[d.pos] != '"' {
			return 0, d.errorf("expected a member name")
		}
		k, err := d.str()
		if err != nil {
			return 0, err
		}
		d.space()
		if d.pos >= len(d.src) || d.src[d.pos] != ':' {
			return 0, d.errorf("expected ':'")
		}
		d.pos++
		if self == 0 && d.only != nil && !d.wanted(k) {
			if err := d.skip(); err != nil {
				return 0, err
			}
		} else {
			child, err := d.value(k)
			if err != nil {
				return 0, err
			}
			if last < 0 {
				d.nodes[self].first = child
			} else {
				d.nodes[last].next = child
			}
			last = child
		}
		d.space()
		if d.pos >= len(d.src) {
			return 0, d.errorf("unterminated object")
		}
		switch d.src[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return self, nil
		default:
			return 0, d.errorf("expected ',' or '}'")
		}
	}
}

func (d *doc) array(key string) (int32, error) {
	self := d.add(kArray, key)
	d.pos++ // [
	last := int32(-1)
	d.space()
	if d.pos < len(d.src) && d.src[d.pos] == ']' {
		d.pos++
		return self, nil
	}
	for {
		child, err := d.value("")
		if err != nil {
			return 0, err
		}
		if last < 0 {
			d.nodes[self].first = child
		} else {
			d.nodes[last].next = child
		}
		last = child
		d.space()
		if d.pos >= len(d.src) {
			return 0, d.errorf("unterminated array")
		}
		switch d.src[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return self, nil
		default:
			return 0, d.errorf("expected ',' or ']'")
		}
	}
}

// wanted reports whether root member k is one of d.only (a choice element
// by its name's prefix).
func (d *doc) wanted(k string) bool {
	for i := range d.only {
		if s := &d.only[i]; k == s.name || (s.choice && strings.HasPrefix(k, s.name)) {
			return true
		}
	}
	return false
}

// skip passes over one JSON value without making nodes, checking only that
// its strings and brackets are closed.
func (d *doc) skip() error {
	d.space()
	depth := 0
	for d.pos < len(d.src) {
		switch c := d.src[d.pos]; c {
		case '"':
			if _, err := d.str(); err != nil {
				return err
			}
		case '{', '[':
			depth++
			d.pos++
		case '}', ']':
			if depth == 0 {
				return nil // the end of the enclosing object
			}
			depth--
			d.pos++
		case ',':
			if depth == 0 {
				return nil
			}
			d.pos++
		default:
			d.pos++
		}
		if depth == 0 && (d.src[d.pos-1] == '"' || d.src[d.pos-1] == '}' || d.src[d.pos-1] == ']') {
			return nil
		}
	}
	return d.errorf("unexpected end of input")
}

// str reads a string starting at the opening quote.
func (d *doc) str() (string, error) {
	d.pos++
	start := d.pos
	for d.pos < len(d.src) {
		switch c := d.src[d.pos]; {
		case c == '"':
			s := d.src[start:d.pos]
			d.pos++
			return s, nil
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", d.errorf("control character in string")
		default:
			d.pos++
		}
	}
	return "", d.errorf("unterminated string")
}

// escaped finishes a string that contains escapes, from start.
func (d *doc) escaped(start int) (string, error) {
	b := []byte(d.src[start:d.pos])
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(b), nil
		case c != '\\':
			b = append(b, c)
			d.pos++
			continue
		}
		if d.pos+1 >= len(d.src) {
			break
		}
		e := d.src[d.pos+1]
		d.pos += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", d.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if d.pos+1 < len(d.src) && d.src[d.pos] == '\\' && d.src[d.pos+1] == 'u' {
					d.pos += 2
					r2, _ = d.hex4()
				}
				r = utf16.DecodeRune(r, r2)
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", d.errorf("invalid escape \\%c", e)
		}
	}
	return "", d.errorf("unterminated string")
}

func (d *doc) hex4() (rune, bool) {
	if d.pos+4 > len(d.src) {
		return 0, false
	}
	v, err := strconv.ParseUint(d.src[d.pos:d.pos+4], 16, 32)
	d.pos += 4
	return rune(v), err == nil
}

// child returns the member of object n named key, or -1.
func (d *doc) child(n int32, key string) int32 {
	if n < 0 || d.nodes[n].kind != kObject {
		return -1
	}
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		if d.nodes[c].key == key {
			return c
		}
	}
	return -1
}

// str returns the string (or number/boolean text) of member key of n.
func (d *doc) text(n int32, key string) string {
	c := d.child(n, key)
	if c < 0 {
		return ""
	}
	return d.nodes[c].val
}

// each calls fn for n itself, or for each item when n is an array.
func (d *doc) each(n int32, fn func(int32)) {
	if n < 0 {
		return
	}
	if d.nodes[n].kind != kArray {
		fn(n)
		return
	}
	for c := d.nodes[n].first; c >= 0; c = d.nodes[c].next {
		fn(c)
	}
}
