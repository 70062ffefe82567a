package hl7v2

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sample reads a message from testdata, its lines ended by \r as on the wire.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r"))
}

// mustParse parses or fails the test.
func mustParse(t testing.TB, b []byte) *Message {
	t.Helper()
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestGet(t *testing.T) {
	tests := []struct {
		file, path, want string
	}{
		{"siu_s12.hl7", "MSH-1", "|"},
		{"siu_s12.hl7", "MSH-2", `^~\&`},
		{"siu_s12.hl7", "MSH-3", "CAREFLOW"},
		{"siu_s12.hl7", "MSH-9", "SIU"},
		{"siu_s12.hl7", "MSH-9.2", "S12"},
		{"siu_s12.hl7", "MSH-9.3", "SIU_S12"},
		{"siu_s12.hl7", "MSH-10", "RH8-000123"},
		{"siu_s12.hl7", "MSH-12", "2.5.1"},
		{"siu_s12.hl7", "MSH-15", "AL"},
		{"siu_s12.hl7", "MSH-18", "UNICODE UTF-8"},
		{"siu_s12.hl7", "MSH-19", ""},
		{"siu_s12.hl7", "SCH-1", "SP-APPT-1"},
		{"siu_s12.hl7", "SCH-2.2", "CAREFLOW"},
		{"siu_s12.hl7", "SCH-11.4", "20261214093000+0000"},
		{"siu_s12.hl7", "SCH-25", "BOOKED"},
		{"siu_s12.hl7", "SCH-26", "000000123456"},
		{"siu_s12.hl7", "SCH-26[2]", ""},
		{"siu_s12.hl7", "PID-3", "9434765919"},
		{"siu_s12.hl7", "PID-3[1].4", "NHS"},
		{"siu_s12.hl7", "PID-3[2].1", "RH8A123456"},
		{"siu_s12.hl7", "PID-3[2].5", "PI"},
		{"siu_s12.hl7", "PID-3[3].1", ""},
		{"siu_s12.hl7", "PID-5.2", "JANE"},
		{"siu_s12.hl7", "PID-5.1.1", "SMITH"},
		{"siu_s12.hl7", "PID-13[2].4", "jane.smith@example.com"},
		{"siu_s12.hl7", "NTE-3", `Patient requests ground floor clinic & hearing loop\sign language interpreter`},
		{"siu_s12.hl7", "AIL-3.4", "RH8"},
		{"siu_s12.hl7", "AIP-3.9", "GMC"},
		{"siu_s12.hl7", "ZZZ-1", ""},
		{"siu_s12.hl7", "PID-99", ""},
		{"siu_s12.hl7", "PID[2]-3", ""},
		{"siu_s12.hl7", "PID-3.99", ""},
		{"siu_s12.hl7", "not a path", ""},
		{"siu_s15.hl7", "MSH-12", "2.4"},
		{"siu_s15.hl7", "RGS-2", "D"},
		{"adt_a04.hl7", "PID-5[2].7", "A"},
		{"adt_a04.hl7", "PID-5.1", "O'BRIEN"},
		{"adt_a04.hl7", "PD1-4.22", "GMC"},
		{"adt_a08.hl7", "PID-5.2", "SEÁN"},
		{"adt_a08.hl7", "PID-11.1", "Flat 1^2"},
		{"adt_a08.hl7", "PID-13[2].4", "sean@example.org"},
		{"adt_a08.hl7", "PID-3.7", "20200101"},
		{"adt_a40.hl7", "MRG-1.1", "RH8A299999"},
		{"adt_a40.hl7", "MSH-16", "AL"},
		{"odd_separators.hl7", "MSH-1", "#"},
		{"odd_separators.hl7", "MSH-2", "$%*@"},
		{"odd_separators.hl7", "MSH-9.2", "A08"},
		{"odd_separators.hl7", "PID-3[2].1", "RH8A200001"},
		{"odd_separators.hl7", "PID-5.2.2", "SCOTT#JAMES"},
		{"odd_separators.hl7", "PID-5.2.1", "JO"},
	}
	msgs := map[string]*Message{}
	for _, tt := range tests {
		m := msgs[tt.file]
		if m == nil {
			m = mustParse(t, sample(t, tt.file))
			msgs[tt.file] = m
		}
		if got := m.Get(tt.path); got != tt.want {
			t.Errorf("%s: Get(%q) = %q, want %q", tt.file, tt.path, got, tt.want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.hl7")
	if len(files) < 6 {
		t.Fatalf("found %d samples in testdata", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in := sample(t, filepath.Base(f))
			m := mustParse(t, in)
			if got := m.Encode(); !bytes.Equal(got, in) {
				t.Errorf("Encode differs from the input:\n got %q\nwant %q", got, in)
			}
		})
	}
}

func TestSegmentEndings(t *testing.T) {
	want := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.4\rPID|1||123\rPV1|1|O\r"))
	for _, in := range []string{
		"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.4\nPID|1||123\nPV1|1|O",
		"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.4\r\nPID|1||123\r\nPV1|1|O\r\n",
		"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.4\r\rPID|1||123\n\nPV1|1|O\r\n\r\n",
		"\r\nMSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.4\rPID|1||123\rPV1|1|O",
	} {
		got, err := Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) =\n%v\nwant\n%v", in, got, want)
		}
	}
}

func TestTrailingSeparators(t *testing.T) {
	m := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A08^|1|P|2.4|||||\rPID|1||123^^^NHS^NH^~||SMITH^^|||\r"))
	for path, want := range map[string]string{"MSH-9.2": "A08", "MSH-12": "2.4", "PID-3.4": "NHS", "PID-5": "SMITH", "PID-8": ""} {
		if got := m.Get(path); got != want {
			t.Errorf("Get(%q) = %q, want %q", path, got, want)
		}
	}
	if err := m.CheckHeader(); err != nil {
		t.Errorf("CheckHeader: %v", err)
	}
}

func TestEscapes(t *testing.T) {
	std := DefaultDelimiters
	odd := Delimiters{Field: '#', Component: '$', Repetition: '%', Escape: '*', Subcomponent: '@'}
	high := Delimiters{Field: 0xfa, Component: 0xfb, Repetition: 0xfc, Escape: 0xfd, Subcomponent: 0xeb}
	tests := []struct {
		d          Delimiters
		wire, text string
		reversible bool // EscapeText(text) gives wire back
	}{
		{std, `plain`, `plain`, true},
		{std, `a\F\b\S\c\T\d\R\e\E\f`, `a|b^c&d~e\f`, true},
		{std, `line\X0D\\X0A\next`, "line\r\nnext", true},
		{std, `\X41424344\`, `ABCD`, false},
		{std, `caf\XC3A9\`, `café`, false},
		{std, `\H\bold\N\`, `\H\bold\N\`, false},   // highlighting: kept
		{std, `one\.br\two`, `one\.br\two`, false}, // formatting: kept
		{std, `\Zabc\`, `\Zabc\`, false},           // local escape: kept
		{std, `\X4\`, `\X4\`, false},               // odd hex digits: kept
		{std, `\XZZ\`, `\XZZ\`, false},             // not hex: kept
		{std, `trailing \`, `trailing \`, false},   // unterminated: kept
		{std, `\\`, `\\`, false},                   // empty escape: kept
		{std, `\F\\F\`, `||`, true},
		{odd, `a*F*b*S*c*T*d*R*e*E*f`, `a#b$c@d%e*f`, true},
		{odd, `back\slash|pipe^hat`, `back\slash|pipe^hat`, true},
		{high, "a\xfdT\xfdb\xfdF\xfd", "a\xebb\xfa", true}, // separators above 0x7F stay single bytes
	}
	for _, tt := range tests {
		if got := tt.d.Unescape(tt.wire); got != tt.text {
			t.Errorf("Unescape(%q) = %q, want %q", tt.wire, got, tt.text)
		}
		if tt.reversible {
			if got := tt.d.EscapeText(tt.text); got != tt.wire {
				t.Errorf("EscapeText(%q) = %q, want %q", tt.text, got, tt.wire)
			}
		}
		// Whatever the text, escaping then unescaping gives it back.
		if got := tt.d.Unescape(tt.d.EscapeText(tt.text)); got != tt.text {
			t.Errorf("Unescape(EscapeText(%q)) = %q", tt.text, got)
		}
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want Path
		bad  bool
	}{
		{in: "PID-3", want: Path{Segment: "PID", SegRep: 1, Field: 3}},
		{in: "PID-3[2].1", want: Path{Segment: "PID", SegRep: 1, Field: 3, Rep: 2, Comp: 1}},
		{in: "PID-5.1.1", want: Path{Segment: "PID", SegRep: 1, Field: 5, Comp: 1, Sub: 1}},
		{in: "AIS[2]-4", want: Path{Segment: "AIS", SegRep: 2, Field: 4}},
		{in: "ZU1-1", want: Path{Segment: "ZU1", SegRep: 1, Field: 1}},
		{in: "MSH-1", want: Path{Segment: "MSH", SegRep: 1, Field: 1}},
		{in: "PID", bad: true},
		{in: "PID-", bad: true},
		{in: "PID-0", bad: true},
		{in: "PID--1", bad: true},
		{in: "PID-+1", bad: true},
		{in: "PID-3[0]", bad: true},
		{in: "PID-3[2", bad: true},
		{in: "PID-3.1.1.1", bad: true},
		{in: "PID-10000", bad: true},
		{in: "pid-3", bad: true},
		{in: "PIDX-3", bad: true},
		{in: "MSH-2.2", bad: true},
		{in: "MSH-1[2]", bad: true},
	}
	for _, tt := range tests {
		got, err := ParsePath(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParsePath(%q) = %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParsePath(%q).String() = %q", tt.in, s)
		}
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name  string
		start string // the message after MSH
		path  string
		value string
		want  string // the segments after MSH, \r-separated
		bad   bool
	}{
		{name: "new segment", path: "PID-3", value: "123", want: "PID|||123"},
		{name: "repetition", start: "PID|||123^^^NHS^NH", path: "PID-3[2].1", value: "X9", want: "PID|||123^^^NHS^NH~X9"},
		{name: "component", start: "PID|||123^^^NHS^NH", path: "PID-3.4", value: "RH8", want: "PID|||123^^^RH8^NH"},
		{name: "subcomponent", start: "PID|||123", path: "PID-5.1.2", value: "VAN", want: "PID|||123||&VAN"},
		{name: "whole field replaced", start: "PID|||123^^^NHS^NH~9", path: "PID-3", value: "7", want: "PID|||7"},
		{name: "emptied", start: "PID|||123|x", path: "PID-3", value: "", want: "PID||||x"},
		{name: "escaped", path: "NTE-3", value: "a|b^c~d&e\\f\rg", want: `NTE|||a\F\b\S\c\R\d\T\e\E\f\X0D\g`},
		{name: "second segment", start: "AIS|1", path: "AIS[2]-1", value: "2", want: "AIS|1\rAIS|2"},
		{name: "skipped occurrence", start: "AIS|1", path: "AIS[3]-1", value: "3", bad: true},
		{name: "MSH-1", path: "MSH-1", value: "#", bad: true},
		{name: "MSH-2", path: "MSH-2", value: "$%*@", bad: true},
		{name: "bad path", path: "PID-0", value: "x", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "MSH|^~\\&|A\r" + tt.start
			m := mustParse(t, []byte(in))
			err := m.Set(tt.path, tt.value)
			if tt.bad {
				if err == nil {
					t.Fatalf("Set(%q) succeeded, want an error", tt.path)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set(%q): %v", tt.path, err)
			}
			got := strings.TrimSuffix(strings.TrimPrefix(string(m.Encode()), "MSH|^~\\&|A\r"), "\r")
			if got != tt.want {
				t.Errorf("after Set(%q, %q):\n got %q\nwant %q", tt.path, tt.value, got, tt.want)
			}
			if back := mustParse(t, m.Encode()).Get(tt.path); back != tt.value {
				t.Errorf("Get(%q) after Set and a round trip = %q, want %q", tt.path, back, tt.value)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name, in, want string // want: a fragment of the error
	}{
		{"empty", "", "empty"},
		{"blank lines", "\r\n\r\n", "empty"},
		{"no MSH", "PID|1||123\r", "does not start with an MSH"},
		{"lower-case msh", "msh|^~\\&|A\r", "does not start with an MSH"},
		{"MSH only", "MSH", "too short"},
		{"short MSH", "MSH|^~", "too short"},
		{"short MSH-2", "MSH|^~\\|A|B", "both"},
		{"letter separator", "MSH|^~\\A|X", "letter or digit"},
		{"digit field separator", "MSH1^~\\&1X", "letter or digit"},
		{"space separator", "MSH| ~\\&|X", "space"},
		{"repeated separator", "MSH|^^\\&|X", "both"},
		{"field separator in MSH-2", "MSH|^|\\&|X", "both"},
		{"MSH-2 too long", "MSH|^~\\&#!?|X", "longer"},
		{"bad segment name", "MSH|^~\\&|A\rP|1", "not a segment name"},
		{"long segment name", "MSH|^~\\&|A\rPIDD|1", "not a segment name"},
		{"lower-case segment", "MSH|^~\\&|A\rpid|1", "not a segment name"},
		{"binary", "MSH|^~\\&|A\r\x00\x01\x02|", "not a segment name"},
		{"NUL separator", "MSH\x00^~\\&\x00A", "NUL"},
	}
	for _, tt := range tests {
		m, err := Parse([]byte(tt.in))
		if err == nil {
			t.Errorf("%s: Parse(%q) = %v, want an error", tt.name, tt.in, m)
			continue
		}
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse(%q) error %q, want ErrSyntax mentioning %q", tt.name, tt.in, err, tt.want)
		}
	}
}

func TestParseLarge(t *testing.T) {
	// Huge field, repetition and segment counts parse, in time linear in the input.
	in := "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5\rPID" + strings.Repeat("|", 200000) + "\rNTE|" +
		strings.Repeat("~", 100000) + "\r" + strings.Repeat("ZZZ|1\r", 50000)
	m := mustParse(t, []byte(in))
	if got := len(m.Segment("PID", 1).Fields); got != 200000 {
		t.Errorf("PID has %d fields, want 200000", got)
	}
	if got := m.Count("NTE-1"); got != 100001 {
		t.Errorf("NTE-1 has %d repetitions, want 100001", got)
	}
	if got := m.Count("ZZZ"); got != 50000 {
		t.Errorf("%d ZZZ segments, want 50000", got)
	}
}

func TestCheckHeader(t *testing.T) {
	base := func(version string) string {
		return "MSH|^~\\&|PAS|RH8|SP|SP|20260101||ADT^A08|C1|P|" + version
	}
	tests := []struct {
		in       string
		wantCode string // "" for no issue
		wantPath string
	}{
		{base("2.3"), "", ""},
		{base("2.3.1"), "", ""},
		{base("2.4"), "", ""},
		{base("2.5"), "", ""},
		{base("2.5.1"), "", ""},
		{base("2.5.1^GBR"), "", ""},
		{base("2.2"), CodeUnsupportedVersion, "MSH-12"},
		{base("2.6"), CodeUnsupportedVersion, "MSH-12"},
		{base("3"), CodeUnsupportedVersion, "MSH-12"},
		{base(""), CodeRequiredMissing, "MSH-12"},
		{"MSH|^~\\&|PAS|RH8|SP|SP|20260101||ADT^A08|C1", CodeRequiredMissing, "MSH-11"},
		{"MSH|^~\\&|PAS|RH8|SP|SP|20260101||ADT^A08||P|2.4", CodeRequiredMissing, "MSH-10"},
		{"MSH|^~\\&|PAS|RH8|SP|SP|20260101||ADT|C1|P|2.4", CodeRequiredMissing, "MSH-9"},
		{"MSH|^~\\&|PAS|RH8|SP|SP|20260101|||C1|P|2.4", CodeRequiredMissing, "MSH-9"},
		{"MSH|^~\\&", CodeRequiredMissing, "MSH-9"},
	}
	for _, tt := range tests {
		err := mustParse(t, []byte(tt.in)).CheckHeader()
		if tt.wantCode == "" {
			if err != nil {
				t.Errorf("CheckHeader(%q) = %v, want nil", tt.in, err)
			}
			continue
		}
		var is *Issue
		if !errors.As(err, &is) || is.Code != tt.wantCode || is.Location.String() != tt.wantPath {
			t.Errorf("CheckHeader(%q) = %v, want code %s at %s", tt.in, err, tt.wantCode, tt.wantPath)
		}
	}
}

func TestParseTime(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		london = time.FixedZone("BST", 3600) // no zoneinfo: the summer rows still hold
	}
	tests := []struct {
		in   string
		loc  *time.Location
		want time.Time
		bad  bool
	}{
		{in: "2026", want: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "202612", want: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{in: "20261214", want: time.Date(2026, 12, 14, 0, 0, 0, 0, time.UTC)},
		{in: "2026121409", want: time.Date(2026, 12, 14, 9, 0, 0, 0, time.UTC)},
		{in: "202612140930", want: time.Date(2026, 12, 14, 9, 30, 0, 0, time.UTC)},
		{in: "20261214093015", want: time.Date(2026, 12, 14, 9, 30, 15, 0, time.UTC)},
		{in: "20261214093015.25", want: time.Date(2026, 12, 14, 9, 30, 15, 250_000_000, time.UTC)},
		{in: "20260614093000+0100", want: time.Date(2026, 6, 14, 8, 30, 0, 0, time.UTC)},
		{in: "20260614093000-0500", want: time.Date(2026, 6, 14, 14, 30, 0, 0, time.UTC)},
		{in: "20260614093000", loc: london, want: time.Date(2026, 6, 14, 8, 30, 0, 0, time.UTC)},
		{in: "20261314", bad: true},
		{in: "2026121", bad: true},
		{in: "20261214093015.", bad: true},
		{in: "202612140930.5", bad: true},
		{in: "20261214+01", bad: true},
		{in: "2026-12-14", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, tt.loc)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseTime(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if got := FormatTime(time.Date(2026, 12, 6, 15, 14, 0, 0, time.UTC)); got != "20261206151400+0000" {
		t.Errorf("FormatTime = %q", got)
	}
}
