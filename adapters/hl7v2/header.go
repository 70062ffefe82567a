package hl7v2

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// SupportedVersions are the HL7 versions (MSH-12) the codec is written and
// tested for.
var SupportedVersions = []string{"2.3", "2.3.1", "2.4", "2.5", "2.5.1"}

// Version returns MSH-12.1, the HL7 version the sender declares.
func (m *Message) Version() string { return m.Get("MSH-12.1") }

// ControlID returns MSH-10, the id the sender gave the message (the
// acknowledgement echoes it in MSA-2; a resent message keeps it).
func (m *Message) ControlID() string { return m.Get("MSH-10") }

// Type returns MSH-9's message code and trigger event, such as "SIU" and
// "S12". An ACK's trigger is the one it answers.
func (m *Message) Type() (code, event string) { return m.Get("MSH-9.1"), m.Get("MSH-9.2") }

// Codes from HL7 table 0357 (message error condition codes), for ERR-3.
const (
	CodeSegmentSequence         = "100" // segment sequence error
	CodeRequiredMissing         = "101" // required field missing
	CodeDataType                = "102" // data type error
	CodeTableValue              = "103" // table value not found
	CodeUnsupportedType         = "200" // unsupported message type
	CodeUnsupportedEvent        = "201" // unsupported event code
	CodeUnsupportedProcessingID = "202" // unsupported processing id
	CodeUnsupportedVersion      = "203" // unsupported version id
	CodeUnknownKey              = "204" // unknown key identifier
	CodeDuplicateKey            = "205" // duplicate key identifier
	CodeRecordLocked            = "206" // application record locked
	CodeInternal                = "207" // application internal error
)

// codeText is table 0357's text for each code, written in ERR-3.2.
var codeText = map[string]string{
	CodeSegmentSequence: "Segment sequence error", CodeRequiredMissing: "Required field missing",
	CodeDataType: "Data type error", CodeTableValue: "Table value not found",
	CodeUnsupportedType: "Unsupported message type", CodeUnsupportedEvent: "Unsupported event code",
	CodeUnsupportedProcessingID: "Unsupported processing id", CodeUnsupportedVersion: "Unsupported version id",
	CodeUnknownKey: "Unknown key identifier", CodeDuplicateKey: "Duplicate key identifier",
	CodeRecordLocked: "Application record locked", CodeInternal: "Application internal error",
}

// Severities for ERR-4 (HL7 table 0516).
const (
	SeverityError   = "E"
	SeverityWarning = "W"
	SeverityInfo    = "I"
)

// An Issue is one problem found in a message, as an ERR segment reports
// it: where (Location, a path such as "PID-3"; empty for the message as a
// whole), what (Code, from table 0357), how bad (Severity, E when empty) and
// Text for a person (ERR-8). An Issue is an error.
type Issue struct {
	Location Path
	Code     string
	Severity string
	Text     string
}

// Error says where and what.
func (i *Issue) Error() string {
	if i.Location.Segment == "" {
		return fmt.Sprintf("hl7v2: %s (%s)", i.Text, i.Code)
	}
	return fmt.Sprintf("hl7v2: %s: %s (%s)", i.Location, i.Text, i.Code)
}

// issue builds an Issue at path (a valid path literal).
func issue(path, code, text string) *Issue {
	p, _ := ParsePath(path)
	return &Issue{Location: p, Code: code, Severity: SeverityError, Text: text}
}

// CheckHeader checks that MSH carries what a receiver needs to process and
// acknowledge the message: a message type and trigger (MSH-9), a control id
// (MSH-10), a processing id (MSH-11) and a supported version (MSH-12). It
// returns nil or an *Issue, ready for an ERR segment.
func (m *Message) CheckHeader() error {
	switch {
	case m.Get("MSH-9.1") == "":
		return issue("MSH-9", CodeRequiredMissing, "MSH-9 (message type) is empty")
	case m.Get("MSH-9.2") == "" && m.Get("MSH-9.1") != "ACK":
		return issue("MSH-9", CodeRequiredMissing, "MSH-9.2 (trigger event) is empty")
	case m.ControlID() == "":
		return issue("MSH-10", CodeRequiredMissing, "MSH-10 (message control id) is empty")
	case m.Get("MSH-11.1") == "":
		return issue("MSH-11", CodeRequiredMissing, "MSH-11 (processing id) is empty")
	case m.Version() == "":
		return issue("MSH-12", CodeRequiredMissing, "MSH-12 (version id) is empty")
	case !slices.Contains(SupportedVersions, m.Version()):
		return issue("MSH-12", CodeUnsupportedVersion, fmt.Sprintf("version %q is not supported (supported: %s)", m.Version(), strings.Join(SupportedVersions, ", ")))
	}
	return nil
}

// ParseTime reads an HL7 date/time (DTM, or TS's first component):
// YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. A value without an offset
// is read in loc (the sender's local time, which the adapter's configuration
// knows); nil loc means UTC.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	v := s
	zone := ""
	if i := strings.IndexAny(v, "+-"); i >= 0 {
		v, zone = v[:i], v[i:]
	}
	frac := ""
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v, frac = v[:i], v[i+1:]
		if len(v) != 14 || frac == "" || len(frac) > 4 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("hl7v2: time %q: fractions of a second need all of YYYYMMDDHHMMSS and 1 to 4 digits", s)
		}
	}
	layouts := map[int]string{4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(v)]
	if !ok || strings.Trim(v, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("hl7v2: time %q is not YYYY[MM[DD[HH[MM[SS]]]]] with an optional offset", s)
	}
	if zone != "" {
		if len(zone) != 5 || strings.Trim(zone[1:], "0123456789") != "" {
			return time.Time{}, fmt.Errorf("hl7v2: time %q: the offset must be +HHMM or -HHMM", s)
		}
		layout += "-0700"
		v += zone
	}
	var t time.Time
	var err error
	if zone != "" {
		t, err = time.Parse(layout, v)
	} else {
		t, err = time.ParseInLocation(layout, v, loc)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("hl7v2: time %q: %v", s, err)
	}
	if frac != "" {
		for len(frac) < 9 {
			frac += "0"
		}
		var ns int
		fmt.Sscanf(frac, "%d", &ns)
		t = t.Add(time.Duration(ns))
	}
	return t, nil
}

// Time reads the date/time at path with ParseTime; an empty value gives the
// zero time and no error.
func (m *Message) Time(path string, loc *time.Location) (time.Time, error) {
	v := m.Get(path)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := ParseTime(v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// FormatTime writes t as an HL7 date/time to the second with its offset,
// such as 20261206151400+0000.
func FormatTime(t time.Time) string { return t.Format("20060102150405-0700") }
