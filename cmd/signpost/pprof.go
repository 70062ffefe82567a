package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofListenAddr checks serve's --pprof address: profiles show the
// server's internals (and the heap holds tokens and patients' data), so it
// must be a loopback address; a bare port (6060 or :6060) means
// 127.0.0.1. "" is no profiling.
func pprofListenAddr(s string) (string, error) { return sideAddr("pprof", s, true) }

// servePprof serves Go's profiles (net/http/pprof: /debug/pprof/…) on a
// listener of its own at addr, for `go tool pprof`, and returns the
// address it listens on. Stop it with Close.
func servePprof(addr string, log *slog.Logger) (*http.Server, string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace answers after its seconds.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10}
	at, err := serveSide("pprof", addr, hs, log)
	if err != nil {
		return nil, "", err
	}
	log.Warn("pprof listening: profiling endpoints are on", "addr", at, "path", "/debug/pprof/")
	return hs, at, nil
}
