package devserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/signpost-fhir/signpost/auth"
)

// grant is what an access token says about its holder (auth.TokenGrant),
// as a token request of zitadel's. The token endpoint (through devStorage)
// and MintToken both turn a grant into the same claims.
type grant struct{ auth.TokenGrant }

// privateClaims are the claims Signpost adds to zitadel's registered ones
// (iss, sub, aud, exp, iat, nbf, jti, client_id).
func (g grant) privateClaims() map[string]any { return g.PrivateClaims() }

// op.TokenRequest.
func (g *grant) GetSubject() string    { return g.Subject }
func (g *grant) GetAudience() []string { return g.Audience }
func (g *grant) GetScopes() []string   { return g.Scopes }

// authRequest is one authorisation-code request, from /authorize to the code
// exchange. It implements op.AuthRequest.
type authRequest struct {
	id      string
	created time.Time
	req     oidc.AuthRequest
	// csrf is the random token the patient picker embeds in its form and
	// requires back on POST, so that no other site can submit the form in
	// the user's browser. Set at creation, never changed.
	csrf string
	// Set when the user has picked a patient.
	done     bool
	authTime time.Time
	grant    grant
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string         { return a.id }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string { return a.grant.Audience }
func (a *authRequest) GetAuthTime() time.Time {
	return a.authTime
}
func (a *authRequest) GetClientID() string { return a.req.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}
func (a *authRequest) GetNonce() string                   { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.req.Scopes }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.grant.Subject }
func (a *authRequest) Done() bool                         { return a.done }

// issuedToken is what the storage remembers of an access token, for
// userinfo, introspection and revocation.
type issuedToken struct {
	grant
	expiry time.Time
}

// authRequestTTL bounds how long a user may take to pick a patient and the
// client to exchange the code.
const authRequestTTL = 10 * time.Minute

// devStorage is the in-memory op.Storage of the development server: clients
// (from the data directory), auth requests and codes, issued tokens, and the
// signing key. Only what zitadel's op package needs for the flows Signpost
// uses is implemented; refresh tokens, token exchange and the JWT bearer grant
// are refused.
type devStorage struct {
	key      *auth.SigningKey
	audience string
	ttl      time.Duration
	clients  map[string]*DemoClient
	loginURL func(authRequestID string) string
	staff    []StaffUser // the demo staff of the staff sign-in
	now      func() time.Time

	mu       sync.Mutex
	requests map[string]*authRequest // by id
	codes    map[string]string       // code → request id
	tokens   map[string]*issuedToken // by jti
	jtis     map[string]time.Time    // client assertion jti → its exp (replay guard)
}

var (
	_ op.Storage                        = (*devStorage)(nil)
	_ op.ClientCredentialsStorage       = (*devStorage)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*devStorage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*devStorage)(nil)
)

// errNotFound is reported for unknown clients, requests, codes and tokens.
var errNotFound = errors.New("not found")

func (s *devStorage) client(id string) (*DemoClient, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q: %w", id, errNotFound)
	}
	return c, nil
}

// pruneLocked drops expired requests, tokens and assertion ids.
func (s *devStorage) pruneLocked() {
	now := s.now()
	for id, r := range s.requests {
		if now.Sub(r.created) > authRequestTTL {
			delete(s.requests, id)
		}
	}
	for code, id := range s.codes {
		if _, ok := s.requests[id]; !ok {
			delete(s.codes, code)
		}
	}
	for id, t := range s.tokens {
		if now.After(t.expiry) {
			delete(s.tokens, id)
		}
	}
	for jti, exp := range s.jtis {
		if now.After(exp) {
			delete(s.jtis, jti)
		}
	}
}

// CreateAuthRequest implements op.AuthStorage.
func (s *devStorage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	r := &authRequest{id: randomString(16), created: s.now(), req: *req, csrf: randomString(16)}
	s.requests[r.id] = r
	return r, nil
}

// AuthRequestByID implements op.AuthStorage.
func (s *devStorage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || s.now().Sub(r.created) > authRequestTTL {
		return nil, fmt.Errorf("auth request: %w", errNotFound)
	}
	return r, nil
}

// AuthRequestByCode implements op.AuthStorage.
func (s *devStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("code: %w", errNotFound)
	}
	return s.AuthRequestByID(ctx, id)
}

// SaveAuthCode implements op.AuthStorage.
func (s *devStorage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest implements op.AuthStorage; it also makes the request's
// code unusable, so a code is exchanged at most once.
func (s *devStorage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// csrfTokenMatches reports whether token is the CSRF token of the auth
// request id (false when there is no such request), comparing in constant
// time.
func (s *devStorage) csrfTokenMatches(id, token string) bool {
	s.mu.Lock()
	r, ok := s.requests[id]
	s.mu.Unlock()
	if !ok || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(r.csrf)) == 1
}

// completeAuthRequest records the patient the user picked.
func (s *devStorage) completeAuthRequest(id string, p PatientChoice) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || s.now().Sub(r.created) > authRequestTTL {
		return fmt.Errorf("auth request: %w", errNotFound)
	}
	c, err := s.client(r.req.ClientID)
	if err != nil {
		return err
	}
	r.done, r.authTime = true, s.now()
	r.grant = patientGrant(s.audience, c, p.ID, r.req.Scopes)
	if r.grant.Role == "" { // a client that signs in staff too (the API reference): a patient signed in
		r.grant.Role = auth.RolePatient
	}
	return nil
}

// grantOf returns the grant behind a token request.
func grantOf(req op.TokenRequest) (grant, bool) {
	switch r := req.(type) {
	case *grant:
		return *r, true
	case *authRequest:
		return r.grant, true
	}
	return grant{}, false
}

// CreateAccessToken implements op.AuthStorage.
func (s *devStorage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	g, ok := grantOf(req)
	if !ok {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	id, exp := tokenID(), s.now().Add(s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	s.tokens[id] = &issuedToken{grant: g, expiry: exp}
	return id, exp, nil
}

// CreateAccessAndRefreshTokens implements op.AuthStorage: refresh tokens are
// not issued by the development server.
func (s *devStorage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not supported")
}

// TokenRequestByRefreshToken implements op.AuthStorage.
func (s *devStorage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

// TerminateSession implements op.AuthStorage; there are no sessions.
func (s *devStorage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken implements op.AuthStorage. A revoked JWT stays verifiable by
// resource servers until it expires; revocation only stops userinfo and
// introspection from answering for it.
func (s *devStorage) RevokeToken(_ context.Context, tokenID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenID]; ok && t.ClientID == clientID {
		delete(s.tokens, tokenID)
	}
	return nil
}

// GetRefreshTokenInfo implements op.AuthStorage.
func (s *devStorage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// SigningKey implements op.AuthStorage.
func (s *devStorage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

// SignatureAlgorithms implements op.AuthStorage.
func (s *devStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet implements op.AuthStorage: the public keys the JWKS endpoint
// publishes.
func (s *devStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

// GetClientByClientID implements op.OPStorage.
func (s *devStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, err := s.client(id)
	if err != nil {
		return nil, err
	}
	return opClient{DemoClient: c, loginURL: s.loginURL}, nil
}

// AuthorizeClientIDSecret implements op.OPStorage.
func (s *devStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, err := s.client(id)
	if err != nil || !c.secretMatches(secret) {
		return oidc.ErrInvalidClient().WithDescription("invalid client credentials")
	}
	return nil
}

// ClientCredentials implements op.ClientCredentialsStorage for clients that
// authenticate with a secret; private_key_jwt clients are authenticated by
// devServer.VerifyClient.
func (s *devStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		return nil, err
	}
	return s.GetClientByClientID(ctx, id)
}

// ClientCredentialsTokenRequest implements op.ClientCredentialsStorage: the
// token is for the client itself, with the requested scopes it may have (all
// its scopes when none are requested).
func (s *devStorage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, err := s.client(id)
	if err != nil {
		return nil, err
	}
	granted := c.grantScopes(scopes)
	if len(granted) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("none of the requested scopes is allowed for this client")
	}
	g := clientGrant(s.audience, c, granted)
	return &g, nil
}

// GetPrivateClaimsFromRequest implements op.CanGetPrivateClaimsFromRequest.
func (s *devStorage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	g, ok := grantOf(req)
	if !ok {
		return nil, oidc.ErrUnsupportedGrantType()
	}
	return g.privateClaims(), nil
}

// GetPrivateClaimsFromScopes implements op.OPStorage; unused, as
// GetPrivateClaimsFromRequest takes precedence.
func (s *devStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// SetUserinfoFromScopes implements op.OPStorage (deprecated by zitadel; empty).
func (s *devStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest implements op.CanSetUserinfoFromRequest: the ID
// token carries fhirUser, as SMART asks.
func (s *devStorage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	if r, ok := req.(*authRequest); ok {
		info.Subject = r.grant.Subject
		if r.grant.FHIRUser != "" {
			info.AppendClaims("fhirUser", r.grant.FHIRUser)
		}
	}
	return nil
}

// SetUserinfoFromToken implements op.OPStorage, for the userinfo endpoint.
func (s *devStorage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tokenID]
	if !ok || s.now().After(t.expiry) {
		return fmt.Errorf("token: %w", errNotFound)
	}
	info.Subject = t.Subject
	if t.FHIRUser != "" {
		info.AppendClaims("fhirUser", t.FHIRUser)
	}
	return nil
}

// SetIntrospectionFromToken implements op.OPStorage.
func (s *devStorage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, _, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tokenID]
	if !ok || s.now().After(t.expiry) {
		return fmt.Errorf("token: %w", errNotFound)
	}
	resp.Subject, resp.ClientID, resp.Scope = t.Subject, t.ClientID, t.Scopes
	resp.Audience, resp.Expiration = t.Audience, oidc.FromTime(t.expiry)
	return nil
}

// GetKeyByIDAndClientID implements op.OPStorage: the public key a
// private_key_jwt client signs its assertions with.
func (s *devStorage) GetKeyByIDAndClientID(_ context.Context, kid, clientID string) (*jose.JSONWebKey, error) {
	c, err := s.client(clientID)
	if err != nil || c.JWK == nil || (kid != "" && kid != c.JWK.KeyID) {
		return nil, fmt.Errorf("key %q of client %q: %w", kid, clientID, errNotFound)
	}
	return c.JWK, nil
}

// ValidateJWTProfileScopes implements op.OPStorage. The JWT bearer grant
// (RFC 7523 §2.1) is not offered; backend services use client_credentials
// with a client assertion.
func (s *devStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("use client_credentials with a client_assertion")
}

// useAssertionID records a client assertion's jti, reporting false if it was
// seen before (a replay).
func (s *devStorage) useAssertionID(clientID, jti string, exp time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	key := clientID + "\x00" + jti
	if _, seen := s.jtis[key]; seen {
		return false
	}
	s.jtis[key] = exp
	return true
}

// Health implements op.Storage.
func (s *devStorage) Health(context.Context) error { return nil }
