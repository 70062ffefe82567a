package devserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client authentication at the development server's token, revocation and
// introspection endpoints. Each client authenticates exactly as it is
// registered (DemoClient.AuthMethod): a private_key_jwt client with a
// signed assertion, a client_secret_basic client with its secret in HTTP
// Basic, a public client with its client_id alone (and PKCE, checked at the
// code exchange). Whatever is wrong or missing (no credentials, an unknown
// client id, a wrong secret, a bad assertion, another method than the
// registered one) is answered 401 invalid_client (RFC 6749 §5.2), never a
// 400 or a 500, and never says which part was wrong.

// invalidClient is the one refusal of client authentication.
func invalidClient(description string, parent error) error {
	e := oidc.ErrInvalidClient().WithDescription("%s", description)
	if parent != nil {
		e = e.WithParent(parent)
	}
	return op.NewStatusError(e, http.StatusUnauthorized)
}

// authenticateClient authenticates the client of a token, revocation or
// introspection request by the method it is registered with. grantType is
// the token request's grant_type ("" at the other endpoints).
func (s *devOPServer) authenticateClient(ctx context.Context, cc *op.ClientCredentials, header http.Header, grantType oidc.GrantType) (*DemoClient, error) {
	if cc == nil {
		return nil, invalidClient("client authentication is required", nil)
	}
	st := s.dev.storage
	if cc.ClientAssertion != "" || cc.ClientAssertionType != "" {
		return s.authenticateAssertion(ctx, cc)
	}
	c, err := st.client(cc.ClientID)
	if err != nil {
		(&DemoClient{AuthMethod: AuthClientSecretBasic, Secret: absentSecret}).secretMatches(cc.ClientSecret) // the same work as a known client
		return nil, invalidClient("client authentication failed", err)
	}
	switch c.AuthMethod {
	case AuthClientSecretBasic:
		_, _, basic := (&http.Request{Header: header}).BasicAuth()
		if !c.secretMatches(cc.ClientSecret) || !basic {
			return nil, invalidClient("client authentication failed", nil)
		}
	case AuthNone:
		if cc.ClientSecret != "" {
			return nil, invalidClient("client authentication failed: a public client has no secret", nil)
		}
		if grantType == oidc.GrantTypeClientCredentials {
			return nil, invalidClient("a public client cannot use client_credentials", nil)
		}
	default: // private_key_jwt without an assertion
		return nil, invalidClient("client authentication failed", nil)
	}
	return c, nil
}

// absentSecret is compared when the client id is unknown.
const absentSecret = "absent-client-secret-0000000000"

// authenticateAssertion checks a private_key_jwt client assertion (SMART
// Backend Services): signature with the client's registered key, iss = sub
// = client_id, aud = the token endpoint (or the issuer), exp at most five
// minutes ahead, and a jti never seen before.
func (s *devOPServer) authenticateAssertion(ctx context.Context, cc *op.ClientCredentials) (*DemoClient, error) {
	if cc.ClientAssertionType != oidc.ClientAssertionTypeJWTAssertion || cc.ClientAssertion == "" {
		return nil, invalidClient("client_assertion_type must be "+oidc.ClientAssertionTypeJWTAssertion+", with a client_assertion", nil)
	}
	if cc.ClientSecret != "" {
		return nil, invalidClient("client authentication must use one method", nil)
	}
	st := s.dev.storage
	var req *oidc.JWTTokenRequest
	var err error
	for _, aud := range []string{s.dev.TokenEndpoint(), s.dev.cfg.Issuer} {
		v := op.NewJWTProfileVerifier(st, aud, assertionMaxLifetime, time.Minute)
		if req, err = op.VerifyJWTAssertion(ctx, cc.ClientAssertion, v); !errors.Is(err, oidc.ErrAudience) {
			break
		}
	}
	if err != nil {
		return nil, invalidClient("client assertion rejected", err)
	}
	if cc.ClientID != "" && cc.ClientID != req.Issuer {
		return nil, invalidClient("client_id does not match the assertion's issuer", nil)
	}
	exp := req.ExpiresAt.AsTime()
	if exp.After(st.now().Add(assertionMaxLifetime + time.Minute)) {
		return nil, invalidClient("client assertion exp is more than five minutes ahead", nil)
	}
	if req.JWTID == "" || !st.useAssertionID(req.Issuer, req.JWTID, exp) {
		return nil, invalidClient("client assertion jti is missing or was used before", nil)
	}
	c, err := st.client(req.Issuer)
	if err != nil || c.AuthMethod != AuthPrivateKeyJWT {
		return nil, invalidClient("client is not registered for private_key_jwt", err)
	}
	return c, nil
}

// clientEndpoints are the endpoints (relative to the issuer) whose callers
// authenticate as clients.
var clientEndpoints = []string{
	op.DefaultEndpoints.Token.Relative(),
	op.DefaultEndpoints.Revocation.Relative(),
	op.DefaultEndpoints.Introspection.Relative(),
}

// requireClient answers 401 invalid_client, before zitadel would answer 400
// invalid_request, a request to a client endpoint that carries no client
// credentials at all or a client assertion of another type; and it adds
// the Basic challenge RFC 6749 asks for to a 401 answering a request that
// tried HTTP Basic.
func requireClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isClientEndpoint(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		user, _, basic := r.BasicAuth()
		if basic || strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
			w = &basicChallenge{ResponseWriter: w}
		}
		if r.Method == http.MethodPost && r.ParseForm() == nil && r.PostForm.Get("grant_type") != string(oidc.GrantTypeBearer) {
			f := r.PostForm
			assertion, assertionType := f.Get("client_assertion"), f.Get("client_assertion_type")
			hasAssertion := assertion != "" || assertionType != ""
			switch {
			case (!basic || user == "") && f.Get("client_id") == "" && !hasAssertion:
				op.WriteError(w, r, invalidClient("client authentication is required", nil), nil)
				return
			case hasAssertion && (assertion == "" || assertionType != oidc.ClientAssertionTypeJWTAssertion):
				op.WriteError(w, r, invalidClient("client_assertion_type must be "+oidc.ClientAssertionTypeJWTAssertion+", with a client_assertion", nil), nil)
				return
			case basic && (hasAssertion || f.Get("client_secret") != ""), hasAssertion && f.Get("client_secret") != "":
				op.WriteError(w, r, invalidClient("client authentication must use exactly one method", nil), nil)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func isClientEndpoint(path string) bool {
	for _, e := range clientEndpoints {
		if path == e {
			return true
		}
	}
	return false
}

// basicChallenge adds WWW-Authenticate: Basic to a 401.
type basicChallenge struct {
	http.ResponseWriter
}

func (b *basicChallenge) WriteHeader(status int) {
	if status == http.StatusUnauthorized && b.Header().Get("WWW-Authenticate") == "" {
		b.Header().Set("WWW-Authenticate", `Basic realm="signpost"`)
	}
	b.ResponseWriter.WriteHeader(status)
}

func (b *basicChallenge) Unwrap() http.ResponseWriter { return b.ResponseWriter }
