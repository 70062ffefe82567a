package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetricsListenAddr: an address without a host listens on loopback
// only; a named host is kept; nonsense is refused.
func TestMetricsListenAddr(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{":9464", "127.0.0.1:9464", true},
		{"9464", "127.0.0.1:9464", true},
		{"127.0.0.1:9464", "127.0.0.1:9464", true},
		{"0.0.0.0:9464", "0.0.0.0:9464", true},
		{"[::1]:9464", "[::1]:9464", true},
		{"localhost:0", "localhost:0", true},
		{"127.0.0.1", "", false},
		{"127.0.0.1:", "", false},
		{"a:b:c", "", false},
	} {
		got, err := metricsListenAddr(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("metricsListenAddr(%q) = %q, %v; want %q, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestServeMetrics runs signpost serve --metrics-addr: the metrics are on
// their own listener (only /metrics there), and not on the FHIR one.
func TestServeMetrics(t *testing.T) {
	bin := buildSignpost(t)
	maddr := freeAddr(t)
	p := startSignpost(t, bin, t.TempDir(), "--open", "--metrics-addr", maddr)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := get(p.base + "/fhir/metadata"); st != http.StatusOK {
		t.Fatalf("metadata: %d", st)
	}
	for _, c := range []struct {
		url      string
		status   int
		contains []string
		lacks    []string
	}{
		{"http://" + maddr + "/metrics", http.StatusOK,
			[]string{`signpost_http_request_duration_seconds_count{method="GET",route="/fhir/metadata",status="200"} 1`,
				"go_goroutines", "process_cpu_seconds_total", "signpost_bookings_total 0"}, nil},
		{"http://" + maddr + "/fhir/metadata", http.StatusNotFound, nil, []string{"CapabilityStatement"}},
		// The FHIR port never serves the metrics: its /metrics is the
		// portal's page (the portal answers every path outside /fhir).
		{p.base + "/metrics", http.StatusOK, []string{"<html"}, []string{"signpost_", "go_goroutines"}},
	} {
		st, body := get(c.url)
		// A request is counted once its handler has returned, which may
		// be just after its client has the answer: look again briefly.
		for deadline := time.Now().Add(5 * time.Second); st == c.status && !containsAll(body, c.contains) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			st, body = get(c.url)
		}
		if st != c.status {
			t.Errorf("GET %s: %d, want %d", c.url, st, c.status)
		}
		for _, s := range c.contains {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s: no %q in\n%.2000s", c.url, s, body)
			}
		}
		for _, s := range c.lacks {
			if strings.Contains(body, s) {
				t.Errorf("GET %s: %q in the answer", c.url, s)
			}
		}
	}
}

// containsAll reports whether body contains every string of want.
func containsAll(body string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(body, w) {
			return false
		}
	}
	return true
}
