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
	const flags = Compact | UniqueNames
	// The top-level members: where each starts and ends.
	var spans [24][2]int
	members := spans[:0]
	ext := -1
	var extVal []byte
	sc := ScanObject(body, flags)
	for sc.Next() {
		k0, _, v1 := sc.Offsets()
		if string(sc.Key()) == "extension" {
			ext, extVal = len(members), sc.Value()
		}
		members = append(members, [2]int{k0, v1})
	}
	if sc.Err() != nil {
		return nil, false
	}
	// The extensions, and which stay.
	var cur [][]byte
	if ext >= 0 {
		if extVal[0] != '[' {
			return nil, false
		}
		el := ScanArray(extVal, flags)
		for el.Next() {
			cur = append(cur, el.Value())
		}
		if el.Err() != nil {
			return nil, false
		}
	}
	keep := make([][]byte, 0, len(cur))
	for _, e := range cur {
		u, ok := plainURL(e)
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
		if needsEscape(e) {
			return nil, false
		}
	}
	for _, x := range exts {
		if end, err := SkipValue(x, 0, flags); err != nil || end != len(x) || needsEscape(x) {
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
			out = append(out, e...)
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
		out = append(out, body[m[0]:m[1]]...)
	}
	if ext < 0 && !empty {
		if !first {
			out = append(out, ',')
		}
		writeExt()
	}
	return append(out, '}'), true
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
	url := ""
	sc := ScanObject(e, Compact|UniqueNames)
	for sc.Next() {
		name := sc.Key()
		switch {
		case string(name) == "url":
			v := sc.Value()
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
	}
	return url, sc.Err() == nil
}

// needsEscape reports whether json.Marshal would write the compact JSON
// value b differently: it escapes <, > and & and the line and paragraph
// separators in strings (and they can only occur in strings).
func needsEscape(b []byte) bool {
	return bytes.IndexByte(b, '<') >= 0 || bytes.IndexByte(b, '>') >= 0 || bytes.IndexByte(b, '&') >= 0 ||
		bytes.Contains(b, []byte("\u2028")) || bytes.Contains(b, []byte("\u2029"))
}
