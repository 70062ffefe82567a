package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
)

// A Path names a place in a message the way HL7 writes it, every number
// 1-based: "PID-3" (field 3 of the first PID), "PID-3[2].1" (component 1 of
// the second repetition), "PID-5.1.1" (subcomponent 1 of component 1),
// "MSH-9.2", "AIS[2]-4" (field 4 of the second AIS). MSH fields are numbered
// as the standard numbers them: MSH-1 is the field separator, MSH-2 the
// encoding characters, MSH-3 the sending application.
//
// A zero Rep, Comp or Sub means "not given": reading takes the first, writing
// replaces everything below the level the path names.
type Path struct {
	Segment string
	SegRep  int // which occurrence of the segment, 1 when not given
	Field   int
	Rep     int
	Comp    int
	Sub     int
}

// maxIndex bounds every number in a path, so a path cannot make Set
// allocate without limit.
const maxIndex = 9999

// ParsePath reads a path such as "PID-3[2].1".
func ParsePath(s string) (Path, error) {
	bad := func(why string) (Path, error) {
		return Path{}, fmt.Errorf("hl7v2: path %q: %s", s, why)
	}
	seg, rest, ok := strings.Cut(s, "-")
	if !ok {
		return bad("no field number (want SEG-n)")
	}
	p := Path{SegRep: 1}
	if name, occ, ok := strings.Cut(seg, "["); ok {
		n, err := bracket(occ)
		if err != nil {
			return bad("segment occurrence: " + err.Error())
		}
		seg, p.SegRep = name, n
	}
	if len(seg) != 3 || !isSegmentName([]byte(seg)) {
		return bad("segment name must be three upper-case letters or digits")
	}
	p.Segment = seg
	parts := strings.Split(rest, ".")
	if len(parts) > 3 {
		return bad("more levels than field.component.subcomponent")
	}
	field := parts[0]
	if f, rep, ok := strings.Cut(field, "["); ok {
		n, err := bracket(rep)
		if err != nil {
			return bad("repetition: " + err.Error())
		}
		field, p.Rep = f, n
	}
	var err error
	if p.Field, err = index(field); err != nil {
		return bad("field: " + err.Error())
	}
	if len(parts) > 1 {
		if p.Comp, err = index(parts[1]); err != nil {
			return bad("component: " + err.Error())
		}
	}
	if len(parts) > 2 {
		if p.Sub, err = index(parts[2]); err != nil {
			return bad("subcomponent: " + err.Error())
		}
	}
	if p.Segment == "MSH" && p.Field <= 2 && (p.Rep > 1 || p.Comp > 1 || p.Sub > 1) {
		return bad("MSH-1 and MSH-2 have no repetitions or components")
	}
	return p, nil
}

// bracket reads "n]" (what follows a "[").
func bracket(s string) (int, error) {
	n, ok := strings.CutSuffix(s, "]")
	if !ok {
		return 0, fmt.Errorf("missing ]")
	}
	return index(n)
}

// index reads one 1-based number.
func index(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxIndex || s[0] == '+' {
		return 0, fmt.Errorf("%q is not a number from 1 to %d", s, maxIndex)
	}
	return n, nil
}

// String writes the path back in the form ParsePath reads.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Segment)
	if p.SegRep > 1 {
		fmt.Fprintf(&b, "[%d]", p.SegRep)
	}
	fmt.Fprintf(&b, "-%d", p.Field)
	if p.Rep > 0 {
		fmt.Fprintf(&b, "[%d]", p.Rep)
	}
	if p.Comp > 0 {
		fmt.Fprintf(&b, ".%d", p.Comp)
	}
	if p.Sub > 0 {
		fmt.Fprintf(&b, ".%d", p.Sub)
	}
	return b.String()
}

// Get returns the value at path, unescaped, or "" when the message has
// nothing there or the path is malformed (ParsePath reports why). A path
// that stops above the subcomponent reads the first value below it, so
// "PID-5" reads the family name, as a field is read when it is expected to
// be simple. MSH-1 and MSH-2 read the separators as declared.
func (m *Message) Get(path string) string {
	p, err := ParsePath(path)
	if err != nil {
		return ""
	}
	return m.GetPath(p)
}

// GetPath is Get with a parsed path.
func (m *Message) GetPath(p Path) string {
	s := m.Segment(p.Segment, p.SegRep)
	if s == nil {
		return ""
	}
	return s.get(p, m.Delimiters)
}

// Get reads a path such as "AIS-4" in this segment (the path's segment name
// must be this segment's), unescaped with d; see Message.Get.
func (s *Segment) Get(path string, d Delimiters) string {
	p, err := ParsePath(path)
	if err != nil || p.Segment != s.Name || p.SegRep != 1 {
		return ""
	}
	return s.get(p, d)
}

// get reads p (whose segment is s).
func (s *Segment) get(p Path, d Delimiters) string {
	raw, ok := s.leaf(p)
	if !ok {
		return ""
	}
	if s.Name == "MSH" && p.Field <= 2 {
		return raw
	}
	return d.Unescape(raw)
}

// leaf returns the wire text at p (first repetition, component and
// subcomponent where p gives none).
func (s *Segment) leaf(p Path) (string, bool) {
	if p.Field > len(s.Fields) {
		return "", false
	}
	f := s.Fields[p.Field-1]
	r := max(p.Rep, 1)
	if r > len(f) {
		return "", false
	}
	rep := f[r-1]
	c := max(p.Comp, 1)
	if c > len(rep) {
		return "", false
	}
	comp := rep[c-1]
	sub := max(p.Sub, 1)
	if sub > len(comp) {
		return "", false
	}
	return comp[sub-1], true
}

// Count returns how many repetitions the field at path has ("PID-3"), or
// how many times a segment occurs when path is just its name ("AIS").
func (m *Message) Count(path string) int {
	if len(path) == 3 {
		return len(m.All(path))
	}
	p, err := ParsePath(path)
	if err != nil {
		return 0
	}
	s := m.Segment(p.Segment, p.SegRep)
	if s == nil || p.Field > len(s.Fields) {
		return 0
	}
	return len(s.Fields[p.Field-1])
}

// Raw returns the wire text (escaped, with its separators) at the level
// path names: a whole field with its repetitions for "PID-3", one
// repetition for "PID-3[2]", one component for "PID-3[2].4".
func (m *Message) Raw(path string) string {
	p, err := ParsePath(path)
	if err != nil {
		return ""
	}
	s := m.Segment(p.Segment, p.SegRep)
	if s == nil || p.Field > len(s.Fields) {
		return ""
	}
	d := m.Delimiters
	f := s.Fields[p.Field-1]
	if p.Rep == 0 && p.Comp == 0 {
		return f.raw(d)
	}
	r := max(p.Rep, 1)
	if r > len(f) {
		return ""
	}
	rep := f[r-1]
	if p.Comp == 0 {
		return rep.raw(d)
	}
	if p.Comp > len(rep) {
		return ""
	}
	comp := rep[p.Comp-1]
	if p.Sub == 0 {
		return strings.Join(comp, char(d.Subcomponent))
	}
	if p.Sub > len(comp) {
		return ""
	}
	return comp[p.Sub-1]
}

// Set writes value (escaped as needed) at path, creating the segment,
// repetition, component and subcomponent if missing; a new segment goes at
// the end of the message. A path that stops above the subcomponent replaces
// everything below it: Set("PID-5", "SMITH") leaves PID-5 holding SMITH
// alone. MSH-1 and MSH-2 cannot be set: the delimiters are the message's.
func (m *Message) Set(path, value string) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	return m.SetPath(p, value)
}

// SetPath is Set with a parsed path.
func (m *Message) SetPath(p Path, value string) error {
	if p.Segment == "MSH" && p.Field <= 2 {
		return fmt.Errorf("hl7v2: %s cannot be set (the delimiters are fixed when the message is made)", p)
	}
	s := m.Segment(p.Segment, p.SegRep)
	if s == nil {
		if have := len(m.All(p.Segment)); p.SegRep != have+1 {
			return fmt.Errorf("hl7v2: %s: the message has %d %s segment(s), so occurrence %d cannot be added", p, have, p.Segment, p.SegRep)
		}
		s = m.AddSegment(p.Segment)
	}
	s.set(p, m.Delimiters.EscapeText(value))
	return nil
}

// set writes the wire text raw at p, growing the segment as needed.
func (s *Segment) set(p Path, raw string) {
	for len(s.Fields) < p.Field {
		s.Fields = append(s.Fields, nil)
	}
	f := &s.Fields[p.Field-1]
	r := max(p.Rep, 1)
	if p.Rep == 0 && p.Comp == 0 { // the whole field
		*f = nil
		if raw != "" {
			*f = Field{{{raw}}}
		}
		return
	}
	for len(*f) < r {
		*f = append(*f, Repetition{{""}})
	}
	rep := &(*f)[r-1]
	if p.Comp == 0 {
		*rep = Repetition{{raw}}
		return
	}
	for len(*rep) < p.Comp {
		*rep = append(*rep, Component{""})
	}
	comp := &(*rep)[p.Comp-1]
	if p.Sub == 0 {
		*comp = Component{raw}
		return
	}
	for len(*comp) < p.Sub {
		*comp = append(*comp, "")
	}
	(*comp)[p.Sub-1] = raw
}
