package api

// The security layer, as the routes see it: the Security configuration,
// the small interfaces through which handlers ask for authorisation
// (Authorizer) and the server flushes its audit trail (Auditor), and the
// wiring of access.Guard, audit.Trail and the harden middleware.

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/api/access"
	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/api/harden"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Security configures authentication, authorisation, audit and the
// hardening middleware. The zero value is not usable: set Open for a server
// without authorisation (tests and local experiments only), or a Verifier.
type Security struct {
	// Open turns authorisation and audit off: every request is served as
	// if made by the server itself. Tests and local experiments only.
	Open bool
	// Verifier checks bearer tokens (auth.Verifier).
	Verifier access.TokenVerifier
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
	// AuditStore, when set, is the audit database of the trail's read and
	// search records, and AuditMover copies the records of writes into it
	// (audit.Config.Store, audit.Split).
	AuditStore store.Store
	AuditMover *audit.Mover
}

// Authorizer is what the handlers ask the access layer (access.Guard):
// whether the caller may read an instance, its history or invoke an
// operation, may change a resource (before a PATCH is worked out), and how
// far its searches and the resources they include reach. Writes are
// authorised on the write path itself, whichever way they arrive.
type Authorizer interface {
	AuthorizeInstance(ctx context.Context, rd store.Reader, typ, id string, in auth.Interaction) error
	AuthorizeHistory(ctx context.Context, typ, id string) error
	AuthorizeOperation(ctx context.Context, op *operation.Operation, typ, id string) (context.Context, error)
	AuthorizeChange(ctx context.Context, tx *write.Tx, cur *fhir.Resource) error
	RestrictQuery(ctx context.Context, q *search.Query) error
	VisibleOnly(ctx context.Context, rs []*fhir.Resource) []*fhir.Resource
}

// Auditor is the buffered audit trail (audit.Trail).
type Auditor interface {
	Flush()
	Close()
}

var (
	_ Authorizer = (*access.Guard)(nil)
	_ Auditor    = (*audit.Trail)(nil)
)

// security is the assembled security layer.
type security struct {
	Authorizer
	audits Auditor // nil when open

	// Middleware, in the order Handler runs them: headers first, the
	// audit record around authentication.
	headers, audit, authenticate gin.HandlerFunc
	routes                       func(gin.IRoutes)     // SMART discovery, the mounted issuer
	capability                   func() map[string]any // CapabilityStatement.rest.security
}

// newSecurity assembles the security layer of a server with configuration
// cfg: the access guard (with its authorisation rule on every writable
// type of rp), the audit trail unless the server is open, the security
// headers and the rate limit. fail answers a refused request.
func newSecurity(cfg *Config, rp *write.Path, st store.Store, sr Searcher, log *slog.Logger, now func() time.Time,
	ops operations, fail func(*gin.Context, error)) security {
	sec := &cfg.Security
	if !sec.Open && sec.AuthPath == "" {
		sec.AuthPath = "/auth"
	}
	var limiter *harden.Limiter
	if sec.RateLimit > 0 {
		limiter = harden.NewLimiter(sec.RateLimit, sec.RateBurst, fail)
	}
	var trail *audit.Trail
	if sec.Open {
		log.Warn("AUTHORISATION IS OFF: every request is served without a token and nothing is audited (tests and local experiments only)")
	} else {
		trail = audit.New(audit.Config{BaseURL: cfg.BaseURL, Writes: rp, Search: sr, Logger: log, Now: now,
			Flush: sec.AuditFlush, RequestID: func(c *gin.Context) string { return c.GetString(ctxRequestID) },
			Unaudited: []string{"/fhir/metadata", access.SmartPath}, Fail: fail,
			Store: sec.AuditStore, Mover: sec.AuditMover})
	}
	guard := access.New(access.Config{Open: sec.Open, Verifier: sec.Verifier, SmartConfiguration: sec.SmartConfiguration,
		AuthServer: sec.AuthServer, AuthPath: sec.AuthPath, CORSOrigins: sec.CORSOrigins, Writable: cfg.Writable,
		Store: st, Writes: rp, Search: sr, Audit: trail, Logger: log,
		PublicOperation: func(typ, id, name string) bool {
			op, _, ok := ops.at(typ, id, name)
			return ok && op.Public
		},
		PublicPath: func(path string) bool { return sites(cfg.Sites).at(path) != nil },
		Limit:      limiter.Allow, Fail: fail, WriteJSON: writeJSON})
	out := security{Authorizer: guard, authenticate: guard.Authenticate, routes: guard.Routes,
		capability: guard.CapabilitySecurity,
		headers: harden.Headers(harden.Config{CORSOrigins: sec.CORSOrigins, HSTS: sec.HSTS, AuthPath: sec.AuthPath,
			CSP: func(path string) string {
				if site := sites(cfg.Sites).at(path); site != nil {
					return site.CSP
				}
				return ""
			}})}
	if trail != nil {
		out.audits, out.audit = trail, trail.Middleware
	}
	return out
}

// exemptFromNegotiation lists paths that answer in their own format
// whatever Accept says: the SMART configuration (always JSON) and the
// development authorisation server.
func (sec *Security) exemptFromNegotiation(path string) bool {
	// Binary serves its native content; operations may answer other formats
	// (a report as CSV) and check _format themselves.
	if path == access.SmartPath || strings.HasPrefix(path, "/fhir/Binary") || strings.Contains(path, "/$") {
		return true
	}
	a := sec.AuthPath
	return sec.AuthServer != nil && (path == a || strings.HasPrefix(path, a+"/"))
}

// Index returns the index entries the server stores for a resource of
// type typ: the registry's, except that the audit trail keeps only those
// it is searched by (audit.Index). A reindex (app) uses it to store what
// the writes did.
func (s *Server) Index(typ string, body []byte) ([]search.Entry, error) {
	return audit.Index(s.search, typ, body)
}

// Flush stores the audit records of every request answered so far
// (reads, searches, refusals), waiting for those still in flight; tests
// and shutdown call it.
func (s *Server) Flush() {
	if s.sec.audits != nil {
		s.sec.audits.Flush()
	}
}

// Close stores the buffered audit records and stops the flusher: call it
// on graceful shutdown, after the HTTP server has stopped and before the
// store closes.
func (s *Server) Close() {
	if s.sec.audits != nil {
		s.sec.audits.Close()
	}
}
