package fhir

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseObject checks that ParseObject never panics, that it accepts
// only valid JSON objects and refuses with an Invalid error, and that what
// it accepts round-trips: Bytes parses back to the same members in the
// same order, and encodes to the same bytes. Stamp on an accepted object
// either refuses its meta or gives an object that parses again, with the
// id and version written. Seeds: the resources in testdata and the corpus
// in testdata/fuzz/FuzzParseObject.
func FuzzParseObject(f *testing.F) {
	addTestdata(f, func(b []byte) { f.Add(b) })
	for _, s := range []string{``, `{}`, `[]`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":1} x`, `{"a":1.500e+3}`,
		`{"resourceType":"Patient","meta":"x"}`, `{"resourceType":"Patient","meta":{"versionId":"9","tag":[{}]}}`,
		`{"a":"\u00e9\ud800"}`, `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseObject(data)
		if err != nil {
			if KindOf(err) != Invalid {
				t.Fatalf("ParseObject(%q): error of kind %v, want Invalid: %v", data, KindOf(err), err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("ParseObject accepted invalid JSON %q", data)
		}
		enc := o.Bytes()
		o2, err := ParseObject(enc)
		if err != nil {
			t.Fatalf("ParseObject(Bytes()) = %v; encoded %q from %q", err, enc, data)
		}
		if got, want := o2.Keys(), o.Keys(); len(got) != len(want) {
			t.Fatalf("keys %q, then %q", want, got)
		}
		for i, k := range o.Keys() {
			if o2.Keys()[i] != k || !bytes.Equal(o2.Get(k), o.Get(k)) {
				t.Fatalf("member %d (%q) changed in a round trip: %s then %s", i, k, o.Get(k), o2.Get(k))
			}
		}
		if enc2 := o2.Bytes(); !bytes.Equal(enc, enc2) {
			t.Fatalf("Bytes not stable: %q then %q", enc, enc2)
		}
		stamped, err := Stamp(o2, "x1", 7, time.Unix(1_700_000_000, 0))
		if err != nil {
			if KindOf(err) != Invalid {
				t.Fatalf("Stamp: error of kind %v, want Invalid: %v", KindOf(err), err)
			}
			return
		}
		o3, err := ParseObject(stamped)
		if err != nil {
			t.Fatalf("the stamped object does not parse: %v\n%s", err, stamped)
		}
		if id, _ := o3.String("id"); id != "x1" {
			t.Fatalf("stamped id = %q, want x1: %s", id, stamped)
		}
		meta, err := ParseObject(o3.Get("meta"))
		if err != nil {
			t.Fatalf("stamped meta: %v", err)
		}
		if v, _ := meta.String("versionId"); v != "7" {
			t.Fatalf("stamped versionId = %q, want 7: %s", v, stamped)
		}
	})
}
