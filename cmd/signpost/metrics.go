package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// metricsListenAddr resolves serve --metrics-addr: "" serves no metrics;
// an address without a host (":9464", or just "9464") listens on loopback
// only, 127.0.0.1, unlike Go's convention where it means every interface,
// so that metrics are never exposed by accident. To be scraped from
// another machine, name the interface (0.0.0.0:9464, or its address).
func metricsListenAddr(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if _, err := strconv.ParseUint(s, 10, 16); err == nil {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %q: %w", s, err)
	}
	if port == "" {
		return "", fmt.Errorf("--metrics-addr %q: no port", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// serveMetrics serves h (the App's metrics) at /metrics on a listener of
// its own at addr, apart from the FHIR API's; anything else there is 404.
// Stop it with Shutdown.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10}
	log.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "error", err)
		}
	}()
	return hs, nil
}
