package apiref

// The subset of OpenAPI 3.0.3 the reference uses, as Go types: marshalled
// with encoding/json, fields in the order the specification lists them.

// Document is an OpenAPI 3.0 document.
type Document struct {
	OpenAPI      string               `json:"openapi"`
	Info         Info                 `json:"info"`
	ExternalDocs *ExternalDocs        `json:"externalDocs,omitempty"`
	Servers      []Server             `json:"servers,omitempty"`
	Tags         []Tag                `json:"tags,omitempty"`
	Paths        map[string]*PathItem `json:"paths"`
	Components   Components           `json:"components"`
	Security     []Requirement        `json:"security,omitempty"`
}

// Info describes the API.
type Info struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version"`
}

// ExternalDocs points at documentation elsewhere.
type ExternalDocs struct {
	Description string `json:"description,omitempty"`
	URL         string `json:"url"`
}

// Server is where the API is served.
type Server struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
}

// Tag groups operations: one per resource type, plus the system level.
type Tag struct {
	Name         string        `json:"name"`
	Description  string        `json:"description,omitempty"`
	ExternalDocs *ExternalDocs `json:"externalDocs,omitempty"`
}

// PathItem holds the operations on one path.
type PathItem struct {
	Parameters []*Parameter `json:"parameters,omitempty"`
	Get        *Operation   `json:"get,omitempty"`
	Put        *Operation   `json:"put,omitempty"`
	Post       *Operation   `json:"post,omitempty"`
	Delete     *Operation   `json:"delete,omitempty"`
	Patch      *Operation   `json:"patch,omitempty"`
}

// Operation is one method on one path.
type Operation struct {
	Tags        []string             `json:"tags,omitempty"`
	Summary     string               `json:"summary,omitempty"`
	Description string               `json:"description,omitempty"`
	OperationID string               `json:"operationId"`
	Parameters  []*Parameter         `json:"parameters,omitempty"`
	RequestBody *RequestBody         `json:"requestBody,omitempty"`
	Responses   map[string]*Response `json:"responses"`
	// Security overrides the document's; a pointer to an empty list
	// says that no token is needed.
	Security *[]Requirement `json:"security,omitempty"`
	// Interaction is the FHIR interaction (read, search-type…) or the
	// operation ($find) the OpenAPI operation stands for.
	Interaction string `json:"x-fhir-interaction,omitempty"`
}

// Parameter is a path, query or header parameter, or a reference to one in
// components.
type Parameter struct {
	Ref         string  `json:"$ref,omitempty"`
	Name        string  `json:"name,omitempty"`
	In          string  `json:"in,omitempty"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Schema      *Schema `json:"schema,omitempty"`
	Example     any     `json:"example,omitempty"`
	// SearchType is the FHIR search parameter type (token, date…) of a
	// search parameter, or the FHIR data type of an operation's input.
	SearchType string `json:"x-fhir-type,omitempty"`
}

// RequestBody is what an operation takes in its body.
type RequestBody struct {
	Description string                `json:"description,omitempty"`
	Required    bool                  `json:"required,omitempty"`
	Content     map[string]*MediaType `json:"content"`
}

// Response is one answer of an operation, or a reference to one in
// components.
type Response struct {
	Ref         string                `json:"$ref,omitempty"`
	Description string                `json:"description,omitempty"`
	Headers     map[string]*Header    `json:"headers,omitempty"`
	Content     map[string]*MediaType `json:"content,omitempty"`
}

// Header is a response header.
type Header struct {
	Description string  `json:"description,omitempty"`
	Schema      *Schema `json:"schema"`
}

// MediaType is a body in one format.
type MediaType struct {
	Schema  *Schema `json:"schema,omitempty"`
	Example any     `json:"example,omitempty"`
}

// Schema is a JSON Schema (OpenAPI 3.0's dialect), or a reference.
type Schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Type                 string             `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	Description          string             `json:"description,omitempty"`
	Enum                 []string           `json:"enum,omitempty"`
	Required             []string           `json:"required,omitempty"`
	Properties           map[string]*Schema `json:"properties,omitempty"`
	Items                *Schema            `json:"items,omitempty"`
	AdditionalProperties *bool              `json:"additionalProperties,omitempty"`
	OneOf                []*Schema          `json:"oneOf,omitempty"`
	Minimum              *float64           `json:"minimum,omitempty"`
	Default              any                `json:"default,omitempty"`
	ExternalDocs         *ExternalDocs      `json:"externalDocs,omitempty"`
}

// Components holds what the paths refer to.
type Components struct {
	Schemas         map[string]*Schema         `json:"schemas"`
	Responses       map[string]*Response       `json:"responses,omitempty"`
	Parameters      map[string]*Parameter      `json:"parameters,omitempty"`
	SecuritySchemes map[string]*SecurityScheme `json:"securitySchemes,omitempty"`
}

// SecurityScheme is how a client authenticates.
type SecurityScheme struct {
	Type         string      `json:"type"`
	Description  string      `json:"description,omitempty"`
	Scheme       string      `json:"scheme,omitempty"`
	BearerFormat string      `json:"bearerFormat,omitempty"`
	Flows        *OAuthFlows `json:"flows,omitempty"`
}

// OAuthFlows are the OAuth 2 flows of a scheme.
type OAuthFlows struct {
	AuthorizationCode *OAuthFlow `json:"authorizationCode,omitempty"`
	ClientCredentials *OAuthFlow `json:"clientCredentials,omitempty"`
}

// OAuthFlow is one OAuth 2 flow with the scopes it may grant.
type OAuthFlow struct {
	AuthorizationURL string            `json:"authorizationUrl,omitempty"`
	TokenURL         string            `json:"tokenUrl"`
	Scopes           map[string]string `json:"scopes"`
}

// Requirement is one way of satisfying an operation's security: scheme
// name → scopes.
type Requirement map[string][]string
