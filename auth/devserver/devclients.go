package devserver

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/signpost-fhir/signpost/auth"
)

// How a demo client authenticates at the token endpoint.
const (
	AuthPrivateKeyJWT     = "private_key_jwt"     // signed JWT assertion (SMART Backend Services)
	AuthClientSecretBasic = "client_secret_basic" // id and secret in HTTP Basic
	AuthNone              = "none"                // public client: PKCE instead
)

// DemoClient is one client the development server knows, with its
// credentials. The set is generated into the data directory at first start;
// edit clients.json there to change scopes, organisations or roles.
type DemoClient struct {
	ID          string   `json:"client_id"`
	Description string   `json:"description"`
	AuthMethod  string   `json:"token_endpoint_auth_method"`
	GrantTypes  []string `json:"grant_types"`
	// Secret is the client_secret of a client_secret_basic client.
	Secret string `json:"client_secret,omitempty"`
	// KeyFile is the private key (PEM, relative to the auth directory) a
	// private_key_jwt client signs its assertions with; JWK is its public key.
	KeyFile string           `json:"private_key_file,omitempty"`
	JWK     *jose.JSONWebKey `json:"jwk,omitempty"`
	// Scopes are the scopes the client may be granted; a requested scope is
	// granted if one of these covers it (see Scope.Covers).
	Scopes       []string  `json:"scopes"`
	Organization string    `json:"org,omitempty"`
	Role         auth.Role `json:"role,omitempty"`
	RedirectURIs []string  `json:"redirect_uris,omitempty"`
}

// The demo clients' ids.
const (
	ClientGPSystem   = "gp-system"
	ClientCallCentre = "call-centre"
	ClientProvider   = "provider"
	ClientPatientApp = "patient-app"
	ClientAuditor    = "auditor"
	// ClientCommissioner is a commissioner's reporting system: it runs
	// the reports on the services DemoCommissioner commissions and reads
	// the directory.
	ClientCommissioner = "commissioner"
	// ClientOperator is the deployment's operations console: it calls the
	// adapters' operator view ($adapters, $adapter-dead-letters,
	// $adapter-replay, $adapter-discard; signpost adapters) and reads the
	// directory, nothing clinical (auth.RoleOperator).
	ClientOperator = "operator"
	// ClientAPIReference is the API reference's interactive page (/api/,
	// package apiref): a public client signing in a patient (the patient
	// picker) or a member of staff (the staff sign-in) with PKCE, its
	// redirect the page's oauth2-redirect.html on the issuer's host or on
	// a loopback address.
	ClientAPIReference = "api-reference"

	// ClientPortal is Signpost's own web portal (package portal) when it
	// signs in through the development server: a public client with PKCE
	// S256 whose redirect URI is the portal's /callback on Signpost's own
	// origin (Config.PortalRedirectURIs, and a loopback /callback on any
	// port).
	ClientPortal = "portal"
)

// APIReferenceRedirectPath is the API reference's OAuth 2 redirect page.
const APIReferenceRedirectPath = "/api/oauth2-redirect.html"

// Demo organisations (ODS-shaped codes reserved for the demo).
const (
	DemoGPPractice = "A99001"
	DemoProvider   = "R9901"
	DemoCallCentre = "Y99001"
	// DemoCommissioner is the demo county's north integrated care board
	// (Organization demo-icb-north in serve --demo), the commissioner demo
	// client's organisation.
	DemoCommissioner = "QWN"
)

// newDemoClients generates the demo client set, with fresh credentials, into
// dir.
func newDemoClients(dir string) ([]*DemoClient, error) {
	gpKeyFile := ClientGPSystem + "-key.pem"
	gpKey, err := auth.LoadOrCreateSigningKey(filepath.Join(dir, gpKeyFile))
	if err != nil {
		return nil, err
	}
	jwk := gpKey.JWK()
	clients := []*DemoClient{
		{
			ID:           ClientGPSystem,
			Description:  "GP system (SMART Backend Services: client_credentials with a private_key_jwt assertion, RS256)",
			AuthMethod:   AuthPrivateKeyJWT,
			GrantTypes:   []string{string(oidc.GrantTypeClientCredentials)},
			KeyFile:      gpKeyFile,
			JWK:          &jwk,
			Scopes:       []string{"system/*.cruds"},
			Organization: DemoGPPractice,
			Role:         auth.RoleReferrer,
		},
		{
			ID:           ClientCallCentre,
			Description:  "booking call centre (client_credentials, client_secret_basic)",
			AuthMethod:   AuthClientSecretBasic,
			GrantTypes:   []string{string(oidc.GrantTypeClientCredentials)},
			Secret:       randomString(24),
			Scopes:       []string{"user/*.cruds"},
			Organization: DemoCallCentre,
			Role:         auth.RoleCallCentre,
		},
		{
			ID:           ClientProvider,
			Description:  "hospital provider PAS interface (client_credentials, client_secret_basic)",
			AuthMethod:   AuthClientSecretBasic,
			GrantTypes:   []string{string(oidc.GrantTypeClientCredentials)},
			Secret:       randomString(24),
			Scopes:       []string{"system/*.cruds"},
			Organization: DemoProvider,
			Role:         auth.RoleProvider,
		},
		{
			ID:           ClientAuditor,
			Description:  "audit reviewer (client_credentials, client_secret_basic)",
			AuthMethod:   AuthClientSecretBasic,
			GrantTypes:   []string{string(oidc.GrantTypeClientCredentials)},
			Secret:       randomString(24),
			Scopes:       []string{"user/AuditEvent.rs", "system/AuditEvent.rs"},
			Organization: DemoProvider,
			Role:         auth.RoleAuditor,
		},
		{
			ID:           ClientCommissioner,
			Description:  "commissioner's reporting system (client_credentials, client_secret_basic)",
			AuthMethod:   AuthClientSecretBasic,
			GrantTypes:   []string{string(oidc.GrantTypeClientCredentials)},
			Secret:       randomString(24),
			Scopes:       []string{"user/HealthcareService.rs", "user/Organization.rs", "user/Location.rs"},
			Organization: DemoCommissioner,
			Role:         auth.RoleCommissioner,
		},
		{
			ID:           ClientOperator,
			Description:  "operations console: the adapters' status, dead letters, replay (client_credentials, client_secret_basic)",
			AuthMethod:   AuthClientSecretBasic,
			GrantTypes:   []string{string(oidc.GrantTypeClientCredentials)},
			Secret:       randomString(24),
			Scopes:       []string{"user/HealthcareService.rs", "user/Organization.rs", "user/Location.rs"},
			Organization: DemoProvider,
			Role:         auth.RoleOperator,
		},
		{
			ID:          ClientPatientApp,
			Description: "patient app (public: authorization code with PKCE S256 and a patient picker)",
			AuthMethod:  AuthNone,
			GrantTypes:  []string{string(oidc.GrantTypeCode)},
			Scopes:      []string{"openid", "fhirUser", "launch/patient", "patient/*.cruds"},
			Role:        auth.RolePatient,
			// Loopback redirects match on any port (RFC 8252 §7.3).
			RedirectURIs: []string{"http://127.0.0.1/callback", "http://localhost/callback"},
		},
		{
			ID:          ClientAPIReference,
			Description: "API reference at /api/ (public: authorization code with PKCE S256; patient picker or staff sign-in)",
			AuthMethod:  AuthNone,
			GrantTypes:  []string{string(oidc.GrantTypeCode)},
			Scopes:      []string{"openid", "fhirUser", "launch/patient", "patient/*.cruds", "user/*.cruds"},
			// The role comes from who signs in. Loopback redirects match
			// on any port; New adds the issuer's host.
			RedirectURIs: []string{"http://127.0.0.1" + APIReferenceRedirectPath, "http://localhost" + APIReferenceRedirectPath},
		}, {
			ID:          ClientPortal,
			Description: "Signpost's web portal (public: authorization code with PKCE S256, redirect to <root>/callback)",
			AuthMethod:  AuthNone,
			GrantTypes:  []string{string(oidc.GrantTypeCode)},
			Scopes:      []string{"openid", "fhirUser", "launch/patient", "patient/*.cruds", "user/*.cruds"},
			// The role comes from who signs in: a patient, or a member of
			// staff through the staff sign-in.
			// Loopback redirects match on any port (RFC 8252 §7.3); the
			// portal's own origin comes from Config.PortalRedirectURIs.
			RedirectURIs: []string{"http://127.0.0.1/callback", "http://localhost/callback"},
		},
	}
	return clients, nil
}

// loadOrCreateClients reads clients.json from dir, generating it at first
// start.
func loadOrCreateClients(dir string) ([]*DemoClient, error) {
	path := filepath.Join(dir, clientsFile)
	var clients []*DemoClient
	err := readJSON(path, &clients)
	if errors.Is(err, fs.ErrNotExist) {
		if clients, err = newDemoClients(dir); err != nil {
			return nil, err
		}
		return clients, writeJSON(path, clients, 0o600)
	}
	if err != nil {
		return nil, err
	}
	for _, c := range clients {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	// A demo client added to the set since clients.json was generated
	// (the commissioner, for one) is added to it, with fresh credentials;
	// the clients already there are kept as they are.
	defaults, err := newDemoClients(dir)
	if err != nil {
		return nil, err
	}
	added := false
	for _, d := range defaults {
		if !slices.ContainsFunc(clients, func(c *DemoClient) bool { return c.ID == d.ID }) {
			clients, added = append(clients, d), true
		}
	}
	if added {
		return clients, writeJSON(path, clients, 0o600)
	}
	return clients, nil
}

// check validates a client read from clients.json.
func (c *DemoClient) check() error {
	switch c.AuthMethod {
	case AuthPrivateKeyJWT:
		if c.JWK == nil || !c.JWK.Valid() || !c.JWK.IsPublic() {
			return fmt.Errorf("client %q: private_key_jwt needs a public jwk", c.ID)
		}
	case AuthClientSecretBasic:
		if len(c.Secret) < 16 {
			return fmt.Errorf("client %q: client_secret must be at least 16 characters", c.ID)
		}
	case AuthNone:
	default:
		return fmt.Errorf("client %q: unknown token_endpoint_auth_method %q", c.ID, c.AuthMethod)
	}
	if c.Role != "" && !slices.Contains(auth.Roles, c.Role) {
		return fmt.Errorf("client %q: unknown role %q", c.ID, c.Role)
	}
	return nil
}

// secretMatches reports in constant time whether secret is the client's.
func (c *DemoClient) secretMatches(secret string) bool {
	if c.AuthMethod != AuthClientSecretBasic || c.Secret == "" {
		return false
	}
	a, b := sha256Sum(c.Secret), sha256Sum(secret)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// allows reports whether the client may be granted scope: a resource scope
// covered by one of its scopes, or a non-resource scope it lists.
func (c *DemoClient) allows(scope string) bool {
	s, err := auth.ParseScope(scope)
	if err != nil {
		return slices.Contains(c.Scopes, scope)
	}
	for _, raw := range c.Scopes {
		if allowed, err := auth.ParseScope(raw); err == nil && allowed.Covers(s) {
			return true
		}
	}
	return false
}

// grantScopes returns the requested scopes the client may have, or all its
// scopes when none were requested.
func (c *DemoClient) grantScopes(requested []string) []string {
	if len(requested) == 0 {
		return slices.Clone(c.Scopes)
	}
	var out []string
	for _, s := range requested {
		if c.allows(s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// opClient adapts a DemoClient to op.Client.
type opClient struct {
	*DemoClient
	loginURL func(authRequestID string) string
}

var _ op.Client = opClient{}

func (c opClient) GetID() string                    { return c.ID }
func (c opClient) RedirectURIs() []string           { return c.DemoClient.RedirectURIs }
func (c opClient) PostLogoutRedirectURIs() []string { return nil }
func (c opClient) LoginURL(id string) string        { return c.loginURL(id) }
func (c opClient) AccessTokenType() op.AccessTokenType {
	return op.AccessTokenTypeJWT
}
func (c opClient) IDTokenLifetime() time.Duration   { return time.Hour }
func (c opClient) DevMode() bool                    { return false }
func (c opClient) IsScopeAllowed(scope string) bool { return c.allows(scope) }
func (c opClient) IDTokenUserinfoClaimsAssertion() bool {
	return false
}
func (c opClient) ClockSkew() time.Duration { return 0 }

func (c opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c opClient) ApplicationType() op.ApplicationType {
	if c.DemoClient.AuthMethod == AuthNone {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c opClient) AuthMethod() oidc.AuthMethod {
	switch c.DemoClient.AuthMethod {
	case AuthPrivateKeyJWT:
		return oidc.AuthMethodPrivateKeyJWT
	case AuthClientSecretBasic:
		return oidc.AuthMethodBasic
	}
	return oidc.AuthMethodNone
}

func (c opClient) ResponseTypes() []oidc.ResponseType {
	if slices.Contains(c.DemoClient.GrantTypes, string(oidc.GrantTypeCode)) {
		return []oidc.ResponseType{oidc.ResponseTypeCode}
	}
	return nil
}

func (c opClient) GrantTypes() []oidc.GrantType {
	out := make([]oidc.GrantType, len(c.DemoClient.GrantTypes))
	for i, g := range c.DemoClient.GrantTypes {
		out[i] = oidc.GrantType(g)
	}
	return out
}

// credentialsText describes how to use the client, for the start-up banner.
func (c *DemoClient) credentialsText(dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-12s %s\n", c.ID, c.Description)
	switch c.AuthMethod {
	case AuthClientSecretBasic:
		fmt.Fprintf(&b, "  %-12s client_secret=%s\n", "", c.Secret)
	case AuthPrivateKeyJWT:
		fmt.Fprintf(&b, "  %-12s private key %s (kid %s)\n", "", filepath.Join(dir, c.KeyFile), c.JWK.KeyID)
	}
	fmt.Fprintf(&b, "  %-12s scopes: %s", "", strings.Join(c.Scopes, " "))
	if c.Organization != "" || c.Role != "" {
		fmt.Fprintf(&b, "; org %s, role %s", c.Organization, c.Role)
	}
	b.WriteByte('\n')
	return b.String()
}
