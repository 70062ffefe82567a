package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMFinishesInFlightRequests starts writes whose bodies arrive
// slowly, sends SIGTERM while they are half sent, and checks that the
// server stops taking new connections, still completes each in-flight
// write with 201, exits 0, and that the writes are there after a restart.
func TestSIGTERMFinishesInFlightRequests(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data, "--open")
	addr := strings.TrimPrefix(p.base, "http://")

	const slow = 3
	type result struct {
		status int
		id     string
		err    error
	}
	halfSent := make(chan struct{}, slow)
	finish := make(chan struct{})
	results := make(chan result, slow)
	families := make([]string, slow)
	for i := range slow {
		families[i] = fmt.Sprintf("Slow%d", i)
		go func() {
			status, id, err := slowCreate(addr, families[i], halfSent, finish)
			results <- result{status, id, err}
		}()
	}
	for range slow {
		select {
		case <-halfSent:
		case <-time.After(10 * time.Second):
			t.Fatal("the slow requests did not start")
		}
	}
	// Give the server a moment to read the headers and enter the handlers.
	time.Sleep(200 * time.Millisecond)
	p.signal(t, syscall.SIGTERM)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitFor(ctx, func() bool { return strings.Contains(p.log.String(), "shutting down") }); err != nil {
		t.Fatalf("no shutdown log line after SIGTERM: %v", err)
	}
	// Shutting down: new connections are refused, the process stays up.
	if err := waitFor(ctx, func() bool {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	}); err != nil {
		t.Errorf("the server still accepts new requests after SIGTERM: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case <-p.exited:
		t.Fatalf("signpost exited (%v) with %d requests still in flight", p.err, slow)
	default:
	}

	close(finish)
	var ids []string
	for range slow {
		r := <-results
		if r.err != nil || r.status != http.StatusCreated {
			t.Errorf("in-flight create: status %d, error %v; want 201", r.status, r.err)
			continue
		}
		ids = append(ids, r.id)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("signpost exited with %d after SIGTERM, want 0", code)
	}

	p = startSignpost(t, bin, data, "--open")
	for _, id := range ids {
		c := readCurrent(t, p.base, id)
		if c.version != 1 || !strings.Contains(string(c.body), `"Slow`) {
			t.Errorf("after restart Patient/%s is version %d: %s; want the slow create", id, c.version, c.body)
		}
	}
}

// slowCreate POSTs a Patient over a raw connection: the headers and half the
// body, a signal on halfSent, then the rest once finish is closed. It
// returns the status and the created id.
func slowCreate(addr, family string, halfSent chan<- struct{}, finish <-chan struct{}) (int, string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	body := `{"resourceType":"Patient","name":[{"family":"` + family + `"}]}`
	half := len(body) / 2
	head := "POST /fhir/Patient HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/fhir+json\r\n" +
		fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	if _, err := io.WriteString(conn, head+body[:half]); err != nil {
		return 0, "", err
	}
	halfSent <- struct{}{}
	<-finish
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		return 0, "", err
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	loc := resp.Header.Get("Location") // …/Patient/{id}/_history/1
	parts := strings.Split(loc, "/")
	if len(parts) < 4 {
		return resp.StatusCode, "", fmt.Errorf("Location %q is not …/Patient/id/_history/n", loc)
	}
	return resp.StatusCode, parts[len(parts)-3], nil
}
