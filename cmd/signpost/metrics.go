package main

import (
	"log/slog"
	"net/http"
	"time"
)

// metricsListenAddr resolves serve --metrics-addr: "" serves no metrics;
// an address without a host (":9464", or just "9464") listens on loopback
// only, 127.0.0.1, unlike Go's convention where it means every interface,
// so that metrics are never exposed by accident. To be scraped from
// another machine, name the interface (0.0.0.0:9464, or its address).
func metricsListenAddr(s string) (string, error) { return sideAddr("metrics-addr", s, false) }

// serveMetrics serves h (the App's metrics) at /metrics on a listener of
// its own at addr, apart from the FHIR API's; anything else there is 404.
// Stop it with Shutdown.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10}
	at, err := serveSide("metrics-addr", addr, hs, log)
	if err != nil {
		return nil, err
	}
	log.Info("metrics listening", "addr", at, "path", "/metrics")
	return hs, nil
}
