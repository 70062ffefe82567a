// Package access decides what the caller of each request may do. It
// authenticates bearer tokens (Guard.Authenticate puts an auth.Principal in
// the request context) and authorises every interaction against the
// principal's SMART scopes, the patient compartment, granular scope
// queries and the organisation rules: reads, searches and history
// (Guard.AuthorizeInstance, RestrictQuery, VisibleOnly, AuthorizeHistory),
// operations (AuthorizeOperation), and every write, whichever way it
// arrives, through a rule on the write path that also records it in the
// audit trail in the same transaction.
//
// It also serves SMART on FHIR discovery (.well-known/smart-configuration,
// CapabilityStatement.rest.security) and mounts the configured token
// issuer. The API's routes reach it through a small interface of their own.
package access

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Searcher parses searches and extracts index values (search.Registry).
// Granular scopes on writes and matching one resource in memory need the
// *search.Registry itself, found by type assertion.
type Searcher interface {
	Extract(resourceType string, json []byte) ([]search.Entry, error)
	Parse(resourceType string, params url.Values, opts search.ParseOptions) (*search.Query, error)
}

// WriteAuditor records a write in its own transaction (audit.Trail).
type WriteAuditor interface {
	RecordWrite(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change, in auth.Interaction, op string) error
}

// Config is what the access layer needs: the security settings and the
// parts of the server it consults.
type Config struct {
	// Open turns authorisation off: every request is served as if made by
	// the server itself. Tests and local experiments only.
	Open bool
	// Verifier checks bearer tokens (auth.Verifier).
	Verifier TokenVerifier
	// SmartConfiguration is served at SmartPath.
	SmartConfiguration []byte
	// AuthServer, when not nil, is mounted at AuthPath without
	// authentication.
	AuthServer http.Handler
	AuthPath   string
	// CORSOrigins are announced in CapabilityStatement.rest.security.
	CORSOrigins []string
	// Writable lists the resource types with full REST interactions.
	Writable []string

	Store  store.Store
	Writes *write.Path
	Search Searcher
	// Audit records writes; required unless Open.
	Audit  WriteAuditor
	Logger *slog.Logger

	// PublicOperation reports whether the operation name is registered at
	// typ (and id) and authenticates its callers itself.
	PublicOperation func(typ, id, name string) bool
	// PublicPath, when set, reports whether a path outside the API is
	// served without a token (the pages of api.Site).
	PublicPath func(path string) bool
	// Limit applies the rate limit to a client key, answering the request
	// when it is exceeded; nil is no limit.
	Limit func(c *gin.Context, key string) bool
	// Fail answers a request with err as an OperationOutcome.
	Fail func(c *gin.Context, err error)
	// WriteJSON answers a request with a FHIR JSON body.
	WriteJSON func(c *gin.Context, status int, body []byte)
}

// Guard authenticates requests and authorises what they do.
type Guard struct {
	cfg    Config
	tokens *tokenCache // verified access tokens
}

// New returns a Guard and, unless cfg.Open, registers its authorisation
// rule for every writable type on cfg.Writes and makes it the write path's
// visibility.
func New(cfg Config) *Guard {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Guard{cfg: cfg, tokens: &tokenCache{entries: map[[32]byte]*auth.Principal{}, now: time.Now}}
	if cfg.Open {
		return g
	}
	for _, typ := range cfg.Writable {
		cfg.Writes.AddRule(typ, "access", g.authorizeWrite)
	}
	cfg.Writes.SetVisibility(g.visible)
	return g
}

// allow applies the rate limit, if any, to key.
func (g *Guard) allow(c *gin.Context, key string) bool {
	return g.cfg.Limit == nil || g.cfg.Limit(c, key)
}
