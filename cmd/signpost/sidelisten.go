package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
)

// sideAddr resolves the address of a listener beside the API's (--flag s):
// "" is none; a bare port (9464, :9464) listens on loopback only,
// 127.0.0.1, unlike Go's convention where it means every interface, so
// that nothing is exposed by accident. With loopbackOnly any other host
// than a loopback one is refused.
func sideAddr(flag, s string, loopbackOnly bool) (string, error) {
	if s == "" {
		return "", nil
	}
	if _, err := strconv.ParseUint(s, 10, 16); err == nil {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("--%s %q: %w", flag, s, err)
	}
	if port == "" {
		return "", fmt.Errorf("--%s %q: no port", flag, s)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case !loopbackOnly, host == "localhost":
	case ip == nil || !ip.IsLoopback():
		return "", fmt.Errorf("--%s %q: served on a loopback address only (127.0.0.1, ::1 or localhost)", flag, s)
	}
	return net.JoinHostPort(host, port), nil
}

// serveSide listens at addr (--flag) and serves hs there until it is
// closed, logging a failure; it returns the address it listens on.
func serveSide(flag, addr string, hs *http.Server, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("listener failed", "flag", flag, "error", err)
		}
	}()
	return ln.Addr().String(), nil
}
