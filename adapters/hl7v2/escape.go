package hl7v2

import (
	"strings"
)

// Unescape turns wire text into the value it stands for: \F\ \S\ \T\ \R\ \E\
// become the separators they name, \Xhh..\ the bytes its hex digits spell.
// Any other escape (\H\, \N\, \.br\, \Zxx\, a malformed one) is kept as it
// came, escape characters included, so nothing is silently lost.
func (d Delimiters) Unescape(s string) string {
	if strings.IndexByte(s, d.Escape) < 0 {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, d.Escape)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		j := strings.IndexByte(s, d.Escape)
		if j < 0 { // an escape character with no end: keep it
			b.WriteByte(d.Escape)
			b.WriteString(s)
			return b.String()
		}
		seq := s[:j]
		if out, ok := d.unescapeOne(seq); ok {
			b.WriteString(out)
		} else {
			b.WriteByte(d.Escape)
			b.WriteString(seq)
			b.WriteByte(d.Escape)
		}
		s = s[j+1:]
	}
}

// unescapeOne decodes the escape sequence seq (without its escape
// characters), reporting false for one it does not decode.
func (d Delimiters) unescapeOne(seq string) (string, bool) {
	switch seq {
	case "F":
		return char(d.Field), true
	case "S":
		return char(d.Component), true
	case "T":
		return char(d.Subcomponent), true
	case "R":
		return char(d.Repetition), true
	case "E":
		return char(d.Escape), true
	}
	if len(seq) >= 3 && seq[0] == 'X' && len(seq)%2 == 1 {
		out := make([]byte, 0, len(seq)/2)
		for k := 1; k < len(seq); k += 2 {
			hi, ok1 := hexVal(seq[k])
			lo, ok2 := hexVal(seq[k+1])
			if !ok1 || !ok2 {
				return "", false
			}
			out = append(out, hi<<4|lo)
		}
		return string(out), true
	}
	return "", false
}

// hexVal is the value of one hex digit.
func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// EscapeText turns a value into wire text: each separator and the escape
// character become \F\ \S\ \T\ \R\ \E\, and carriage return and line feed
// become \X0D\ and \X0A\ (they would otherwise end the segment).
func (d Delimiters) EscapeText(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if d.needsEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	e := char(d.Escape)
	for i := 0; i < len(s); i++ {
		c := s[i]
		var code string
		switch c {
		case d.Field:
			code = "F"
		case d.Component:
			code = "S"
		case d.Subcomponent:
			code = "T"
		case d.Repetition:
			code = "R"
		case d.Escape:
			code = "E"
		case '\r':
			code = "X0D"
		case '\n':
			code = "X0A"
		default:
			b.WriteByte(c)
			continue
		}
		b.WriteString(e + code + e)
	}
	return b.String()
}

// needsEscape reports whether c cannot appear as itself in wire text.
func (d Delimiters) needsEscape(c byte) bool {
	return c == d.Field || c == d.Component || c == d.Subcomponent || c == d.Repetition || c == d.Escape || c == '\r' || c == '\n'
}

// char is the one-byte string of c (string(c) would make it a rune, two
// bytes in UTF-8 for a separator above 0x7F).
func char(c byte) string { return string([]byte{c}) }
