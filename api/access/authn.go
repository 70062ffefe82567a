package access

// Authentication: the middleware that verifies
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

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

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
func (g *Guard) principal(ctx context.Context) *auth.Principal {
	if g.cfg.Open || isServerWrite(ctx) {
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

// public reports whether the request is for a path served without a token.
func (g *Guard) public(c *gin.Context) bool {
	path := c.Request.URL.Path
	switch path {
	case "/healthz", "/readyz", "/fhir/metadata", SmartPath:
		return true
	}
	if g.cfg.PublicPath != nil && g.cfg.PublicPath(path) {
		return true
	}
	if g.cfg.AuthServer != nil && (path == g.cfg.AuthPath || strings.HasPrefix(path, g.cfg.AuthPath+"/")) {
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
	return g.cfg.PublicOperation != nil && g.cfg.PublicOperation(typ, id, name)
}

// Authenticate is the middleware that verifies the bearer token and puts
// its principal in the request context: 401 with WWW-Authenticate and an
// OperationOutcome when it is missing or bad. Public paths (health,
// metadata, SMART discovery, the mounted issuer, public operations) pass
// without a token. It applies the rate limit, per client once the token is
// verified.
func (g *Guard) Authenticate(c *gin.Context) {
	if g.cfg.Open || g.public(c) {
		if !g.allow(c, "addr:"+c.ClientIP()) {
			return
		}
		c.Next()
		return
	}
	raw, err := auth.BearerToken(c.GetHeader("Authorization"))
	var p *auth.Principal
	if err == nil {
		p, err = g.tokens.verify(c.Request.Context(), raw, g.cfg.Verifier, g.resolvePatient)
	}
	if err != nil {
		if !g.allow(c, "addr:"+c.ClientIP()) {
			return
		}
		c.Header("WWW-Authenticate", auth.WWWAuthenticate("signpost", err))
		audit.Refused(c.Request.Context())
		g.failNow(c, err)
		return
	}
	// Public clients (a patient app, UBRN patients) are shared by many
	// people: each of them gets a bucket of their own.
	rateKey := "client:" + p.ClientID
	if p.HasPatientContext() {
		rateKey += " " + p.Subject
	}
	if !g.allow(c, rateKey) {
		return
	}
	audit.Authenticated(c.Request.Context(), p)
	c.Header("Cache-Control", "no-store")
	c.Request = c.Request.WithContext(auth.NewContext(c.Request.Context(), p))
	c.Next()
}

// failNow answers err and stops the handler chain.
func (g *Guard) failNow(c *gin.Context, err error) {
	if fe := fhir.AsError(err); fe.Kind == fhir.Unauthorized {
		if c.Writer.Header().Get("WWW-Authenticate") == "" {
			c.Header("WWW-Authenticate", auth.WWWAuthenticate("signpost", err))
		}
		g.cfg.WriteJSON(c, http.StatusUnauthorized, fhir.OperationOutcome(fe.Issues...))
		c.Abort()
		return
	}
	g.cfg.Fail(c, err)
	c.Abort()
}

// resolvePatient finds the Patient an NHS login token's NHS number names.
func (g *Guard) resolvePatient(ctx context.Context, nhsNumber string) (string, error) {
	q, err := g.cfg.Search.Parse("Patient", url.Values{"identifier": {nhsNumberSystem + "|" + nhsNumber}}, search.ParseOptions{})
	if err != nil {
		return "", err
	}
	q.Count = 2
	page, err := g.cfg.Store.Search(ctx, q)
	if err != nil {
		return "", err
	}
	if len(page.Resources) != 1 {
		return auth.UnresolvedPatient, nil // none, or ambiguous: reach no one
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
