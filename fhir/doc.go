// Package fhir holds Signpost's storage-agnostic FHIR semantics: the resource
// envelope that keeps a client's JSON byte-for-byte apart from the elements the
// server owns, the registry of served resource types, and the error type that
// every layer returns and the API renders as an OperationOutcome.
//
// Sub-packages add validation (fhir/validation) and search (fhir/search); the
// domain packages (booking, directory, referral) build on them.
package fhir
