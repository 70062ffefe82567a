package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind classifies an Error; the API maps each kind to one HTTP status.
type Kind int

// The kinds of error. Their order is not significant.
const (
	Other              Kind = iota // an unexpected server-side failure (500)
	Invalid                        // the request or resource is malformed (400)
	Unprocessable                  // well formed but breaks a rule (422)
	NotFound                       // no such resource or type (404)
	Gone                           // the resource was deleted (410)
	Conflict                       // the write conflicts with current state (409)
	PreconditionFailed             // If-Match or a conditional write failed (412)
	Forbidden                      // authenticated but not allowed (403)
	Unauthorized                   // no or bad credentials (401)
	NotAcceptable                  // the requested format cannot be produced (406)
	UnsupportedMedia               // the request body's format is not accepted (415)
	TooLarge                       // the request body exceeds the limit (413)
	TooManyRequests                // rate limited (429)
	NotSupported                   // the interaction is not supported (405)
	BadGateway                     // another system the request depends on refused it (502)
	GatewayTimeout                 // another system the request depends on did not answer in time (504)
	Unavailable                    // the server cannot do it now (its database unreachable, its disk full): retry later (503)
)

var kindNames = [...]string{"other", "invalid", "unprocessable", "not found", "gone", "conflict",
	"precondition failed", "forbidden", "unauthorized", "not acceptable", "unsupported media type",
	"too large", "too many requests", "not supported", "bad gateway", "gateway timeout", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ErrorSystem is the code system of Signpost's own error codes, carried in
// OperationOutcome.issue.details.
const ErrorSystem = "https://signpost.example/fhir/CodeSystem/error"

// Issue is one problem, as it appears in an OperationOutcome.
type Issue struct {
	Severity    string   // fatal | error | warning | information; "" means error
	Code        string   // the IssueType code, e.g. "invalid", "conflict", "not-found"
	Details     string   // optional code from ErrorSystem, e.g. "SLOT_NOT_AVAILABLE"
	Diagnostics string   // human-readable explanation
	Expression  []string // FHIRPath locations of the problem, e.g. "Slot.start"
}

// Error is the error every Signpost layer returns for a problem a client can
// act on. Op names the operation (e.g. "create Slot"); Issues lists every
// problem found, each with its location.
type Error struct {
	Kind   Kind
	Op     string
	Issues []Issue
	Err    error // an underlying cause, if any; never shown to clients
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(is.Expression) > 0 && !strings.HasPrefix(is.Diagnostics, is.Expression[0]) {
			b.WriteString(strings.Join(is.Expression, ","))
			b.WriteString(": ")
		}
		b.WriteString(is.Diagnostics)
	}
	if len(e.Issues) == 0 {
		b.WriteString(e.Kind.String())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same kind, so that
// errors.Is(err, fhir.ErrNotFound) works for any not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && len(t.Issues) == 0 && t.Kind == e.Kind
}

// Sentinels for errors.Is checks.
var (
	ErrNotFound           = &Error{Kind: NotFound}
	ErrGone               = &Error{Kind: Gone}
	ErrConflict           = &Error{Kind: Conflict}
	ErrPreconditionFailed = &Error{Kind: PreconditionFailed}
	ErrInvalid            = &Error{Kind: Invalid}
)

// Errorf returns an Error of the given kind with one issue. code is the FHIR
// IssueType; expr, if not empty, is the location.
func Errorf(kind Kind, code, expr, format string, args ...any) *Error {
	is := Issue{Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return &Error{Kind: kind, Issues: []Issue{is}}
}

// WithDetails sets a Signpost error code on every issue of e and returns e.
func (e *Error) WithDetails(code string) *Error {
	for i := range e.Issues {
		e.Issues[i].Details = code
	}
	return e
}

// KindOf returns the kind of err: the Kind of the first *Error in its chain,
// or Other.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Other
}

// AsError returns err as an *Error, wrapping a foreign error as an internal
// one whose details are never shown to clients.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Other, Issues: []Issue{{Code: "exception", Diagnostics: "internal server error"}}, Err: err}
}

// MaxIssues is how many issues an OperationOutcome lists; one more issue
// then counts the rest, so that an error answer stays small (under
// MaxOutcomeBytes) however many problems a request has.
const MaxIssues = 100

// MaxOutcomeBytes bounds an OperationOutcome's encoding. Issues whose texts
// are long (a diagnostics quoting a huge value) are shortened, and when
// that is not enough fewer are listed, to keep within it.
const MaxOutcomeBytes = 64 << 10

// OperationOutcome renders issues as an OperationOutcome resource: the
// first MaxIssues of them, then one informational issue (details
// MORE_ISSUES) counting those not listed.
func OperationOutcome(issues ...Issue) []byte {
	shown := issues
	if len(shown) > MaxIssues {
		shown = shown[:MaxIssues]
	}
	// Generous limits first; tight ones, and then fewer issues, only when
	// the outcome would not fit.
	b := encodeOutcome(shown, len(issues)-len(shown), 2048, 16)
	if len(b) <= MaxOutcomeBytes {
		return b
	}
	for {
		b = encodeOutcome(shown, len(issues)-len(shown), 200, 2)
		if len(b) <= MaxOutcomeBytes || len(shown) <= 1 {
			return b
		}
		shown = shown[:len(shown)/2]
	}
}

// encodeOutcome encodes shown, each text cut to textMax bytes and each
// issue's expressions to exprMax, followed by an issue counting omitted.
func encodeOutcome(shown []Issue, omitted, textMax, exprMax int) []byte {
	type coding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	type concept struct {
		Coding []coding `json:"coding"`
	}
	type issue struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Details     *concept `json:"details,omitempty"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, is := range shown {
		o := issue{Severity: is.Severity, Code: is.Code, Diagnostics: cutText(is.Diagnostics, textMax)}
		if o.Severity == "" {
			o.Severity = "error"
		}
		if o.Code == "" {
			o.Code = "processing"
		}
		if is.Details != "" {
			o.Details = &concept{Coding: []coding{{System: ErrorSystem, Code: cutText(is.Details, 64)}}}
		}
		for i, x := range is.Expression {
			if i == exprMax {
				break
			}
			o.Expression = append(o.Expression, cutText(x, textMax/2))
		}
		out.Issue = append(out.Issue, o)
	}
	if omitted > 0 {
		out.Issue = append(out.Issue, issue{Severity: "information", Code: "informational",
			Details:     &concept{Coding: []coding{{System: ErrorSystem, Code: "MORE_ISSUES"}}},
			Diagnostics: fmt.Sprintf("%d more issues are not listed: an OperationOutcome lists at most %d", omitted, len(shown))})
	}
	if len(out.Issue) == 0 {
		out.Issue = []issue{{Severity: "information", Code: "informational", Diagnostics: "all OK"}}
	}
	b, _ := json.Marshal(out)
	return b
}

// cutText shortens s to at most max bytes, on a character boundary, marking
// the cut with "…".
func cutText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
