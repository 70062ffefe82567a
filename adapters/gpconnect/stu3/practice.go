package stu3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Practice maps one GP practice's payloads. Its zero value is not usable:
// ODS is required.
//
// Ids and references. A practice resource Type/id becomes Signpost's
// Type/ID(ODS, id) and back (PracticeID); Refs names the exceptions, R4
// reference → STU3 reference, used both ways (the Signpost Patient a
// practice's Patient is, found by NHS number). A Signpost Appointment
// keeps its own id: the practice's is the AppointmentSystem identifier.
//
// What a round trip STU3 → R4 → STU3 does not keep, and why:
//   - meta (versionId, lastUpdated): the practice's version of the
//     resource, not Signpost's; Signpost stamps its own. STU3 output
//     declares the GP Connect profile again.
//   - the booking organisation: R4 keeps it as a logical reference (its
//     ODS code and name: samply's R4 Appointment has no contained
//     resources), so its type and telephone number are lost; the adapter
//     supplies its own organisation (AppointmentOptions.BookingOrganization)
//     when it books, which is what GP Connect asks for.
//   - Location.telecom, Organization.telecom and Organization.address
//     given as one object (as in GP Connect's published examples) come
//     back as an array of one, as STU3 defines them.
//   - a Schedule's HealthcareService actors (GP Connect 1.2.3 and later):
//     the Signpost services of Practice.Services take their place.
//
// R4 → STU3 also drops what GP Connect has no place for: extensions other
// than NHS ones (https://fhir.nhs.uk/, https://fhir.hl7.org.uk/),
// identifiers of Signpost's own systems, references to resources the
// practice does not know (a referral in basedOn, a HealthcareService
// participant), R4-only elements (Appointment.patientInstruction), all
// but the first of R4's lists where STU3 holds one (serviceCategory,
// Location.type); and it refuses what GP Connect cannot carry (statuses
// STU3 lacks such as checked-in or waitlist, a slot or patient the
// practice does not know).
type Practice struct {
	// ODS is the practice's ODS code: it qualifies ids and identifiers.
	ODS string
	// Services are the Signpost HealthcareServices ("HealthcareService/x")
	// the practice's Schedules stand for: added to each R4 Schedule's
	// actors, dropped going back.
	Services []string
	// Refs maps R4 references to the practice's STU3 references for
	// resources ID does not name, such as the Signpost Patient who is the
	// practice's Patient/2: {"Patient/p1": "Patient/2"}.
	Refs map[string]string
}

// errs collects the problems of one mapping, each with its element path,
// so a payload's problems are reported all at once.
type errs []error

func (e *errs) add(path string, err error) {
	if err != nil {
		*e = append(*e, fmt.Errorf("%s: %w", path, err))
	}
}

func (e *errs) addf(path, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
}

func (e errs) err() error { return errors.Join(e...) }

// strictConvert is convert refusing members the target type lacks, so
// nothing is dropped silently (an extension value type STU3's Extension
// does not hold, say).
func strictConvert[T any](from any) (T, error) {
	var to T
	b, err := json.Marshal(from)
	if err != nil {
		return to, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	err = d.Decode(&to)
	return to, err
}

// conv converts a datatype, recording a failure at path.
func conv[T any](e *errs, path string, from any) T {
	v, err := strictConvert[T](from)
	e.add(path, err)
	return v
}

// opt is a pointer to s, or nil for "".
func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// str is *p or "".
func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// ref4 rewrites a practice's reference into Signpost's id space.
func (p Practice) ref4(ref string) (string, error) {
	if ref == "" || strings.HasPrefix(ref, "#") {
		return ref, nil
	}
	for k, v := range p.Refs {
		if v == ref {
			return k, nil
		}
	}
	typ, id, ok := strings.Cut(ref, "/")
	if !ok || strings.Contains(typ, ":") {
		return ref, nil // absolute: kept as it is
	}
	id, _, _ = strings.Cut(id, "/_history/")
	sid, err := ID(p.ODS, id)
	if err != nil {
		return "", err
	}
	return typ + "/" + sid, nil
}

// ref3 rewrites a Signpost reference into the practice's id space; false
// when the practice does not know the resource.
func (p Practice) ref3(ref string) (string, bool) {
	if strings.HasPrefix(ref, "#") {
		return ref, true
	}
	if v, ok := p.Refs[ref]; ok {
		return v, true
	}
	typ, id, ok := strings.Cut(ref, "/")
	if !ok {
		return "", false
	}
	id, _, _ = strings.Cut(id, "/_history/")
	if pid, ok := PracticeID(p.ODS, id); ok {
		return typ + "/" + pid, true
	}
	return "", false
}

// reference4 maps a reference to R4, rewriting its literal part.
func (p Practice) reference4(e *errs, path string, r *Reference) *r4.Reference {
	if r == nil {
		return nil
	}
	out := conv[r4.Reference](e, path, r)
	ref, err := p.ref4(r.Reference)
	e.add(path, err)
	out.Reference = opt(ref)
	return &out
}

// references4 maps a list of references to R4.
func (p Practice) references4(e *errs, path string, rs []Reference) []r4.Reference {
	var out []r4.Reference
	for i := range rs {
		out = append(out, *p.reference4(e, fmt.Sprintf("%s[%d]", path, i), &rs[i]))
	}
	return out
}

// reference3 maps a reference to STU3; nil when the practice does not
// know what it names (a logical reference without a literal part is
// kept).
func (p Practice) reference3(e *errs, path string, r *r4.Reference) *Reference {
	if r == nil {
		return nil
	}
	out := conv[Reference](e, path, struct {
		Identifier *r4.Identifier `json:"identifier,omitempty"`
		Display    *string        `json:"display,omitempty"`
	}{r.Identifier, r.Display})
	if ref := str(r.Reference); ref != "" {
		s, ok := p.ref3(ref)
		if !ok {
			return nil
		}
		out.Reference = s
	}
	return &out
}

// references3 maps the references the practice knows, dropping others.
func (p Practice) references3(e *errs, path string, rs []r4.Reference) []Reference {
	var out []Reference
	for i := range rs {
		if r := p.reference3(e, fmt.Sprintf("%s[%d]", path, i), &rs[i]); r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// extensions4 maps extensions to R4, rewriting the references among
// their values.
func (p Practice) extensions4(e *errs, path string, exts []Extension) []r4.Extension {
	out := conv[[]r4.Extension](e, path, exts)
	p.rewrite4(e, path, out)
	return out
}

func (p Practice) rewrite4(e *errs, path string, exts []r4.Extension) {
	for i := range exts {
		if r := exts[i].ValueReference; r != nil && r.Reference != nil {
			ref, err := p.ref4(*r.Reference)
			e.add(fmt.Sprintf("%s[%d].valueReference", path, i), err)
			r.Reference = opt(ref)
		}
		p.rewrite4(e, path, exts[i].Extension)
	}
}

// nhsExtension reports whether an extension is one GP Connect or Care
// Connect defines, the only ones R4 → STU3 carries.
func nhsExtension(url string) bool {
	return strings.HasPrefix(url, "https://fhir.nhs.uk/") || strings.HasPrefix(url, "https://fhir.hl7.org.uk/")
}

// extensions3 maps the NHS extensions of exts to STU3 (except those in
// skip, which the caller maps itself), rewriting references; one whose
// reference the practice does not know is dropped.
func (p Practice) extensions3(e *errs, path string, exts []r4.Extension, skip ...string) []Extension {
	var out []Extension
next:
	for i, x := range exts {
		if !nhsExtension(x.Url) {
			continue
		}
		for _, s := range skip {
			if x.Url == s {
				continue next
			}
		}
		at := fmt.Sprintf("%s[%d]", path, i)
		y := conv[Extension](e, at, x)
		if !p.rewrite3(e, at, &y) {
			continue
		}
		out = append(out, y)
	}
	return out
}

func (p Practice) rewrite3(e *errs, path string, x *Extension) bool {
	if r := x.ValueReference; r != nil && r.Reference != "" {
		s, ok := p.ref3(r.Reference)
		if !ok {
			return false
		}
		r.Reference = s
	}
	keep := x.Extension[:0]
	for i := range x.Extension {
		if p.rewrite3(e, path, &x.Extension[i]) {
			keep = append(keep, x.Extension[i])
		}
	}
	x.Extension = keep
	if len(x.Extension) == 0 {
		x.Extension = nil
	}
	return true
}

// identifiers4 maps identifiers to R4, adding system|Qualify(ODS, id)
// when system is set.
func (p Practice) identifiers4(e *errs, path string, ids []Identifier, system, id string) []r4.Identifier {
	out := conv[[]r4.Identifier](e, path, ids)
	if system != "" && id != "" {
		out = append(out, r4.Identifier{System: opt(system), Value: opt(Qualify(p.ODS, id))})
	}
	return out
}

// identifiers3 maps identifiers to STU3, leaving out Signpost's own
// (https://signpost.example/ systems, SlotSystem and AppointmentSystem
// among them: the practice's id becomes the STU3 id).
func (p Practice) identifiers3(e *errs, path string, ids []r4.Identifier) []Identifier {
	var keep []r4.Identifier
	for _, id := range ids {
		if !strings.HasPrefix(str(id.System), "https://signpost.example/") {
			keep = append(keep, id)
		}
	}
	return conv[[]Identifier](e, path, keep)
}

// practiceIDFrom is the practice's id in a Signpost resource: from its
// system identifier of this practice, or its Signpost id.
func (p Practice) practiceIDFrom(ids []r4.Identifier, system string, id *string) string {
	for _, x := range ids {
		if str(x.System) == system {
			if ods, pid, ok := Unqualify(str(x.Value)); ok && ods == p.ODS {
				return pid
			}
		}
	}
	if id != nil {
		if pid, ok := PracticeID(p.ODS, *id); ok {
			return pid
		}
	}
	return ""
}

// concept4 maps an STU3 0..1 CodeableConcept to R4's 0..*.
func concept4(e *errs, path string, c *CodeableConcept) []r4.CodeableConcept {
	if c == nil {
		return nil
	}
	return []r4.CodeableConcept{conv[r4.CodeableConcept](e, path, c)}
}

// concept3 maps R4's 0..* to STU3's 0..1: the first.
func concept3(e *errs, path string, cs []r4.CodeableConcept) *CodeableConcept {
	if len(cs) == 0 {
		return nil
	}
	c := conv[CodeableConcept](e, path, cs[0])
	return &c
}

// code4 decodes a code into one of samply's code types (which refuse
// codes outside their value set); missing when required.
func code4[T any](e *errs, path, code string, required bool) *T {
	if code == "" {
		if required {
			e.addf(path, "missing")
		}
		return nil
	}
	var v T
	b, _ := json.Marshal(code)
	if err := json.Unmarshal(b, &v); err != nil {
		e.addf(path, "%q is not a valid code", code)
		return nil
	}
	return &v
}

// coder is one of samply's code types.
type coder interface{ Code() string }

// code3 is the code of a samply code type, or "".
func code3[T coder](c *T) string {
	if c == nil {
		return ""
	}
	return (*c).Code()
}

// required records a missing required element.
func required(e *errs, path, v string) string {
	if v == "" {
		e.addf(path, "missing")
	}
	return v
}

// meta3 is the meta of an STU3 resource: its GP Connect profile.
func meta3(profile string) *Meta { return &Meta{Profile: []string{profile}} }

// checkType refuses a resource of another type.
func checkType(e *errs, got, want string) {
	if got != "" && got != want {
		e.addf(want, "resourceType is %q", got)
	}
}
