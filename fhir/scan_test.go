package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scanAll runs ScanObject (or ScanArray) over data to its end, giving the
// names and values it yields and its error. It fails the test if Next
// keeps answering true beyond what data could hold, or answers again
// after it has stopped.
func scanAll(t *testing.T, data []byte, flags ScanFlags, array bool) (names []string, vals [][]byte, err error) {
	t.Helper()
	sc := ScanObject(data, flags)
	if array {
		sc = ScanArray(data, flags)
	}
	for sc.Next() {
		if len(vals) > len(data) {
			t.Fatalf("Scan(%q) yields more members than bytes", data)
		}
		name, value, end := sc.Offsets()
		if name > value || value >= end || end > len(data) || !bytes.Equal(sc.Value(), data[value:end]) {
			t.Fatalf("Scan(%q): offsets %d, %d, %d for value %q", data, name, value, end, sc.Value())
		}
		names = append(names, sc.Name())
		vals = append(vals, sc.Value())
	}
	if sc.Next() {
		t.Fatalf("Scan(%q): Next answers true after it stopped", data)
	}
	err = sc.Err()
	var se *ScanError
	if err != nil && (!errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) || se.Reason == "") {
		t.Fatalf("Scan(%q): error %#v, want a *ScanError within the text", data, err)
	}
	return names, vals, err
}

// TestScanMalformed: every malformed text, and every text a flag refuses,
// is refused with a *ScanError saying where, never a panic or a loop, by
// ScanObject and SkipValue alike; encoding/json refuses the malformed
// ones too.
func TestScanMalformed(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)
	deeper := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	var many strings.Builder
	many.WriteString("{")
	for i := range maxScanMembers + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"m` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1`)
	}
	many.WriteString("}")
	tests := []struct {
		text   string
		flags  ScanFlags
		offset int  // where the error is
		valid  bool // valid JSON all the same (a flag refuses it)
	}{
		{``, 0, 0, false},
		{` `, 0, 1, false},
		{`{`, 0, 1, false},
		{`}`, 0, 0, false},
		{`[1]`, 0, 0, true},
		{`"x"`, 0, 0, true},
		{`{"a"`, 0, 4, false},
		{`{"a"}`, 0, 4, false},
		{`{"a":}`, 0, 5, false},
		{`{"a":1,}`, 0, 7, false},
		{`{,}`, 0, 1, false},
		{`{"a":1 "b":2}`, 0, 7, false},
		{`{"a":[}`, 0, 6, false},
		{`{"a":[1 2]}`, 0, 8, false},
		{`{"a":{"b" 1}}`, 0, 10, false},
		{`{"a":{"b":1,}}`, 0, 12, false},
		{`{"a":"}`, 0, 7, false},
		{`{"a":"\`, 0, 7, false},
		{`{"a":"\x"}`, 0, 6, false},
		{`{"a":"\u12G4"}`, 0, 6, false},
		{`{"a":"\u12"}`, 0, 6, false},
		{`{"a":"x` + "\x01" + `"}`, 0, 7, false},
		{`{a:1}`, 0, 1, false},
		{`{"a":tru}`, 0, 5, false},
		{`{"a":nul`, 0, 5, false},
		{`{"a":True}`, 0, 5, false},
		{`{"a":01}`, 0, 6, false},
		{`{"a":-}`, 0, 6, false},
		{`{"a":1.}`, 0, 7, false},
		{`{"a":1e}`, 0, 7, false},
		{`{"a":1e+}`, 0, 8, false},
		{`{"a":+1}`, 0, 5, false},
		{`{"a":.5}`, 0, 5, false},
		{`{"a":1}x`, 0, 7, false},
		{`{"a":1}{}`, 0, 7, false},
		{`{"a":1}}`, 0, 7, false},
		{deeper, 0, 5 * MaxDepth, false},
		// What the flags refuse.
		{`{"a":1,"a":2}`, UniqueNames, 7, true},
		{`{"a":{"b":1,"b":2}}`, UniqueNames, 12, true},
		{`{"a":[{"b":1,"c":{"d":1,"d":1}}]}`, UniqueNames, 24, true},
		{`{"\u0061":1}`, UniqueNames, 2, true},
		{`{"a":{"é":1}}`, UniqueNames, 7, true},
		{many.String(), UniqueNames, strings.LastIndex(many.String(), `,"`) + 1, true},
		{`{ "a":1}`, Compact, 1, true},
		{` {"a":1}`, Compact, 0, true},
		{`{"a":1} `, Compact, 7, true},
		{`{"a":[1, 2]}`, Compact, 8, true},
		{`{"<":1}`, Compact, 2, true},
		{`{"a":{"":1}}`, Compact, 6, true},
	}
	for _, tt := range tests {
		_, _, err := scanAll(t, []byte(tt.text), tt.flags, false)
		var se *ScanError
		if !errors.As(err, &se) {
			t.Errorf("ScanObject(%.80s, %d): no error", tt.text, tt.flags)
			continue
		}
		if se.Offset != tt.offset {
			t.Errorf("ScanObject(%.80s, %d): error %q, want it at offset %d", tt.text, tt.flags, err, tt.offset)
		}
		if json.Valid([]byte(tt.text)) != tt.valid && tt.text != deeper {
			t.Errorf("json.Valid(%.80s) = %v, want %v", tt.text, !tt.valid, tt.valid)
		}
		if end, err := SkipValue([]byte(tt.text), 0, tt.flags); err == nil && end == len(tt.text) && !(tt.valid && tt.flags == 0) {
			t.Errorf("SkipValue(%.80s, %d) accepted it whole", tt.text, tt.flags)
		}
	}
	if _, _, err := scanAll(t, []byte(deep), UniqueNames|Compact, false); err != nil {
		t.Errorf("nesting of MaxDepth: %v", err)
	}
	if _, _, err := scanAll(t, []byte(many.String()), 0, false); err != nil {
		t.Errorf("%d members without UniqueNames: %v", maxScanMembers+1, err)
	}
	for _, i := range []int{-1, 4} {
		if _, err := SkipValue([]byte(`123`), i, 0); err == nil {
			t.Errorf("SkipValue at %d of a 3-byte text: no error", i)
		}
	}
}

// TestScanMembers: the members and elements a scan yields, their names
// decoded as encoding/json decodes them, and the spans the callers splice
// with.
func TestScanMembers(t *testing.T) {
	tests := []struct {
		text  string
		flags ScanFlags
		array bool
		names []string
		vals  []string
	}{
		{`{}`, Compact, false, nil, nil},
		{` { } `, 0, false, nil, nil},
		{`[]`, Compact, true, nil, nil},
		{`{"resourceType":"Slot","id":"s1"}`, Compact | UniqueNames, false, []string{"resourceType", "id"}, []string{`"Slot"`, `"s1"`}},
		{"{ \"a\" :\t[ 1 , {\"b\":null} ]\n,\r\"c\":\"}],{\\\"\" }", UniqueNames, false, []string{"a", "c"}, []string{`[ 1 , {"b":null} ]`, `"}],{\""`}},
		{`{"a\"b":1,"\u00e9":true,"<&>":-0.5E-3,"é":"x"}`, 0, false, []string{`a"b`, "é", "<&>", "é"}, []string{"1", "true", "-0.5E-3", `"x"`}},
		{"{\"\xff\":1}", 0, false, []string{"\ufffd"}, []string{"1"}},
		{`[1,"two",[3],{"four":4},null]`, Compact | UniqueNames, true, []string{"", "", "", "", ""}, []string{"1", `"two"`, "[3]", `{"four":4}`, "null"}},
		{`{"a":1,"a":2}`, 0, false, []string{"a", "a"}, []string{"1", "2"}},
	}
	for _, tt := range tests {
		names, vals, err := scanAll(t, []byte(tt.text), tt.flags, tt.array)
		if err != nil {
			t.Errorf("Scan(%s, %d): %v", tt.text, tt.flags, err)
			continue
		}
		var got []string
		for _, v := range vals {
			got = append(got, string(v))
		}
		if strings.Join(names, "|") != strings.Join(tt.names, "|") || strings.Join(got, "|") != strings.Join(tt.vals, "|") {
			t.Errorf("Scan(%s, %d) = %q, %q; want %q, %q", tt.text, tt.flags, names, got, tt.names, tt.vals)
		}
	}
	// Offsets: what the splices cut at.
	body := []byte(`{"a":1,"bb":[2],"c":{}}`)
	sc := ScanObject(body, Compact)
	if sc.Key() != nil || sc.Name() != "" || len(sc.Value()) != 0 || sc.Err() != nil {
		t.Errorf("before Next: key %q, value %q, error %v", sc.Key(), sc.Value(), sc.Err())
	}
	sc.Next()
	sc.Next()
	if k, v, e := sc.Offsets(); k != 7 || v != 12 || e != 15 || string(sc.Key()) != "bb" {
		t.Errorf("Offsets of bb = %d, %d, %d (key %q); want 7, 12, 15", k, v, e, sc.Key())
	}
	// SkipValue inside a text, no whitespace skipped.
	if end, err := SkipValue([]byte(`x:[1,{"a":"]"}] y`), 2, Compact); err != nil || end != 15 {
		t.Errorf("SkipValue = %d, %v; want 15", end, err)
	}
	if _, err := SkipValue([]byte(`x: 1`), 2, 0); err == nil {
		t.Error("SkipValue skipped leading whitespace")
	}
}

// FuzzScan: a scan never panics or loops, and agrees with encoding/json:
// without flags, it accepts exactly the JSON objects (arrays) that
// json.Valid accepts within MaxDepth, with the members json.Decoder reads;
// with UniqueNames, only what ParseObject accepts, and all of that whose
// names are plain; with Compact as well, only what ParseObject and
// Object.Bytes give back byte for byte. SkipValue accepts a whole text as
// json.Valid does. Seeds: testdata/fuzz/FuzzScan and the resources in
// testdata.
func FuzzScan(f *testing.F) {
	addTestdata(f, func(b []byte) { f.Add(b, uint8(0)); f.Add(b, uint8(UniqueNames|Compact)) })
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		fl := ScanFlags(flags) & (UniqueNames | Compact)
		array := len(data) > 0 && data[0] == '['
		names, vals, err := scanAll(t, data, fl, array)
		depthOK := CheckDepth(data) == nil
		valid := json.Valid(data)
		end, skipErr := SkipValue(data, 0, fl)
		if whole := skipErr == nil && end == len(data); whole && (!valid || !depthOK) {
			t.Fatalf("SkipValue accepted %q, which json.Valid does not", data)
		} else if fl == 0 && !whole && valid && depthOK && len(bytes.TrimSpace(data)) == len(data) {
			t.Fatalf("SkipValue refused valid JSON %q: %v", data, skipErr)
		}
		if err != nil {
			if fl == 0 && valid && depthOK && (bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) || array) {
				t.Fatalf("Scan refused valid JSON %q: %v", data, err)
			}
			if fl == UniqueNames && plainNames(data) && !array && len(data) < 1000 {
				if _, perr := ParseObject(data); perr == nil {
					t.Fatalf("Scan with UniqueNames refused %q, which ParseObject accepts: %v", data, err)
				}
			}
			return
		}
		if !valid || !depthOK {
			t.Fatalf("Scan accepted %q, which json.Valid (or CheckDepth) does not", data)
		}
		if array {
			return
		}
		// The members json.Decoder reads.
		dec := json.NewDecoder(bytes.NewReader(data))
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
		for i := 0; dec.More(); i++ {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			if i >= len(names) || names[i] != tok.(string) || !bytes.Equal(bytes.TrimSpace(vals[i]), bytes.TrimSpace(raw)) {
				t.Fatalf("member %d of %q: scan %q, json.Decoder %q: %s", i, data, names, tok, raw)
			}
		}
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			t.Fatalf("Scan accepted %q with content after the object", data)
		}
		if fl&UniqueNames == 0 {
			return
		}
		o, err := ParseObject(data)
		if err != nil {
			t.Fatalf("Scan with UniqueNames accepted %q, which ParseObject refuses: %v", data, err)
		}
		if fl&Compact != 0 && !bytes.Equal(o.Bytes(), data) {
			t.Fatalf("Scan with Compact accepted %q, which ParseObject keeps as %q", data, o.Bytes())
		}
	})
}

// plainNames reports whether every string in data (so every member name)
// is printable ASCII without escapes: what UniqueNames compares exactly.
func plainNames(data []byte) bool {
	for _, c := range data {
		if c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// BenchmarkScan: listing a stored body's members with ScanObject, and
// what encoding/json offers for it (json.Decoder's tokens, and json.Valid
// alone, which finds no members at all).
//
//	go test ./fhir -run '^$' -bench BenchmarkScan
func BenchmarkScan(b *testing.B) {
	body := []byte(`{"resourceType":"HealthcareService","id":"svc-7","meta":{"versionId":"2","lastUpdated":"2026-12-07T01:02:03.456Z"},` +
		`"identifier":[{"system":"https://signpost.example/service","value":"svc-7"}],"active":true,"providedBy":{"reference":"Organization/RBENCH"},` +
		`"type":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110","display":"Trauma and orthopaedics"}]}],` +
		`"name":"Orthopaedics clinic 7","telecom":[{"system":"phone","value":"01234 567890"}],"availableTime":[{"daysOfWeek":["mon","tue","wed"],"availableStartTime":"09:00:00","availableEndTime":"17:00:00"}]}`)
	b.Run("ScanObject", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sc := ScanObject(body, UniqueNames)
			for sc.Next() {
				_ = sc.Value()
			}
			if sc.Err() != nil {
				b.Fatal(sc.Err())
			}
		}
	})
	b.Run("json.Decoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(body))
			if _, err := dec.Token(); err != nil {
				b.Fatal(err)
			}
			for dec.More() {
				if _, err := dec.Token(); err != nil {
					b.Fatal(err)
				}
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}

// addTestdata hands add each resource in testdata, as a seed.
func addTestdata(f *testing.F, add func([]byte)) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}
