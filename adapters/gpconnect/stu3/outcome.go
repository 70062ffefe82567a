package stu3

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// The system of GP Connect's error codes (issue.details.coding.system of
// a GPConnect-OperationOutcome-1), and the CodeSystem form later NHS
// specifications use, which ParseError also reads.
const (
	ErrorSystem     = "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1"
	ErrorCodeSystem = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
)

// GP Connect's error codes (Spine error or warning codes) used by
// Appointment Management.
const (
	CodeBadRequest             = "BAD_REQUEST"
	CodeInvalidResource        = "INVALID_RESOURCE"
	CodeInvalidParameter       = "INVALID_PARAMETER"
	CodeReferenceNotFound      = "REFERENCE_NOT_FOUND"
	CodeInvalidIdentifierSys   = "INVALID_IDENTIFIER_SYSTEM"
	CodeInvalidIdentifierValue = "INVALID_IDENTIFIER_VALUE"
	CodeInvalidNHSNumber       = "INVALID_NHS_NUMBER"
	CodeNoRecordFound          = "NO_RECORD_FOUND"
	CodePatientNotFound        = "PATIENT_NOT_FOUND"
	CodeDuplicateRejected      = "DUPLICATE_REJECTED"
	CodeConflict               = "FHIR_CONSTRAINT_VIOLATION"
	CodeAccessDenied           = "ACCESS_DENIED"
	CodeNoPatientConsent       = "NO_PATIENT_CONSENT"
	CodeNotImplemented         = "NOT_IMPLEMENTED"
	CodeInternalServerError    = "INTERNAL_SERVER_ERROR"
)

// errorCodes is each code's HTTP status, FHIR issue type and display, as
// GP Connect's error handling guidance gives them.
var errorCodes = map[string]struct {
	status  int
	issue   string
	display string
}{
	CodeBadRequest:             {400, "invalid", "Bad request"},
	CodeInvalidNHSNumber:       {400, "value", "Invalid NHS number"},
	CodeInvalidResource:        {422, "invalid", "Invalid validation of resource"},
	CodeInvalidParameter:       {422, "invalid", "Invalid parameter"},
	CodeReferenceNotFound:      {422, "invalid", "Reference not found"},
	CodeInvalidIdentifierSys:   {422, "value", "Invalid identifier system"},
	CodeInvalidIdentifierValue: {422, "value", "Invalid identifier value"},
	CodeNoRecordFound:          {404, "not-found", "No record found"},
	CodePatientNotFound:        {404, "not-found", "Patient not found"},
	CodeDuplicateRejected:      {409, "duplicate", "Create would lead to creation of a duplicate resource"},
	CodeConflict:               {409, "conflict", "FHIR constraint violated"},
	CodeAccessDenied:           {403, "forbidden", "Access denied"},
	CodeNoPatientConsent:       {403, "forbidden", "Patient has not provided consent to share data"},
	CodeNotImplemented:         {501, "not-supported", "Not implemented"},
	CodeInternalServerError:    {500, "processing", "Internal server error"},
}

// StatusOf is the HTTP status GP Connect gives with code (500 for a code
// it does not list).
func StatusOf(code string) int {
	if c, ok := errorCodes[code]; ok {
		return c.status
	}
	return http.StatusInternalServerError
}

// OperationOutcome is a GPConnect-OperationOutcome-1.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Meta         *Meta   `json:"meta,omitempty"`
	Issue        []Issue `json:"issue"`
}

// Issue is an issue of an OperationOutcome.
type Issue struct {
	Severity    string           `json:"severity"`
	Code        string           `json:"code"`
	Details     *CodeableConcept `json:"details,omitempty"`
	Diagnostics string           `json:"diagnostics,omitempty"`
	Expression  []string         `json:"expression,omitempty"`
}

// NewOutcome is the OperationOutcome GP Connect answers with for code,
// with diagnostics saying what was wrong.
func NewOutcome(code, diagnostics string) *OperationOutcome {
	c, ok := errorCodes[code]
	if !ok {
		c.issue, c.display = "processing", code
	}
	return &OperationOutcome{
		ResourceType: "OperationOutcome",
		Meta:         meta3(ProfileOperationOutcome),
		Issue: []Issue{{
			Severity:    "error",
			Code:        c.issue,
			Details:     &CodeableConcept{Coding: []Coding{{System: ErrorSystem, Code: code, Display: c.display}}},
			Diagnostics: diagnostics,
		}},
	}
}

// Error is a GP Connect provider's refusal: the HTTP status, the Spine
// error code ("" when the answer held none) and the diagnostics. errors.Is
// matches an *Error by code: errors.Is(err, &stu3.Error{Code:
// stu3.CodeDuplicateRejected}).
type Error struct {
	Status      int
	Code        string
	Diagnostics string
}

// Error describes the refusal.
func (e *Error) Error() string {
	s := fmt.Sprintf("gpconnect: HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Diagnostics != "" {
		s += ": " + e.Diagnostics
	}
	return s
}

// Is reports whether target is an *Error with the same code (or, for a
// target without a code, the same status).
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	if t.Code != "" {
		return t.Code == e.Code
	}
	return t.Status == e.Status
}

// ParseError reads a provider's error answer: status and body. A body that
// is no OperationOutcome (a proxy's HTML page, say) still gives an Error
// with the status and the start of the body as diagnostics.
func ParseError(status int, body []byte) *Error {
	out := &Error{Status: status}
	var oo OperationOutcome
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		d := string(body)
		if len(d) > 200 {
			d = d[:200]
		}
		out.Diagnostics = d
		return out
	}
	for _, is := range oo.Issue {
		if is.Details != nil {
			for _, c := range is.Details.Coding {
				if (c.System == ErrorSystem || c.System == ErrorCodeSystem) && out.Code == "" {
					out.Code = c.Code
				}
			}
		}
		if out.Diagnostics == "" {
			out.Diagnostics = is.Diagnostics
		}
	}
	return out
}
