package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Object is a JSON object whose members keep their order and their exact
// bytes. It is how Signpost changes the elements the server owns (id, meta,
// a slot's status…) without re-encoding anything else the client sent:
// decimal precision, primitive extensions and unknown content all survive.
type Object struct {
	keys []string
	vals map[string]json.RawMessage
}

// MaxDepth is the deepest nesting of arrays and objects accepted in a
// resource. Real FHIR resources stay well under it.
const MaxDepth = 64

// ParseObject reads a JSON object, keeping each member's bytes (compacted).
// It reports truncated or malformed JSON, duplicate member names and nesting
// deeper than MaxDepth as Invalid errors.
func ParseObject(data []byte) (*Object, error) {
	if err := CheckDepth(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, Errorf(Invalid, "structure", "", "the body must be a JSON object")
	}
	o := &Object{vals: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(err)
		}
		if _, dup := o.vals[key]; dup {
			return nil, Errorf(Invalid, "structure", key, "member %q appears more than once", key)
		}
		if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
			if err := checkDuplicates(json.NewDecoder(bytes.NewReader(raw)), []string{key}); err != nil {
				return nil, err
			}
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, syntaxError(err)
		}
		o.keys = append(o.keys, key)
		o.vals[key] = buf.Bytes()
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxError(err)
	}
	// Only the end of the input may follow: another value, or bytes that
	// are not JSON at all ({"a":1} x), are refused alike.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(Invalid, "structure", "", "unexpected content after the JSON object")
	}
	return o, nil
}

func syntaxError(err error) *Error {
	return &Error{Kind: Invalid, Issues: []Issue{{Code: "structure",
		Diagnostics: fmt.Sprintf("the body is not valid JSON: %v", err)}}}
}

// checkDuplicates reports a member name that appears twice in one object
// anywhere in the value dec reads, located by its path (at, the path so far,
// is only joined when there is something to report).
func checkDuplicates(dec *json.Decoder, at []string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	switch tok {
	case json.Delim('{'):
		var seen map[string]bool
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return syntaxError(err)
			}
			key, _ := tok.(string)
			if seen[key] {
				where := strings.Join(append(at, "."+key), "")
				return Errorf(Invalid, "structure", where, "member %q appears more than once", key)
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[key] = true
			if err := checkDuplicates(dec, append(at, "."+key)); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := checkDuplicates(dec, append(at, "["+strconv.Itoa(i)+"]")); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return syntaxError(err)
	}
	return nil
}

// CheckDepth rejects nesting deeper than MaxDepth before any decoder recurses.
func CheckDepth(data []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > MaxDepth {
				return Errorf(Invalid, "too-costly", "", "JSON nesting is deeper than %d levels", MaxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// Keys returns the member names in order.
func (o *Object) Keys() []string { return o.keys }

// Get returns the raw bytes of member key, or nil.
func (o *Object) Get(key string) json.RawMessage { return o.vals[key] }

// Has reports whether member key is present.
func (o *Object) Has(key string) bool { _, ok := o.vals[key]; return ok }

// String returns member key if it is a JSON string.
func (o *Object) String(key string) (string, bool) {
	raw, ok := o.vals[key]
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// SetIdentifier gives the resource the identifier system|value, in place
// of one it has of the same system (the server's own ids of a resource in
// another system, which it keeps up to date).
func (o *Object) SetIdentifier(system, value string) error {
	var ids []json.RawMessage
	if raw := o.Get("identifier"); raw != nil {
		if err := json.Unmarshal(raw, &ids); err != nil {
			return Errorf(Invalid, "structure", "identifier", "identifier must be an array")
		}
	}
	keep := ids[:0]
	for _, raw := range ids {
		var id struct{ System string }
		if json.Unmarshal(raw, &id) == nil && id.System == system {
			continue
		}
		keep = append(keep, raw)
	}
	b, err := json.Marshal(struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}{system, value})
	if err != nil {
		return err
	}
	o.Set("identifier", append(keep, b))
	return nil
}

// Set replaces member key in place, or appends it. value is marshalled
// unless it is already a json.RawMessage.
func (o *Object) Set(key string, value any) {
	raw, ok := value.(json.RawMessage)
	if !ok {
		var err error
		raw, err = json.Marshal(value)
		if err != nil {
			panic(fmt.Sprintf("fhir: Object.Set(%q): %v", key, err)) // a programming error
		}
	}
	if _, exists := o.vals[key]; !exists {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = raw
}

// SetAfter sets member key, placing it just after member after when it is new
// (so that "id" and "meta" come right after "resourceType").
func (o *Object) SetAfter(after, key string, value any) {
	_, exists := o.vals[key]
	o.Set(key, value)
	if exists {
		return
	}
	o.keys = o.keys[:len(o.keys)-1]
	pos := len(o.keys)
	for i, k := range o.keys {
		if k == after {
			pos = i + 1
			break
		}
	}
	o.keys = append(o.keys, "")
	copy(o.keys[pos+1:], o.keys[pos:])
	o.keys[pos] = key
}

// Clone returns a copy of o that changes independently of it (the
// members' bytes are shared: Object never changes them in place).
func (o *Object) Clone() *Object {
	c := &Object{keys: slices.Clone(o.keys), vals: make(map[string]json.RawMessage, len(o.vals))}
	for k, v := range o.vals {
		c.vals[k] = v
	}
	return c
}

// Delete removes member key.
func (o *Object) Delete(key string) {
	if _, ok := o.vals[key]; !ok {
		return
	}
	delete(o.vals, key)
	for i, k := range o.keys {
		if k == key {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			break
		}
	}
}

// Bytes encodes the object compactly, members in order.
func (o *Object) Bytes() []byte {
	n := 2
	for _, k := range o.keys {
		n += len(k) + len(o.vals[k]) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range o.keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, o.vals[k]...)
	}
	return append(b, '}')
}
