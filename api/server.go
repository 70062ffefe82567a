// Package api is Signpost's FHIR REST layer on gin: generic routes for every
// served resource type (never a route per type), content negotiation,
// request limits, Bundle assembly and paging links, and the one place where
// errors become OperationOutcomes.
//
// Handlers parse the request and hand off: validation and index extraction
// to fhir/validation and fhir/search, domain rules (booking, referrals) to
// the Rules registered for a resource type, persistence to a store.Store.
//
// Security lives beside it, each concern in a package of its own behind a
// small interface the handlers define (security.go): api/access
// authenticates callers and decides what they may read, search, invoke and
// write (Authorizer); api/audit keeps the audit trail (Auditor); api/harden
// sets the security headers and CORS and limits the rate of requests.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signpost-fhir/signpost/api/admission"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Validator checks a resource's JSON against the FHIR definitions.
type Validator interface {
	Validate(raw []byte) []fhir.Issue
}

// Searcher parses search parameters and extracts index values
// (search.Registry).
type Searcher interface {
	Extract(resourceType string, json []byte) ([]search.Entry, error)
	// Targets gives what a page of resources points at, for _include.
	Targets(resourceType string, bodies [][]byte, param, target string) ([]search.Ref, error)
	Parse(resourceType string, params url.Values, opts search.ParseOptions) (*search.Query, error)
	// Params lists the parameters of a type, for the CapabilityStatement.
	Params(resourceType string) []*search.Param
	// DerivedExtensions lists the urls of the server-owned extensions
	// parameters of a type are derived from, which are kept beside the
	// resources and added when they are served (see Server.served).
	DerivedExtensions(resourceType string) []string
}

// Config is what the API needs to know about its deployment.
type Config struct {
	BaseURL      string        // public FHIR base, e.g. https://signpost.example.org/fhir
	MaxBodyBytes int64         // request body limit (default 10 MB)
	MaxCount     int           // the largest page of a search or history (default 1000): a larger _count is cut to it
	Timeout      time.Duration // per-request deadline (default 30 s)
	// Reads bounds the FHIR GET and HEAD requests that compute at once
	// (the others wait their turn, within Timeout; see package
	// admission): 0 means one fewer than the processors (GOMAXPROCS) and
	// at least one, a negative value no bound.
	Reads    int
	KeysFor  time.Duration // how long an Idempotency-Key is remembered (default 24 hours)
	Writable []string      // resource types with full REST interactions
	ReadOnly []string      // resource types served from Definitions
	// SummaryElements lists per type the elements _summary=true keeps.
	SummaryElements map[string][]string
	// SupportedProfiles lists per type the profiles the CapabilityStatement
	// says the server supports (supportedProfile), e.g. the Backport IG's
	// topic-based Subscription.
	SupportedProfiles map[string][]string
	Logger            *slog.Logger
	// Security configures authorisation, audit and hardening (security.go).
	Security Security
	// Readiness, when set, returns lines /readyz adds to its body after
	// "ready", such as the adapter instances' states. They inform; they
	// never withdraw readiness (a PAS that is down is not an outage of the
	// API). /readyz needs no token: the lines must not carry patient data
	// or secrets.
	Readiness func(ctx context.Context) []string
	// Metrics, when set, is the registry the server's metrics join
	// (metrics.go): its requests and the audit queue. One registry per
	// Server: registering a second Server's metrics in it panics.
	Metrics prometheus.Registerer
	// Sites are the pages served beside the API (sites.go): the portal,
	// the API reference.
	Sites []Site
	// Middleware runs on every request, after the metrics and before
	// everything else (request id, security, audit, the handlers): the
	// deployment's own instrumentation (app's tracing). gin's route
	// pattern (FullPath) is known when it runs.
	Middleware []gin.HandlerFunc
}

// Server serves the FHIR REST API.
type Server struct {
	cfg         Config
	repo        *write.Path
	store       store.Store
	validator   Validator
	search      Searcher
	definitions *Definitions
	ops         operations
	log         *slog.Logger
	now         func() time.Time

	resp    responder    // errors as OperationOutcomes; generic middleware
	sec     security     // authentication, authorisation, audit, hardening
	metrics *httpMetrics // nil without Config.Metrics
}

// New returns a Server writing through rp. Operations are added with
// AddOperation before Handler is called.
func New(cfg Config, rp *write.Path, v Validator, s Searcher, defs *Definitions) *Server {
	if cfg.MaxCount <= 0 {
		cfg.MaxCount = 1000
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.KeysFor <= 0 {
		cfg.KeysFor = 24 * time.Hour
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	cfg.Sites = newSites(cfg.Sites)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	srv := &Server{cfg: cfg, repo: rp, store: rp.Store(), validator: v, search: s, definitions: defs,
		ops: operations{}, log: cfg.Logger, now: time.Now}
	srv.resp = responder{cfg: &srv.cfg, log: srv.log}
	srv.addBuiltinOperations()
	srv.sec = newSecurity(&srv.cfg, rp, srv.store, srv.search, srv.log, srv.now, srv.ops, srv.resp.fail)
	if cfg.Metrics != nil {
		srv.metrics = newHTTPMetrics(cfg.Metrics, srv.sec.audits)
	}
	return srv
}

func (cfg *Config) writable(typ string) bool { return slices.Contains(cfg.Writable, typ) }
func (cfg *Config) readOnly(typ string) bool { return slices.Contains(cfg.ReadOnly, typ) }

// Handler returns the HTTP handler: /fhir/… plus /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = false
	r.RedirectTrailingSlash = false
	r.ContextWithFallback = true
	if s.metrics != nil { // first: it times and counts what the rest do
		r.Use(s.metrics.observe)
	}
	r.Use(s.cfg.Middleware...)
	r.Use(requestID, s.sec.headers, s.resp.logRequests, s.resp.recover, s.resp.limits)
	if s.sec.audit != nil {
		r.Use(s.sec.audit)
	}
	r.Use(s.sec.authenticate)
	r.Use(s.idempotency)
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/readyz", s.ready)
	s.sec.routes(r)

	f := r.Group("/fhir")
	if s.cfg.Reads >= 0 { // FHIR reads take turns; /healthz, /readyz and the sites never wait
		f.Use(admission.New(s.cfg.Reads).Middleware(s.resp.fail))
	}
	f.GET("/metadata", s.handle(s.metadata))
	f.GET("", s.handle(s.systemSearch))
	f.POST("", s.handle(s.bundle))
	f.POST("/", s.handle(s.bundle))
	f.GET("/_history", s.handle(s.history))
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		f.Handle(m, "/:type", s.handle(s.typeLevel))
		f.Handle(m, "/:type/:id", s.handle(s.instanceLevel))
		f.Handle(m, "/:type/:id/:op", s.handle(s.instanceOp))
	}
	f.GET("/:type/:id/_history/:vid", s.handle(s.vread))
	f.HEAD("/:type/:id", s.handle(s.instanceLevel)) // a read whose body net/http discards
	f.HEAD("/:type/:id/_history/:vid", s.handle(s.vread))
	r.NoRoute(s.handle(func(c *gin.Context) error {
		if site := sites(s.cfg.Sites).at(c.Request.URL.Path); site != nil {
			c.Status(http.StatusOK) // gin answers 404 unless the site says otherwise
			site.Handler.ServeHTTP(c.Writer, c.Request)
			return nil
		}
		return fhir.Errorf(fhir.NotFound, "not-found", "", "%s %s is not a FHIR endpoint of this server", c.Request.Method, c.Request.URL.Path)
	}))
	return r
}

// handle adapts a handler that returns an error; the error becomes an
// OperationOutcome response.
func (s *Server) handle(h func(*gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			s.resp.fail(c, err)
		}
	}
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.History(ctx, store.HistoryQuery{Count: 1}); err != nil {
		c.String(http.StatusServiceUnavailable, "store unavailable")
		return
	}
	body := "ready"
	if s.cfg.Readiness != nil {
		for _, line := range s.cfg.Readiness(ctx) {
			body += "\n" + line
		}
	}
	c.String(http.StatusOK, body)
}

// typeLevel serves /fhir/:type: search, create, conditional update and
// delete, type operations and _history, and /fhir/$op.
func (s *Server) typeLevel(c *gin.Context) error {
	typ := c.Param("type")
	if strings.HasPrefix(typ, "$") {
		return s.operation(c, "", "", typ[1:])
	}
	if err := s.cfg.checkType(typ); err != nil {
		return err
	}
	switch c.Request.Method {
	case http.MethodGet:
		return s.searchType(c, typ)
	case http.MethodPost:
		return s.create(c, typ)
	case http.MethodPut:
		return s.conditionalUpdate(c, typ)
	case http.MethodDelete:
		return s.conditionalDelete(c, typ)
	case http.MethodPatch:
		return s.conditionalPatch(c, typ)
	}
	return notSupported(c)
}

// instanceLevel serves /fhir/:type/:id, where :id may also be _history,
// _search or $op at type level.
func (s *Server) instanceLevel(c *gin.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := s.cfg.checkType(typ); err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(id, "$"):
		return s.operation(c, typ, "", id[1:])
	case id == "_history" && c.Request.Method == http.MethodGet:
		return s.history(c)
	case id == "_search" && c.Request.Method == http.MethodPost:
		return s.searchType(c, typ)
	}
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead:
		return s.read(c, typ, id)
	case http.MethodPut:
		return s.update(c, typ, id)
	case http.MethodDelete:
		return s.delete(c, typ, id)
	case http.MethodPatch:
		return s.patch(c, typ, id)
	}
	return notSupported(c)
}

// instanceOp serves /fhir/:type/:id/_history and /fhir/:type/:id/$op.
func (s *Server) instanceOp(c *gin.Context) error {
	typ, id, op := c.Param("type"), c.Param("id"), c.Param("op")
	if err := s.cfg.checkType(typ); err != nil {
		return err
	}
	switch {
	case op == "_history" && c.Request.Method == http.MethodGet:
		return s.history(c)
	case strings.HasPrefix(op, "$"):
		return s.operation(c, typ, id, op[1:])
	}
	return notSupported(c)
}

// checkType refuses a type the server does not serve.
func (cfg *Config) checkType(typ string) error {
	if cfg.writable(typ) || cfg.readOnly(typ) {
		return nil
	}
	return fhir.Errorf(fhir.NotFound, "not-supported", "", "resource type %q is not supported by this server", typ)
}

func notSupported(c *gin.Context) error {
	return fhir.Errorf(fhir.NotSupported, "not-supported", "", "%s %s is not a supported interaction", c.Request.Method, c.Request.URL.Path)
}
