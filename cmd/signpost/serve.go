package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir/repo"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/validation"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// config is what serve and the other commands share.
type config struct {
	addr, data, store, baseURL, timezone string
	maxBody                              int64
	loc                                  *time.Location
}

func (c *config) register(fs *flagSet) {
	fs.StringVar(&c.data, "data", "./data", "data directory: the embedded database, keys and local state")
	fs.StringVar(&c.store, "store", "sqlite", "store: sqlite (a database file in --data)")
	fs.StringVar(&c.baseURL, "base-url", "", "public FHIR base URL including /fhir (default http://<addr>/fhir)")
	fs.StringVar(&c.timezone, "timezone", "Europe/London", "time zone for date-only and zone-less search values")
}

type flagSet = flag.FlagSet

func serve(args []string) error {
	fs := newFlags("serve")
	var cfg config
	cfg.register(fs)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.Int64Var(&cfg.maxBody, "max-body", 10<<20, "request body limit in bytes")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	srv, st, err := build(&cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	log.Info("signpost listening", "addr", ln.Addr().String(), "base_url", cfg.baseURL, "data", cfg.data)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
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

// build opens the store and assembles the server from the embedded
// definitions.
func build(cfg *config, log *slog.Logger) (*api.Server, store.Store, error) {
	loc, err := time.LoadLocation(cfg.timezone)
	if err != nil {
		return nil, nil, fmt.Errorf("--timezone: %w", err)
	}
	cfg.loc = loc
	if cfg.baseURL == "" {
		cfg.baseURL = "http://" + cfg.addr + "/fhir"
	}
	cfg.baseURL = strings.TrimSuffix(cfg.baseURL, "/")
	types := conformance.Types()
	sds := conformance.StructureDefinitions()
	reg, err := search.NewRegistry(conformance.SearchParameters(), search.Options{
		StructureDefinitions: sds, Terminology: conformance.Terminology(),
		ResourceTypes: types.Writable, Location: loc, Base: cfg.baseURL})
	if err != nil {
		return nil, nil, err
	}
	val, err := validation.New(sds, conformance.Terminology())
	if err != nil {
		return nil, nil, err
	}
	defs, err := api.NewDefinitions(conformance.All())
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, nil, err
	}
	rp := repo.New(st, reg)
	srv := api.New(api.Config{BaseURL: cfg.baseURL, MaxBodyBytes: cfg.maxBody, Writable: types.Writable,
		ReadOnly: types.ReadOnly, Logger: log}, rp, val, reg, defs)
	return srv, st, nil
}

func openStore(cfg *config) (store.Store, error) {
	switch cfg.store {
	case "sqlite", "":
		return sqlite.Open(cfg.data)
	}
	return nil, fmt.Errorf("--store %q: only sqlite is available", cfg.store)
}
