package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/notify"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/store"
)

// addStoreFlags registers the flags every command that opens the data
// directory shares.
func addStoreFlags(fs *flag.FlagSet, cfg *app.Config) {
	fs.StringVar(&cfg.Data, "data", "./data", "data directory: the embedded database, keys and local state")
	fs.StringVar(&cfg.Store, "store", "sqlite", "store URI, by scheme: sqlite (a database file in --data), sqlite:DIR, or mongodb:// / mongodb+srv:// when built in;\n"+
		"pass a URI with credentials as SIGNPOST_STORE, never as this flag (a command line shows in ps)")
	fs.StringVar(&cfg.BaseURL, "base-url", "", "public FHIR base URL including /fhir (default http://<addr>/fhir)")
	fs.StringVar(&cfg.Timezone, "timezone", "Europe/London", "time zone for date-only and zone-less search values")
}

// gcPercent is the garbage collector's target for serve unless GOGC says
// otherwise: a server's garbage is short-lived (one request's rows and
// buffers), and collecting at 4× the live heap rather than 2× took the
// free-slot search from 0.57–0.66 to 0.49 ms of CPU a request at 1M slots
// (docs/PERFORMANCE.md) for a heap of tens of megabytes more.
const gcPercent = 400

// addAddrFlag registers --addr: serve's listen address, which also makes
// the default base URL; import and reindex take it too, so that they index
// local references under the base URL serve will use.
func addAddrFlag(fs *flag.FlagSet, cfg *app.Config) {
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address of serve (the default base URL is http://<addr>/fhir)")
}

func serve(args []string) error {
	// A write past the file-size limit (RLIMIT_FSIZE, set by an operator
	// or a container runtime to cap the data directory) raises SIGXFSZ,
	// whose default action kills the process. Ignored, the write fails with
	// EFBIG instead, which the store answers as a full disk: writes get 503
	// and reads go on (docs/operations.md, "Disk full"). Go's runtime does
	// not act on SIGXFSZ either, unless a handler is installed for it: this
	// makes it explicit, whatever the process inherited.
	signal.Ignore(syscall.SIGXFSZ)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	fs := newFlags("serve")
	var cfg app.Config
	addStoreFlags(fs, &cfg)
	addAddrFlag(fs, &cfg)
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body", 10<<20, "request body limit in bytes")
	fs.IntVar(&cfg.MaxCount, "max-count", 1000, "the largest page a search or history answers (a larger _count is cut to it)")
	fs.IntVar(&cfg.Reads, "reads", 0, "FHIR reads (GET, HEAD) computing at once, the others waiting their turn, so that the store's writers get a processor when they need one: 0 one fewer than the processors (at least one), -1 no bound")
	var origins, tlsCert, tlsKey string
	fs.StringVar(&cfg.Issuer, "issuer", "", "OAuth2/OIDC issuer of access tokens (default: the embedded DEVELOPMENT authorisation server under /auth)")
	fs.StringVar(&cfg.Audience, "audience", "", "audience access tokens must name (default the FHIR base URL)")
	fs.StringVar(&origins, "cors-origins", "", "comma-separated browser origins allowed to call the API (* for any)")
	fs.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	fs.StringVar(&tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.DurationVar(&cfg.HoldFor, "hold-for", 5*time.Minute, "how long Appointment/$hold and a pending Appointment keep their slots before they are released")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", 0, "requests per second allowed per client (429 beyond); 0: no limit")
	fs.DurationVar(&cfg.OfferHoldFor, "offer-hold", 0, "how long an earlier-slot offer holds its slot for the patient (default 2h; docs/offers.md)")
	fs.BoolVar(&cfg.Offers, "offers", true, "offer slots that free up to patients waiting for an earlier one (docs/offers.md); --offers=false records requests but makes no offers")
	fs.StringVar(&cfg.Postcodes, "postcodes", "", "CSV file of postcode,latitude,longitude: places patients without a geolocation for $shortlist")
	subAllow := fs.String("subscription-allow", "", "comma-separated address ranges (CIDR, e.g. 10.1.2.0/24) Subscription notifications may be sent to although not public; \"http\" in the list also accepts http endpoints (docs/subscriptions.md)")
	adapterFile := fs.String("adapters", "", "adapter instances to run (YAML or JSON; see docs/adapters.md)")
	reminderFile := fs.String("reminders", "", "appointment reminders: schedule and channels (YAML or JSON; see docs/reminders.md)")
	metricsFlag := fs.String("metrics-addr", "", "listen address of the Prometheus metrics (/metrics), apart from the API's; without a host (:9464) loopback only; default none (docs/operations.md)")
	pprofFlag := fs.String("pprof", "", "listen address of Go's profiles (/debug/pprof/), loopback only (127.0.0.1:6060); default none")
	fs.BoolVar(&cfg.Portal, "portal", true, "serve the web portal at / (docs/portal.md)")
	fs.StringVar(&cfg.PortalClientID, "portal-client-id", "portal", "the portal's client id at the issuer (a public client with PKCE and the redirect URI <root>/callback)")
	fs.StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", "", "URL of an OpenTelemetry collector (OTLP over HTTP, e.g. http://127.0.0.1:4318) to send traces to; default none (docs/operations.md)")
	fs.BoolVar(&cfg.Open, "open", false, "serve WITHOUT authorisation or audit: tests and local experiments only")
	demo := addDemoFlag(fs)
	demoPASOn := addDemoPASFlag(fs)
	demoGPOn := addDemoGPFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	metricsAddr, err := metricsListenAddr(*metricsFlag)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	pprofAddr, err := pprofListenAddr(*pprofFlag)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if (tlsCert == "") != (tlsKey == "") {
		return errors.New("serve: --tls-cert and --tls-key go together")
	}
	cfg.TLS = tlsCert != ""
	if cfg.TLS && cfg.BaseURL == "" {
		cfg.BaseURL = "https://" + cfg.Addr + "/fhir"
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.CORSOrigins = append(cfg.CORSOrigins, o)
		}
	}
	if cfg.Subscriptions, err = subscriptionFlag(*subAllow); err != nil {
		return fmt.Errorf("serve --subscription-allow: %w", err)
	}
	if *adapterFile != "" {
		var err error
		if cfg.Adapters, err = adapters.Load(*adapterFile); err != nil {
			return fmt.Errorf("serve --adapters: %w", err)
		}
	}
	if *reminderFile != "" {
		var err error
		if cfg.Reminders, err = notify.Load(*reminderFile); err != nil {
			return fmt.Errorf("serve --reminders: %w", err)
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(log) // libraries that log through slog's default (zitadel's routes) log as JSON too
	cfg.Logger = log
	cfg.Console = os.Stdout // the development server's banner with demo credentials: for the operator, never in the JSON log on stderr
	var dp *demoPAS
	if *demo && *demoPASOn {
		var err error
		if dp, err = startDemoPAS(&cfg, os.Stdout); err != nil {
			return err
		}
		defer dp.Close() // after a.Close: the adapter stops first
	}
	var dg *demoGP
	if *demo && *demoGPOn {
		var err error
		if dg, err = startDemoGP(&cfg, os.Stdout); err != nil {
			return err
		}
		defer dg.Close()
	}
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if *demo {
		if err := loadDemo(context.Background(), a, os.Stdout); err != nil {
			return err
		}
		if dp != nil {
			if err := dp.run(context.Background(), a); err != nil {
				return err
			}
		}
		if dg != nil {
			if err := dg.run(context.Background(), a); err != nil {
				return err
			}
		}
	} else if err := addDemoPostcodes(context.Background(), a); err != nil { // a demo county loaded before
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	log.Info("signpost listening", "addr", ln.Addr().String(), "base_url", a.Config.BaseURL, "data", cfg.Data, "store", store.Redact(cfg.Store))
	if metricsAddr != "" {
		ms, err := serveMetrics(metricsAddr, a.MetricsHandler(), log)
		if err != nil {
			ln.Close()
			return err
		}
		defer ms.Close() // after the API's shutdown: its last requests are counted
	}

	if pprofAddr != "" {
		ps, _, err := servePprof(pprofAddr, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer ps.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if cfg.TLS {
			hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			errc <- hs.ServeTLS(ln, tlsCert, tlsKey)
			return
		}
		errc <- hs.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// subscriptionFlag reads --subscription-allow: address ranges (a bare
// address is a range of one) and "http".
func subscriptionFlag(v string) (app.SubscriptionsConfig, error) {
	var c app.SubscriptionsConfig
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "http":
			c.AllowHTTP = true
		default:
			p, err := netip.ParsePrefix(f)
			if err != nil {
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return c, fmt.Errorf("%q is neither an address range (CIDR) nor an address nor \"http\"", f)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			c.Allow = append(c.Allow, p.Masked())
		}
	}
	return c, nil
}
