// Package elem reads and builds FHIR elements with samply's R4 datatypes
// (github.com/samply/golang-fhir-models), Signpost's one typed FHIR model.
// The domain packages (booking, directory, referral) read the few members
// their rules need through lean views made of these datatypes, and build
// the resources they make themselves as samply's resource types; the
// helpers here spare each of them its own copy of the pointer handling.
package elem

import r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

// Str returns *p, or "" for nil: samply's models hold optional primitive
// elements as pointers.
func Str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Opt returns a pointer to s, or nil for "": an element left out.
func Opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Ref returns a literal reference to ref ("Type/id").
func Ref(ref string) r4.Reference { return r4.Reference{Reference: Opt(ref)} }

// HasCoding reports whether c has a coding of code in system.
func HasCoding(c r4.CodeableConcept, system, code string) bool {
	for _, x := range c.Coding {
		if Str(x.System) == system && Str(x.Code) == code {
			return true
		}
	}
	return false
}

// CodeIn returns the code of c's first coding in system, or "".
func CodeIn(c r4.CodeableConcept, system string) string {
	for _, x := range c.Coding {
		if Str(x.System) == system {
			return Str(x.Code)
		}
	}
	return ""
}

// Extensions returns the extensions of exts with url, in order.
func Extensions(exts []r4.Extension, url string) []r4.Extension {
	var out []r4.Extension
	for _, e := range exts {
		if e.Url == url {
			out = append(out, e)
		}
	}
	return out
}
