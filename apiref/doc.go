// Package apiref is Signpost's API reference: an OpenAPI 3.0 document
// generated from what the server itself publishes (its CapabilityStatement,
// the OperationDefinitions it names and the StructureDefinitions of its
// resource types), served at /api/openapi.json, and an interactive page at
// /api/ (swagger-ui, vendored from the npm package swagger-ui-dist into
// ui/dist by go generate and embedded in the binary).
//
// The document is built from the CapabilityStatement the running server
// answers at /fhir/metadata, so it lists exactly the resource types,
// interactions, search parameters and operations that server offers; it is
// never a file kept by hand. Build turns the definitions into the document;
// Reference serves it with the page (Handler).
//
// The package imports nothing of Signpost's: app hands it the
// CapabilityStatement, a resolver of canonical URLs and the
// StructureDefinitions, and serves Reference.Handler as an api.Site.
package apiref

//go:generate go run ./internal/vendorui
