package bulk

// Scanning NDJSON lines without decoding them: most lines of a bulk load
// start with resourceType and id, and meta is spliced in after the id
// (fhir.ParseObject and fhir.Stamp cost several times more).

import (
	"bytes"

	"github.com/signpost-fhir/signpost/fhir"
)

// fastHead recognises the common shape of a line that needs no
// re-encoding: an object whose first members are resourceType and id (plain
// strings) and that has no meta. It returns them and the offset after the
// id value, where meta can be spliced in; at is 0 for any other shape,
// which takes the general path (fhir.ParseObject and fhir.Stamp).
//
// The line is scanned whole (fhir.ScanObject with fhir.UniqueNames), so
// that it takes this path only if ParseObject would accept it too: valid
// JSON, no member name repeated at any depth, no nesting deeper than
// fhir.MaxDepth. A line it refuses, or whose member names it cannot
// compare exactly (escapes), goes to ParseObject, which says what is
// wrong.
func fastHead(line []byte) (typ, id string, at int) {
	str := func(v []byte) (string, bool) {
		if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
			return "", false
		}
		return string(v[1 : len(v)-1]), true
	}
	sc := fhir.ScanObject(line, fhir.UniqueNames)
	for n := 0; sc.Next(); n++ {
		key, ok := sc.Key(), true
		switch n {
		case 0:
			if string(key) != "resourceType" {
				return "", "", 0
			}
			typ, ok = str(sc.Value())
		case 1:
			if string(key) != "id" {
				return "", "", 0
			}
			id, ok = str(sc.Value())
			_, _, at = sc.Offsets()
		default:
			ok = string(key) != "meta"
		}
		if !ok {
			return "", "", 0
		}
	}
	if sc.Err() != nil || at == 0 {
		return "", "", 0
	}
	return typ, id, at
}
