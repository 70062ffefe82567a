// Package app assembles a Signpost server from its parts: the one place
// that knows every package (store, search, validation, domain rules and
// operations, authorisation) and wires them together. cmd/signpost calls
// it to serve; tests call it to get the real server over a temporary data
// directory.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/notify"
	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/export"
	"github.com/signpost-fhir/signpost/domain/offer"
	"github.com/signpost-fhir/signpost/domain/publish"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/reminder"
	"github.com/signpost-fhir/signpost/domain/subscription"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/validation"
	"github.com/signpost-fhir/signpost/store"
)

// Config is the deployment's configuration, as serve's flags set it.
type Config struct {
	Addr         string        // listen address, used for the default base URL
	Data         string        // data directory
	Store        string        // the store URI (store.Config.URI): "sqlite" (default), "sqlite:DIR", "mongodb://…"; may carry credentials: log it only through store.Redact
	BaseURL      string        // public FHIR base including /fhir; default http://<Addr>/fhir
	Timezone     string        // default Europe/London
	MaxBodyBytes int64         // default 10 MB
	MaxCount     int           // the largest page a search or history answers (_count above it is cut); default 1000
	Reads        int           // FHIR reads (GET, HEAD) computing at once: 0 one fewer than the processors (at least one), negative no bound (api.Config.Reads)
	HoldFor      time.Duration // how long Appointment/$hold keeps slots; default 5 minutes
	OfferHoldFor time.Duration // how long an earlier-slot offer holds its slot; default offer.DefaultHoldFor (2 hours)
	Offers       bool          // make earlier-slot offers as slots free up (docs/offers.md); serve turns it on unless --offers=false
	Postcodes    string        // CSV file of postcode,latitude,longitude placing patients for $shortlist; "" for none
	Logger       *slog.Logger

	// Security. Without Issuer the embedded development authorisation
	// server runs under /auth (never with real patient data). With it,
	// Signpost still signs the tokens of $ubrn-access itself, as issuer
	// <root>/auth/ubrn (see auth.UBRNIssuer).
	Issuer      string    // external authorisation server (go-oidc discovery)
	Audience    string    // the aud tokens must name; default BaseURL
	CORSOrigins []string  // browser origins allowed to call the API
	TLS         bool      // served over TLS: send HSTS
	RateLimit   float64   // requests per second per client; 0: no limit
	Console     io.Writer // where the development server's banner with demo credentials goes; nil: nowhere
	// Open serves without authorisation or audit: tests and local
	// experiments only (logged loudly). apptest.New sets it unless Auth is set.
	Open bool
	Auth bool // apptest.New only: keep authorisation on
	// NoReindex opens the store without bringing its index up to date
	// when the search parameters changed (see App.Reindex): for signpost
	// reindex, which does it itself with progress.
	NoReindex bool
	// Adapters are the adapter instances to run (serve --adapters FILE,
	// read by adapters.Load); nil runs none.
	Adapters *adapters.File
	// Sites are pages served beside the API (api.Site), after those app
	// serves itself.
	Sites []api.Site
	// Reminders configures appointment reminders (serve --reminders
	// FILE, read by notify.Load); nil sends none.
	Reminders *notify.File
	// Subscriptions configures the delivery of Subscriptions.
	Subscriptions SubscriptionsConfig
	// Portal serves the web portal (package portal) at "/" (app/portal.go);
	// PortalClientID is its client id at the issuer (default "portal",
	// which the development server registers).
	Portal         bool
	PortalClientID string
	// OTLPEndpoint, when set, is the URL of an OpenTelemetry collector
	// (OTLP over HTTP) that receives the server's spans (tracing.go).
	OTLPEndpoint string
}

// App is an assembled server.
type App struct {
	Config Config
	// Store is the store the server reads and writes through: with an
	// audit database, the main store with AuditEvents read from Audits
	// (audit.Split).
	Store store.Store
	// Audits is the audit database (docs/audit.md): every AuditEvent is
	// read from there. nil when the main store keeps them (MongoDB, or a
	// server open without authorisation or audit).
	Audits    store.Store
	main      store.Store // the main store itself
	Writes    *write.Path
	Search    *search.Registry
	API       *api.Server
	Location  *time.Location
	Referral  *referral.Service    // referral rules and operations; tests may replace Referral.Tokens
	Directory *directory.Directory // directory rules (waiting times)
	Booking   *booking.Service     // booking rules and operations; releases expired holds in the background
	Offers    *offer.Service       // earlier-slot offers (app/offers.go)
	Auth      *devserver.Server    // the embedded development authorisation server; nil with an issuer or when open
	UBRN      *auth.UBRNIssuer     // with an issuer, Signpost's own issuer of $ubrn-access tokens; nil otherwise
	Adapters  *adapters.Set        // the adapter instances running (none without Config.Adapters)
	Export    *export.Service      // Bulk Data $export and its jobs (bulk.go)
	Publish   *publish.Service     // SMART Scheduling Links $bulk-publish (bulk.go)
	Reminders *Reminders           // appointment reminders; nil without Config.Reminders
	// Subscriptions matches changes to Subscriptions and builds their
	// notifications (app/subscriptions.go).
	Subscriptions *subscription.Service
	Metrics       *prometheus.Registry // this App's metrics (metrics.go; served by MetricsHandler)
	metrics       *metrics
	stop          func() // stops background work
	// stopTracing flushes and stops the span exporter (nil without
	// Config.OTLPEndpoint).
	stopTracing func(context.Context) error
}

// New opens the store in cfg.Data and assembles the server.
func New(cfg Config) (*App, error) {
	if cfg.Timezone == "" {
		cfg.Timezone = "Europe/London"
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone: %w", err)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://" + cfg.Addr + "/fhir"
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	postcodes, err := readPostcodes(cfg.Postcodes)
	if err != nil {
		return nil, err
	}
	types := conformance.Types()
	sds := conformance.StructureDefinitions()
	reg, err := search.NewRegistry(conformance.SearchParameters(), search.Options{
		StructureDefinitions: sds, Terminology: conformance.Terminology(),
		ResourceTypes: types.Writable, Location: loc, Base: cfg.BaseURL})
	if err != nil {
		return nil, err
	}
	val, err := validation.New(sds, conformance.Terminology())
	if err != nil {
		return nil, err
	}
	defs, err := api.NewDefinitions(conformance.All())
	if err != nil {
		return nil, err
	}
	st, err := openStore(cfg, reg)
	if err != nil {
		return nil, err
	}
	// undo releases what New started, in reverse, when a later step fails.
	undo := []func(){func() { st.Close() }}
	fail := func(err error) (*App, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	audits, routed, err := openAudits(cfg, st, reg)
	if err != nil {
		return fail(err)
	}
	served := st
	if audits != nil {
		undo = append(undo, func() { audits.Close() })
		served = routed
	}
	rp := write.New(served, reg)
	rp.SetOrder(RuleOrder())
	sec, dev, ubrn, err := security(cfg, st)
	if err != nil {
		return fail(err)
	}
	var mover *audit.Mover
	if audits != nil {
		mover = routed.Mover()
		sec.AuditStore, sec.AuditMover = audits, mover
	}
	signer, err := notificationSigner(cfg)
	if err != nil {
		return fail(err)
	}
	m := newMetrics()
	m.observeStore(st, audits)
	a := &App{Config: cfg, Store: served, Audits: audits, main: st, Writes: rp, Search: reg, Location: loc, Auth: dev, UBRN: ubrn, Metrics: m.reg, metrics: m}
	sites := a.sites(defs)
	if cfg.Portal {
		sites = append(sites[:len(sites):len(sites)], portalSite(cfg))
	}
	var middleware []gin.HandlerFunc
	if cfg.OTLPEndpoint != "" {
		if a.stopTracing, err = startTracing(context.Background(), cfg.OTLPEndpoint); err != nil {
			return fail(err)
		}
		undo = append(undo, func() { _ = a.stopTracing(context.Background()) })
		middleware = append(middleware, traceRequests)
	}
	srv := api.New(api.Config{BaseURL: cfg.BaseURL, MaxBodyBytes: cfg.MaxBodyBytes, MaxCount: cfg.MaxCount, Reads: cfg.Reads, Writable: types.Writable,
		ReadOnly: types.ReadOnly, SummaryElements: conformance.SummaryElements(), SupportedProfiles: supportedProfiles, Logger: cfg.Logger, Security: sec,
		Readiness: a.adapterReadiness, Metrics: m.reg, Sites: append([]api.Site{jwksSite(signer)}, sites...), Middleware: middleware}, rp, val, reg, defs)
	a.API = srv
	if !cfg.NoReindex {
		if err := a.updateIndex(context.Background()); err != nil {
			return fail(err)
		}
	}
	if mover != nil {
		// The records of writes not yet in the audit database (all of
		// them, the first time a data directory of an older release is
		// opened) are copied before the server answers.
		if err := catchUp(cfg.Logger, mover); err != nil {
			return fail(err)
		}
	}
	// Domain packages register their rules and operations here.
	a.Booking, err = booking.New(booking.Config{Data: cfg.Data, BaseURL: cfg.BaseURL, Location: loc, HoldFor: cfg.HoldFor,
		Logger: cfg.Logger, Validator: val, Observer: m}, rp, reg)
	if err != nil {
		return fail(err)
	}
	for _, op := range a.Booking.Operations() {
		srv.AddOperation(op)
	}
	a.Directory = directory.New(rp, reg, directory.Config{Location: loc})
	a.Directory.Register()
	if !cfg.NoReindex {
		// Waiting times kept inside the services by an older release
		// become derived values, once (see Directory.Adopt).
		n, err := a.Directory.Adopt(write.AsServer(context.Background()))
		if err != nil {
			return fail(fmt.Errorf("adopting waiting times: %w", err))
		}
		if n > 0 {
			cfg.Logger.Info("waiting times recomputed beside their services", "services", n)
		}
	}
	a.Referral = referral.New(rp, reg, referral.Config{Location: loc, Postcodes: postcodes})
	a.Referral.Register()
	a.Booking.Referrals = a.Referral // $find offers what a referral allows
	switch {                         // who signs $ubrn-access tokens
	case ubrn != nil:
		a.Referral.Tokens = ubrn
	case dev != nil:
		a.Referral.Tokens = dev
	}
	for _, op := range a.Referral.Operations() {
		srv.AddOperation(op)
	}
	stopBulk, err := a.startBulk(context.Background())
	if err != nil {
		return fail(err)
	}
	undo = append(undo, stopBulk)
	stopSubs, err := a.startSubscriptions(signer, types.Writable)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, stopSubs)
	reminder.RegisterRule(rp, reg) // pending reminders of cancelled or moved appointments are withdrawn
	if err := a.startReminders(); err != nil {
		return fail(fmt.Errorf("reminders: %w", err))
	}
	undo = append(undo, a.Reminders.close)
	if err := a.startOffers(); err != nil {
		return fail(err)
	}
	if err := a.startAdapters(); err != nil {
		return fail(err)
	}
	a.collectState()
	ctx, cancel := context.WithCancel(write.AsServer(context.Background()))
	done := make(chan struct{})
	go func() { // releases holds that expired, also while the server was down
		defer close(done)
		a.Booking.Run(ctx)
	}()
	a.stop = func() { cancel(); <-done; stopSubs(); stopBulk() }
	return a, nil
}

// Handler returns the server's HTTP handler.
func (a *App) Handler() http.Handler { return a.API.Handler() }

// Close stops background work and releases the store.
func (a *App) Close() error {
	if a.stop != nil {
		a.stop()
	}
	a.Reminders.close()
	if a.Adapters != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Adapters.Stop(ctx); err != nil {
			a.Config.Logger.Warn("stopping adapters", "error", err)
		}
	}
	a.API.Close() // stores the buffered audit records
	a.metrics.stopObserving(a.main)
	var err error
	if a.Audits != nil {
		err = a.Audits.Close()
	}
	if serr := a.Store.Close(); err == nil {
		err = serr
	}
	if a.stopTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if terr := a.stopTracing(ctx); terr != nil {
			a.Config.Logger.Warn("exporting the last spans", "error", terr)
		}
	}
	return err
}

// readPostcodes reads the deployment's postcode table, if it names one.
func readPostcodes(path string) (map[string]referral.LatLon, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pcs, err := referral.ReadPostcodes(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pcs, nil
}

// OpenStore opens the store cfg names, without the rest of the server (for
// tools such as signpost check).
func OpenStore(cfg Config) (store.Store, error) { return openStore(cfg, nil) }

// openStore opens cfg.Store (default "sqlite") through the backend
// registered for its scheme (app/backends.go decides which are built in).
func openStore(cfg Config, reg *search.Registry) (store.Store, error) {
	uri := cfg.Store
	if uri == "" {
		uri = "sqlite"
	}
	return store.Open(context.Background(), store.Config{URI: uri, Data: cfg.Data, Search: reg})
}
