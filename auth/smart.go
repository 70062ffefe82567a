package auth

import (
	"encoding/json"
)

// SmartEndpoints are the authorisation server's facts the SMART
// configuration publishes. devserver.Server.SmartEndpoints and
// Verifier.SmartEndpoints provide them for the embedded and an external
// issuer.
type SmartEndpoints struct {
	Issuer                string
	JWKSURI               string
	AuthorizationEndpoint string
	TokenEndpoint         string
	IntrospectionEndpoint string // optional
	RevocationEndpoint    string // optional
	UserinfoEndpoint      string // optional
	// AssertionAlgorithms are the algorithms accepted for private_key_jwt
	// client assertions; default RS384 and ES384 (SMART Backend Services'
	// required pair) plus RS256.
	AssertionAlgorithms []string
}

// smartConfiguration is the JSON document of SMART App Launch v2 §
// "Conformance" (/.well-known/smart-configuration).
type smartConfiguration struct {
	Issuer                                string   `json:"issuer,omitempty"`
	JWKSURI                               string   `json:"jwks_uri,omitempty"`
	AuthorizationEndpoint                 string   `json:"authorization_endpoint"`
	TokenEndpoint                         string   `json:"token_endpoint"`
	IntrospectionEndpoint                 string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                    string   `json:"revocation_endpoint,omitempty"`
	UserinfoEndpoint                      string   `json:"userinfo_endpoint,omitempty"`
	GrantTypesSupported                   []string `json:"grant_types_supported"`
	ResponseTypesSupported                []string `json:"response_types_supported"`
	TokenEndpointAuthMethodsSupported     []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgsSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported         []string `json:"code_challenge_methods_supported"`
	ScopesSupported                       []string `json:"scopes_supported"`
	Capabilities                          []string `json:"capabilities"`
}

// SmartScopes are the scopes the SMART configuration advertises.
var SmartScopes = []string{
	"openid", "fhirUser", "launch/patient",
	"patient/*.cruds", "patient/*.rs", "user/*.cruds", "user/*.rs", "system/*.cruds", "system/*.rs",
	"patient/*.read", "patient/*.write", "user/*.read", "user/*.write", "system/*.read", "system/*.write",
	"system/AuditEvent.rs", "user/AuditEvent.rs",
}

// SmartCapabilities are the SMART capabilities Signpost offers: standalone
// launch with a patient picker, public and confidential (secret and
// asymmetric) clients, OpenID Connect sign-in, and v1 and v2 scopes at patient
// and user level (system level is Backend Services).
var SmartCapabilities = []string{
	"launch-standalone",
	"client-public",
	"client-confidential-symmetric",
	"client-confidential-asymmetric",
	"context-standalone-patient",
	"sso-openid-connect",
	"permission-patient",
	"permission-user",
	"permission-v1",
	"permission-v2",
}

// SmartConfiguration returns the JSON for /fhir/.well-known/smart-configuration.
// Serve it as application/json whatever the Accept header says.
func SmartConfiguration(e SmartEndpoints) []byte {
	algs := e.AssertionAlgorithms
	if len(algs) == 0 {
		algs = []string{"RS256", "RS384", "ES384"}
	}
	doc := smartConfiguration{
		Issuer:                                e.Issuer,
		JWKSURI:                               e.JWKSURI,
		AuthorizationEndpoint:                 e.AuthorizationEndpoint,
		TokenEndpoint:                         e.TokenEndpoint,
		IntrospectionEndpoint:                 e.IntrospectionEndpoint,
		RevocationEndpoint:                    e.RevocationEndpoint,
		UserinfoEndpoint:                      e.UserinfoEndpoint,
		GrantTypesSupported:                   []string{"authorization_code", "client_credentials"},
		ResponseTypesSupported:                []string{"code"},
		TokenEndpointAuthMethodsSupported:     []string{"private_key_jwt", "client_secret_basic", "none"},
		TokenEndpointAuthSigningAlgsSupported: algs,
		CodeChallengeMethodsSupported:         []string{"S256"},
		ScopesSupported:                       SmartScopes,
		Capabilities:                          SmartCapabilities,
	}
	b, _ := json.MarshalIndent(doc, "", "  ") // cannot fail: strings only
	return b
}
