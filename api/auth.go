package api

// Authentication: the Security configuration, the middleware that verifies
// each request's bearer token (public paths pass without one) and puts its
// auth.Principal in the request context, the cache of verified tokens, and
// principal, which every authorisation decision starts from. What a
// principal may do is decided in access.go (reads, searches, operations),
// searchaccess.go (what a search looks at and returns) and writeaccess.go.

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Security configures authentication, authorisation, audit and the
// hardening middleware. The zero value is not usable: set Open for a server
// without authorisation (tests and local experiments only), or a Verifier.
type Security struct {
	// Open turns authorisation and audit off: every request is served as
	// if made by the server itself. Tests and local experiments only.
	Open bool
	// Verifier checks bearer tokens (auth.Verifier).
	Verifier TokenVerifier
	// SmartConfiguration is served at /fhir/.well-known/smart-configuration.
	SmartConfiguration []byte
	// AuthServer, when not nil, is Signpost's own token issuer, mounted at
	// AuthPath without authentication: the embedded development
	// authorisation server ("/auth"), or, with an external issuer, the
	// issuer of UBRN patients' tokens ("/auth/ubrn").
	AuthServer http.Handler
	AuthPath   string
	// CORSOrigins are the browser origins allowed to call the API ("*" for
	// any); none means no CORS headers.
	CORSOrigins []string
	// HSTS sends Strict-Transport-Security (the server speaks TLS).
	HSTS bool
	// RateLimit is the sustained requests per second allowed per client
	// (per client_id, or per remote address before authentication); 0 is
	// no limit. RateBurst is the bucket size; default max(1, 2×RateLimit).
	RateLimit float64
	RateBurst int
	// AuditFlush is how long read and search audits may wait in memory
	// before being stored; default 500 ms.
	AuditFlush time.Duration
}

// TokenVerifier checks a raw bearer token and returns its principal; every
// failure is a *fhir.Error of kind fhir.Unauthorized (auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*auth.Principal, error)
}

const nhsNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"

// serverContext marks writes the server makes on its own account (audit
// records): the authorisation rule lets them through.
func serverContext(ctx context.Context) context.Context { return write.AsServer(ctx) }

func isServerWrite(ctx context.Context) bool { return write.IsServer(ctx) }

// principal returns the caller of the request in ctx; nil when the server
// is open or the work is the server's own.
func (s *Server) principal(ctx context.Context) *auth.Principal {
	if s.cfg.Security.Open || isServerWrite(ctx) {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		// Authenticated routes always carry a principal; a missing one is
		// a bug, answered with nothing rather than everything.
		return &auth.Principal{}
	}
	return p
}

// secure sets up the security layer: the token cache, the audit flusher,
// the rate limiter and the authorisation rule on every writable type.
func (s *Server) secure(rp *write.Path) {
	sec := s.cfg.Security
	s.tokens = &tokenCache{entries: map[[32]byte]*auth.Principal{}, now: time.Now}
	if sec.RateLimit > 0 {
		s.limiter = newRateLimiter(sec.RateLimit, sec.RateBurst)
	}
	if sec.Open {
		s.log.Warn("AUTHORISATION IS OFF: every request is served without a token and nothing is audited (tests and local experiments only)")
		return
	}
	if sec.AuthPath == "" {
		s.cfg.Security.AuthPath = "/auth"
	}
	every := sec.AuditFlush
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	s.audits = newAuditor(s, every)
	for _, typ := range s.cfg.Writable {
		rp.AddRule(typ, "access", s.authorizeWrite)
	}
	rp.SetVisibility(s.visible)
}

// public reports whether the request is for a path served without a token.
func (s *Server) public(c *gin.Context) bool {
	path := c.Request.URL.Path
	switch path {
	case "/healthz", "/readyz", "/fhir/metadata", smartPath:
		return true
	}
	if s.cfg.Security.AuthServer != nil && (path == s.cfg.Security.AuthPath || strings.HasPrefix(path, s.cfg.Security.AuthPath+"/")) {
		return true
	}
	// Public operations, exactly where they are registered: /fhir/$op,
	// /fhir/Type/$op or /fhir/Type/id/$op as the operation says, never
	// another path that merely ends in /$op.
	rest, ok := strings.CutPrefix(path, "/fhir/")
	if !ok {
		return false
	}
	var typ, id, name string
	switch parts := strings.Split(rest, "/"); len(parts) {
	case 1:
		name = parts[0]
	case 2:
		typ, name = parts[0], parts[1]
	case 3:
		typ, id, name = parts[0], parts[1], parts[2]
		if !fhir.ValidID(id) {
			return false
		}
	default:
		return false
	}
	name, ok = strings.CutPrefix(name, "$")
	if !ok || strings.HasPrefix(typ, "$") || strings.HasPrefix(id, "$") {
		return false
	}
	op, _, ok := s.operationAt(typ, id, name)
	return ok && op.Public
}

// authenticate verifies the bearer token and puts its principal in the
// request context: 401 with WWW-Authenticate and an OperationOutcome when
// it is missing or bad.
func (s *Server) authenticate(c *gin.Context) {
	if s.cfg.Security.Open || s.public(c) {
		if !s.allow(c, "addr:"+c.ClientIP()) {
			return
		}
		c.Next()
		return
	}
	raw, err := auth.BearerToken(c.GetHeader("Authorization"))
	var p *auth.Principal
	if err == nil {
		p, err = s.tokens.verify(c.Request.Context(), raw, s.cfg.Security.Verifier, s.resolvePatient)
	}
	if err != nil {
		if !s.allow(c, "addr:"+c.ClientIP()) {
			return
		}
		c.Header("WWW-Authenticate", auth.WWWAuthenticate("signpost", err))
		if info := infoOf(c.Request.Context()); info != nil {
			info.denied = true
		}
		s.failNow(c, err)
		return
	}
	// Public clients (a patient app, UBRN patients) are shared by many
	// people: each of them gets a bucket of their own.
	rateKey := "client:" + p.ClientID
	if p.HasPatientContext() {
		rateKey += " " + p.Subject
	}
	if !s.allow(c, rateKey) {
		return
	}
	if info := infoOf(c.Request.Context()); info != nil {
		info.principal = p
	}
	c.Header("Cache-Control", "no-store")
	c.Request = c.Request.WithContext(auth.NewContext(c.Request.Context(), p))
	c.Next()
}

// failNow answers err and stops the handler chain.
func (s *Server) failNow(c *gin.Context, err error) {
	if fe := fhir.AsError(err); fe.Kind == fhir.Unauthorized {
		if c.Writer.Header().Get("WWW-Authenticate") == "" {
			c.Header("WWW-Authenticate", auth.WWWAuthenticate("signpost", err))
		}
		s.writeJSON(c, http.StatusUnauthorized, fhir.OperationOutcome(fe.Issues...))
		c.Abort()
		return
	}
	s.fail(c, err)
	c.Abort()
}

// resolvePatient finds the Patient an NHS login token's NHS number names.
func (s *Server) resolvePatient(ctx context.Context, nhsNumber string) (string, error) {
	q, err := s.search.Parse("Patient", url.Values{"identifier": {nhsNumberSystem + "|" + nhsNumber}}, search.ParseOptions{})
	if err != nil {
		return "", err
	}
	q.Count = 2
	page, err := s.store.Search(ctx, q)
	if err != nil {
		return "", err
	}
	if len(page.Resources) != 1 {
		return unresolvedPatient, nil // none, or ambiguous: reach no one
	}
	return page.Resources[0].ID, nil
}

// tokenCache remembers verified tokens until they expire: verifying a
// signature costs far more than a map look-up. Keys are SHA-256 hashes of
// the raw tokens.
type tokenCache struct {
	mu      sync.Mutex
	entries map[[32]byte]*auth.Principal
	now     func() time.Time
}

const maxCachedTokens = 10000

func (tc *tokenCache) verify(ctx context.Context, raw string, v TokenVerifier,
	resolve func(context.Context, string) (string, error)) (*auth.Principal, error) {
	key := sha256.Sum256([]byte(raw))
	now := tc.now()
	tc.mu.Lock()
	p, ok := tc.entries[key]
	tc.mu.Unlock()
	if ok && now.Before(p.Expiry) {
		return p, nil
	}
	p, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if p.Patient == "" && p.NHSNumber != "" {
		cp := *p
		if cp.Patient, err = resolve(ctx, p.NHSNumber); err != nil {
			return nil, err
		}
		p = &cp
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.entries) >= maxCachedTokens {
		for k, e := range tc.entries {
			if !now.Before(e.Expiry) {
				delete(tc.entries, k)
			}
		}
		if len(tc.entries) >= maxCachedTokens {
			clear(tc.entries)
		}
	}
	tc.entries[key] = p
	return p, nil
}
