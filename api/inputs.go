package api

// Checks every client input passes before it is parsed further or reaches
// the store: the size of a search, the encoding of a body and its content
// type. Each refusal is a 4xx, so that no input, however large or
// malformed, ends in a 5xx or corrupts what other clients are served.

import (
	"fmt"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

// Limits on one search (GET or POST _search, at type or system level, in a
// Bundle entry or a condition) and on an operation's query parameters.
const (
	// MaxSearchValues is how many values one parameter may carry: its
	// comma-separated values over all its repetitions.
	MaxSearchValues = 100
	// MaxSearchParams is how many parameters (name=value pairs, each
	// repetition counted) one search may carry.
	MaxSearchParams = 200
)

// checkSearchSize refuses a search (or an operation's query) with more than MaxSearchValues values
// for one parameter or more than MaxSearchParams parameters in all, and
// one whose names or values are not valid UTF-8 once decoded.
func checkSearchSize(params url.Values) error {
	var issues []fhir.Issue
	total := 0
	for _, name := range slices.Sorted(maps.Keys(params)) {
		vs := params[name]
		total += len(vs)
		n := 0
		for _, v := range vs {
			n += countValues(v)
			if !utf8.ValidString(v) {
				issues = append(issues, fhir.Issue{Code: "invalid", Details: "INVALID_ENCODING", Expression: []string{safeName(name)},
					Diagnostics: fmt.Sprintf("a value of parameter %s is not valid UTF-8", safeName(name))})
			}
		}
		if !utf8.ValidString(name) {
			issues = append(issues, fhir.Issue{Code: "invalid", Details: "INVALID_ENCODING",
				Diagnostics: fmt.Sprintf("the parameter name %q is not valid UTF-8", name)})
		}
		if n > MaxSearchValues {
			issues = append(issues, fhir.Issue{Code: "too-costly", Details: "TOO_MANY_SEARCH_VALUES", Expression: []string{safeName(name)},
				Diagnostics: fmt.Sprintf("parameter %s has %d values; a parameter may carry at most %d (comma-separated and repeated values together)", safeName(name), n, MaxSearchValues)})
		}
	}
	if total > MaxSearchParams {
		issues = append(issues, fhir.Issue{Code: "too-costly", Details: "TOO_MANY_SEARCH_PARAMETERS",
			Diagnostics: fmt.Sprintf("the request has %d parameters; at most %d are allowed", total, MaxSearchParams)})
	}
	if len(issues) > 0 {
		return &fhir.Error{Kind: fhir.Invalid, Op: "search", Issues: issues}
	}
	return nil
}

// safeName is a parameter name fit to quote in an issue: valid UTF-8 and
// not overlong.
func safeName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	if len(name) > 100 {
		name = name[:100] + "…"
	}
	return name
}

// countValues counts the comma-separated values of one parameter value; a
// comma escaped as \, separates nothing.
func countValues(v string) int {
	n := 1
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++ // the escaped character
		case ',':
			n++
		}
	}
	return n
}

// checkUTF8 refuses a body that is not valid UTF-8: FHIR JSON is UTF-8, and
// a resource stored with other bytes would make every response that
// carries it (another client's search Bundle) invalid JSON.
func checkUTF8(body []byte, what string) error {
	if utf8.Valid(body) {
		return nil
	}
	at := 0
	for at < len(body) {
		r, size := utf8.DecodeRune(body[at:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		at += size
	}
	return fhir.Errorf(fhir.Invalid, "structure", "", "%s is not valid UTF-8 (an invalid byte at offset %d): send UTF-8 JSON", what, at).WithDetails("INVALID_ENCODING")
}

// checkBodyType requires a body to carry a Content-Type of one of the
// types accept allows: a body without one is refused like a wrong one,
// 415. An empty body needs no type.
func checkBodyType(c *gin.Context, body []byte, want string, accept func(mt string) bool) error {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		if len(body) == 0 {
			return nil
		}
		return fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "", "the request has a body but no Content-Type: send %s", want).WithDetails("UNSUPPORTED_MEDIA_TYPE")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !accept(mt) {
		return fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "", "content type %q is not accepted: send %s", ct, want).WithDetails("UNSUPPORTED_MEDIA_TYPE")
	}
	return nil
}
