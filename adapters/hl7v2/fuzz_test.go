package hl7v2

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// encodes to text that parses to the same structure, which encodes to the
// same bytes; that reading paths and building an ACK never panic either.
// Seeds: the samples in testdata, plus the corpus go test -fuzz keeps in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.hl7")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(sample(f, filepath.Base(name)))
	}
	for _, s := range []string{"", "MSH", "MSH|^~\\&", "MSH|^~\\&|\\X\\|\\X0\\|\\E", "MSH|^~\\&#|A\rPID|||\r", "MSH\xff\xfe\xfd\xfc\xfb"} {
		f.Add([]byte(s))
	}
	paths := []string{"MSH-1", "MSH-2", "MSH-9.2", "MSH-12", "PID-3[2].1", "PID-5.1.1", "SCH-11.4", "AIS[2]-4"}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		enc := m.Encode()
		m2, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(Encode(Parse(%q))) = %v (encoded %q)", data, err, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("structure changed in a round trip:\n%#v\n%#v", m, m2)
		}
		if enc2 := m2.Encode(); string(enc2) != string(enc) {
			t.Fatalf("Encode not stable: %q then %q", enc, enc2)
		}
		for _, p := range paths {
			_ = m.Get(p)
			_ = m.Raw(p)
		}
		_ = m.CheckHeader()
		ack, err := BuildAck(m, Ack{Outcome: OutcomeError, Issues: []*Issue{{Code: CodeInternal, Text: string(data[:min(len(data), 40)])}}})
		if err != nil {
			t.Fatalf("BuildAck: %v", err)
		}
		back, err := Parse(ack.Encode())
		if err != nil {
			t.Fatalf("the ACK does not parse: %v\n%q", err, ack.Encode())
		}
		if got, want := back.Get("MSA-2"), m.ControlID(); got != want {
			t.Fatalf("MSA-2 = %q, want %q", got, want)
		}
	})
}
