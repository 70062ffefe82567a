package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// addStoreFlags registers the flags every command that opens the data
// directory shares.
func addStoreFlags(fs *flag.FlagSet, cfg *app.Config) {
	fs.StringVar(&cfg.Data, "data", "./data", "data directory: the embedded database, keys and local state")
	fs.StringVar(&cfg.Store, "store", "sqlite", "store: sqlite (a database file in --data)")
	fs.StringVar(&cfg.BaseURL, "base-url", "", "public FHIR base URL including /fhir (default http://<addr>/fhir)")
	fs.StringVar(&cfg.Timezone, "timezone", "Europe/London", "time zone for date-only and zone-less search values")
}

func serve(args []string) error {
	fs := newFlags("serve")
	var cfg app.Config
	addStoreFlags(fs, &cfg)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body", 10<<20, "request body limit in bytes")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg.Logger = log
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	defer a.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	log.Info("signpost listening", "addr", ln.Addr().String(), "base_url", a.Config.BaseURL, "data", cfg.Data)

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

