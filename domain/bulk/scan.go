package bulk

// Scanning NDJSON lines without decoding them: most lines of a bulk load
// start with resourceType and id, and meta is spliced in after the id
// (fhir.ParseObject and fhir.Stamp cost several times more).

import "bytes"

// fastHead recognises the common shape of a line that needs no
// re-encoding: an object whose first members are resourceType and id (plain
// strings) and that has no meta. It returns them and the offset after the
// id value, where meta can be spliced in; at is 0 for any other shape,
// which takes the general path (fhir.ParseObject and fhir.Stamp).
func fastHead(line []byte) (typ, id string, at int) {
	ms, ok := topMembers(line)
	if !ok || len(ms) < 2 || ms[0].key != "resourceType" || ms[1].key != "id" {
		return "", "", 0
	}
	for _, m := range ms[2:] {
		if m.key == "meta" || m.key == "id" || m.key == "resourceType" {
			return "", "", 0
		}
	}
	str := func(m member) (string, bool) {
		v := line[m.valStart:m.valEnd]
		if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v[1:len(v)-1], '\\') >= 0 {
			return "", false
		}
		return string(v[1 : len(v)-1]), true
	}
	typ, ok1 := str(ms[0])
	id, ok2 := str(ms[1])
	if !ok1 || !ok2 {
		return "", "", 0
	}
	return typ, id, ms[1].valEnd
}

// member is a top-level member of a JSON object: the key and where its
// value ends.
type member struct {
	key      string
	valStart int
	valEnd   int
}

// topMembers lists the top-level members of the JSON object in b without
// decoding the values, or ok false when b is not an object it can scan.
func topMembers(b []byte) (ms []member, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, true
	}
	for i < len(b) {
		if b[i] != '"' {
			return nil, false
		}
		end := skipString(b, i)
		if end < 0 {
			return nil, false
		}
		key := string(b[i+1 : end-1])
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		vs := i
		if i = skipValue(b, i); i < 0 {
			return nil, false
		}
		ms = append(ms, member{key: key, valStart: vs, valEnd: i})
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return ms, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = skipString(b, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
