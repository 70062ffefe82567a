package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestPprofListenAddr: --pprof binds loopback only; any other address is
// refused with a message naming the rule.
func TestPprofListenAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: ""},
		{in: "6060", want: "127.0.0.1:6060"},
		{in: ":6060", want: "127.0.0.1:6060"},
		{in: "127.0.0.1:6060", want: "127.0.0.1:6060"},
		{in: "127.0.0.2:0", want: "127.0.0.2:0"},
		{in: "[::1]:6060", want: "[::1]:6060"},
		{in: "localhost:6060", want: "localhost:6060"},
		{in: "0.0.0.0:6060", bad: true},
		{in: "[::]:6060", bad: true},
		{in: "10.1.2.3:6060", bad: true},
		{in: "example.org:6060", bad: true},
		{in: "127.0.0.1:", bad: true},
		{in: "nonsense", bad: true},
	} {
		got, err := pprofListenAddr(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("pprofListenAddr(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("pprofListenAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestServePprof: the profiles' index answers on the loopback listener.
func TestServePprof(t *testing.T) {
	hs, addr, err := servePprof("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine") {
		t.Errorf("GET /debug/pprof/: %d %.200s", resp.StatusCode, b)
	}
}
