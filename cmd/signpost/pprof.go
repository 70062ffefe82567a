package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// pprofListenAddr checks serve's --pprof address: profiles show the
// server's internals (and the heap holds tokens and patients' data), so it
// must be a loopback address; a bare port (6060 or :6060) means
// 127.0.0.1. "" is no profiling.
func pprofListenAddr(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if _, err := strconv.ParseUint(s, 10, 16); err == nil {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("--pprof %q: %w", s, err)
	}
	if port == "" {
		return "", fmt.Errorf("--pprof %q: no port", s)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case host == "localhost":
	case ip == nil || !ip.IsLoopback():
		return "", fmt.Errorf("--pprof %q: profiles are served on a loopback address only (127.0.0.1, ::1 or localhost)", s)
	}
	return net.JoinHostPort(host, port), nil
}

// servePprof serves Go's profiles (net/http/pprof: /debug/pprof/…) on a
// listener of its own at addr, for `go tool pprof`, and returns the
// address it listens on. Stop it with Close.
func servePprof(addr string, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace answers after its seconds.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10}
	log.Warn("pprof listening: profiling endpoints are on", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener failed", "error", err)
		}
	}()
	return hs, ln.Addr().String(), nil
}
