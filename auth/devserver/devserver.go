package devserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/signpost-fhir/signpost/auth"
)

// PatientChoice is one patient the development server's picker offers.
type PatientChoice struct {
	ID        string // the Patient resource id: the token's patient claim
	Name      string // shown to the user
	NHSNumber string // shown, if known
	BirthDate string // shown, if known
}

// PatientDirectory lists the patients a user of the development server's
// patient app may choose from. The caller provides it (e.g. a search of the
// store's Patients).
type PatientDirectory interface {
	Patients(ctx context.Context) ([]PatientChoice, error)
}

// Config configures the development authorisation server.
type Config struct {
	// Issuer is the server's public URL, including the prefix it is mounted
	// under, e.g. "http://127.0.0.1:8080/auth".
	Issuer string `validate:"required,http_url"`
	// Audience is the FHIR base URL tokens are for, e.g.
	// "http://127.0.0.1:8080/fhir".
	Audience string `validate:"required,http_url"`
	// DataDir is Signpost's data directory; the server keeps its keys,
	// clients and issuer record in DevDir(DataDir).
	DataDir string `validate:"required"`
	// Patients feeds the patient picker.
	Patients PatientDirectory `validate:"required"`
	// RedirectURIs are added to the patient app's registered redirect URIs
	// (loopback URIs ending in /callback are always accepted, on any port).
	RedirectURIs []string `validate:"dive,url"`
	// PortalRedirectURIs are added to the portal client's (ClientPortal)
	// registered redirect URIs: the portal's /callback on Signpost's
	// public origin.
	PortalRedirectURIs []string `validate:"dive,url"`
	// TokenTTL is the access tokens' lifetime; default one hour.
	TokenTTL time.Duration `validate:"gte=0,lte=24h"`
}

// Server is the embedded development authorisation server: a real OAuth 2
// and OpenID Connect provider (zitadel/oidc's op package) with SMART
// additions, used only when Signpost has no external issuer.
type Server struct {
	cfg     Config
	dir     string
	prefix  string // the issuer URL's path, stripped by Handler
	storage *devStorage
	clients []*DemoClient
	handler http.Handler
}

// New prepares the development server: it creates DevDir(DataDir)
// (0700) with a signing key and demo clients at first start, reuses them
// afterwards, and records the issuer for MintToken.
func New(cfg Config) (*Server, error) {
	if err := validate.Struct(cfg); err != nil {
		return nil, fmt.Errorf("auth: development server config: %w", err)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	issuerURL, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("auth: issuer %q: %w", cfg.Issuer, err)
	}
	dir := auth.DevDir(cfg.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: development server: %w", err)
	}
	key, err := auth.LoadOrCreateSigningKey(filepath.Join(dir, signingKeyFile))
	if err != nil {
		return nil, fmt.Errorf("auth: development server signing key: %w", err)
	}
	clients, err := loadOrCreateClients(dir)
	if err != nil {
		return nil, fmt.Errorf("auth: development server clients: %w", err)
	}
	rec := issuerRecord{Issuer: cfg.Issuer, Audience: cfg.Audience, KeyID: key.ID(), TokenTTL: cfg.TokenTTL}
	if err := writeJSON(filepath.Join(dir, issuerFile), rec, 0o600); err != nil {
		return nil, fmt.Errorf("auth: development server: %w", err)
	}

	s := &Server{cfg: cfg, dir: dir, prefix: strings.TrimSuffix(issuerURL.Path, "/"), clients: clients}
	s.storage = &devStorage{
		key:      key,
		audience: cfg.Audience,
		ttl:      cfg.TokenTTL,
		clients:  map[string]*DemoClient{},
		staff:    DemoStaff(),
		now:      time.Now,
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		tokens:   map[string]*issuedToken{},
		jtis:     map[string]time.Time{},
	}
	s.storage.loginURL = func(id string) string {
		return cfg.Issuer + s.storage.loginPath(id) + "?authRequestID=" + url.QueryEscape(id)
	}
	for _, c := range clients {
		switch c.ID {
		case ClientPatientApp:
			c.RedirectURIs = append(slices.Clone(c.RedirectURIs), cfg.RedirectURIs...)
		case ClientAPIReference: // the API reference on the issuer's own host
			c.RedirectURIs = append(slices.Clone(c.RedirectURIs), issuerURL.Scheme+"://"+issuerURL.Host+APIReferenceRedirectPath)
		}
		if c.ID == ClientPortal {
			c.RedirectURIs = append(slices.Clone(c.RedirectURIs), cfg.PortalRedirectURIs...)
		}
		s.storage.clients[c.ID] = c
	}

	var cryptoKey [32]byte // encrypts opaque tokens, which Signpost never issues
	copy(cryptoKey[:], randomString(16))
	opts := []op.Option{}
	if issuerURL.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:               cryptoKey,
		CodeMethodS256:          true,
		AuthMethodPrivateKeyJWT: true,
		SupportedScopes:         []string{oidc.ScopeOpenID, "fhirUser", "launch/patient"},
	}, s.storage, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("auth: development server: %w", err)
	}
	endpoints := *op.DefaultEndpoints
	endpoints.DeviceAuthorization = nil
	endpoints.EndSession = nil
	server := &devOPServer{LegacyServer: op.NewLegacyServer(provider, endpoints), dev: s}
	opHandler := op.RegisterLegacyServer(server, op.AuthorizeCallbackHandler(provider))

	mux := http.NewServeMux()
	callback := s.AuthorizationEndpoint() + "/callback?id=" // registered by RegisterLegacyServer
	// Browsers' cross-origin POSTs to the picker are refused outright; the
	// form's CSRF token covers the rest (pickerHandler).
	picker := &pickerHandler{storage: s.storage, patients: cfg.Patients, callback: callback}
	mux.Handle("/login", http.NewCrossOriginProtection().Handler(picker))
	staff := &staffHandler{storage: s.storage, staff: s.storage.staff, callback: callback}
	mux.Handle("/staff", http.NewCrossOriginProtection().Handler(staff))
	mux.Handle("/", requireClient(opHandler))
	s.handler = mux
	if s.prefix != "" {
		s.handler = http.StripPrefix(s.prefix, mux)
	}
	return s, nil
}

// Handler serves the authorisation server. Mount it at the issuer URL's path
// (e.g. every path under "/auth/" for issuer http://host/auth) without
// stripping the prefix: the handler strips it itself.
func (s *Server) Handler() http.Handler { return s.handler }

// Issuer returns the issuer URL.
func (s *Server) Issuer() string { return s.cfg.Issuer }

// TokenEndpoint returns the token endpoint URL.
func (s *Server) TokenEndpoint() string {
	return s.cfg.Issuer + "/" + op.DefaultEndpoints.Token.Relative()[1:]
}

// AuthorizationEndpoint returns the authorisation endpoint URL.
func (s *Server) AuthorizationEndpoint() string {
	return op.DefaultEndpoints.Authorization.Absolute(s.cfg.Issuer)
}

// SmartEndpoints returns the server's endpoints for SmartConfiguration.
func (s *Server) SmartEndpoints() auth.SmartEndpoints {
	e := op.DefaultEndpoints
	return auth.SmartEndpoints{
		Issuer:                s.cfg.Issuer,
		JWKSURI:               e.JwksURI.Absolute(s.cfg.Issuer),
		AuthorizationEndpoint: s.AuthorizationEndpoint(),
		TokenEndpoint:         s.TokenEndpoint(),
		IntrospectionEndpoint: e.Introspection.Absolute(s.cfg.Issuer),
		RevocationEndpoint:    e.Revocation.Absolute(s.cfg.Issuer),
		UserinfoEndpoint:      e.Userinfo.Absolute(s.cfg.Issuer),
		// zitadel's assertion verifier accepts these.
		AssertionAlgorithms: []string{"RS256", "ES256", "PS256"},
	}
}

// PublicKeys returns the server's public signing keys.
func (s *Server) PublicKeys() []jose.JSONWebKey { return []jose.JSONWebKey{s.storage.key.JWK()} }

// Verifier returns a Verifier for the server's tokens that uses its keys in
// process (NewLocalVerifier); cfg's Issuer and Audience are set from the
// server.
func (s *Server) Verifier(cfg auth.VerifierConfig) (*auth.Verifier, error) {
	cfg.Issuer, cfg.Audience = s.cfg.Issuer, s.cfg.Audience
	return auth.NewLocalVerifier(cfg, s.PublicKeys())
}

// Clients returns the demo clients, credentials included.
func (s *Server) Clients() []DemoClient {
	out := make([]DemoClient, len(s.clients))
	for i, c := range s.clients {
		out[i] = *c
	}
	return out
}

// Warning is the line to log, loudly, whenever the development server runs.
const Warning = "WARNING: the embedded DEVELOPMENT authorisation server is running. " +
	"It hands out tokens to anyone holding the demo credentials below. Never use it with real patient data: configure --issuer instead."

// Banner returns the development warning and the demo clients' credentials,
// for the caller to log at start. It contains secrets: print it to the
// operator's console, never to a shared log.
func (s *Server) Banner() string {
	var b strings.Builder
	line := strings.Repeat("!", 100)
	fmt.Fprintf(&b, "%s\n%s\n%s\n", line, Warning, line)
	fmt.Fprintf(&b, "issuer %s (token endpoint %s), audience %s\ndemo clients (from %s):\n",
		s.cfg.Issuer, s.TokenEndpoint(), s.cfg.Audience, filepath.Join(s.dir, clientsFile))
	for _, c := range s.clients {
		b.WriteString(c.credentialsText(s.dir))
	}
	return b.String()
}

// devOPServer is zitadel's LegacyServer with the SMART behaviour it lacks.
type devOPServer struct {
	*op.LegacyServer
	dev *Server
}

// assertionMaxLifetime is how far in the future a client assertion's exp may
// be (SMART Backend Services: no more than five minutes).
const assertionMaxLifetime = 5 * time.Minute

// VerifyClient authenticates the client of a token or revocation request
// by the method it is registered with (authenticateClient): zitadel's own
// checks know only client secrets for client_credentials and answer some
// failures 400 or 500; every failure here is 401 invalid_client.
func (s *devOPServer) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := s.authenticateClient(ctx, r.Data, r.Header, oidc.GrantType(r.Form.Get("grant_type")))
	if err != nil {
		return nil, err
	}
	return s.dev.storage.GetClientByClientID(ctx, c.ID)
}

// Introspect authenticates the client as VerifyClient does before
// zitadel answers.
func (s *devOPServer) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	if _, err := s.authenticateClient(ctx, r.Data.ClientCredentials, r.Header, ""); err != nil {
		return nil, err
	}
	return s.LegacyServer.Introspect(ctx, r)
}

// Authorize starts an authorisation-code flow. On top of zitadel's checks it
// requires PKCE with S256 from public clients (SMART App Launch v2) and,
// when the client names the FHIR server it wants a token for (aud), that it
// is this one.
func (s *devOPServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	if r.Client.AuthMethod() == oidc.AuthMethodNone &&
		(r.Data.CodeChallenge == "" || r.Data.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return op.TryErrorRedirect(ctx, r.Data, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method S256 is required"), s.Provider().Encoder(), nil)
	}
	if aud := r.Form.Get("aud"); aud != "" && strings.TrimSuffix(aud, "/") != strings.TrimSuffix(s.dev.cfg.Audience, "/") {
		return op.TryErrorRedirect(ctx, r.Data, oidc.ErrInvalidRequest().WithDescription("aud does not name this FHIR server"), s.Provider().Encoder(), nil)
	}
	// zitadel keeps the OpenID scopes (profile, email, offline_access…)
	// whatever the client's registration says: grant only registered ones.
	if c, err := s.dev.storage.client(r.Client.GetID()); err == nil {
		r.Data.Scopes = slices.DeleteFunc(r.Data.Scopes, func(sc string) bool { return !c.allows(sc) })
	}
	if len(r.Data.Scopes) == 0 {
		return op.TryErrorRedirect(ctx, r.Data, oidc.ErrInvalidScope().WithDescription("none of the requested scopes is allowed for this client"), s.Provider().Encoder(), nil)
	}
	return s.LegacyServer.Authorize(ctx, r)
}

// smartTokenResponse is the token response with SMART's launch context.
type smartTokenResponse struct {
	*oidc.AccessTokenResponse
	Patient string `json:"patient,omitempty"`
}

// CodeExchange answers the code exchange with the patient in context added
// to the token response, as SMART standalone launch clients expect.
func (s *devOPServer) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.CodeExchange(ctx, r)
	if err != nil {
		return nil, err
	}
	if tr, ok := resp.Data.(*oidc.AccessTokenResponse); ok {
		resp.Data = smartTokenResponse{AccessTokenResponse: tr, Patient: unverifiedClaim(tr.AccessToken, "patient")}
	}
	return resp, nil
}

// unverifiedClaim reads a string claim from a JWT without verifying it; only
// for tokens this server has just signed.
func unverifiedClaim(jwt, name string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims map[string]any
	if json.Unmarshal(b, &claims) != nil {
		return ""
	}
	v, _ := claims[name].(string)
	return v
}

// MintReferralToken issues the short-lived access token of
// ServiceRequest/$ubrn-access: in patientID's context, limited to one
// referral (granular scopes) and the booking of appointments, signed like
// every other token of the server. It implements referral.TokenMinter.
func (s *Server) MintReferralToken(_ context.Context, patientID, referralID string, ttl time.Duration) (string, error) {
	g, err := auth.ReferralGrant(s.cfg.Audience, patientID, referralID)
	if err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > s.cfg.TokenTTL {
		ttl = s.cfg.TokenTTL
	}
	return auth.SignAccessToken(s.cfg.Issuer, s.storage.key, g, time.Now().Add(ttl))
}
