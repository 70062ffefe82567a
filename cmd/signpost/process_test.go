package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this package that run signpost as a separate process share
// the helpers below: build the binary, start it on a free 127.0.0.1 port
// over a data directory, and stop it with a signal.

// buildSignpost compiles this package once per test binary run, into a
// directory TestMain removes, and returns the binary's path: every test
// that runs signpost as a process shares it, so that a kill-and-restart
// cycle costs a start, never a build.
func buildSignpost(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the signpost binary; skipped with -short")
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "signpost-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		bin := filepath.Join(dir, "signpost")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built.bin = bin
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// built is the binary buildSignpost made.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// TestMain removes the binary buildSignpost built.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// process is a running signpost serve.
type process struct {
	cmd    *exec.Cmd
	base   string        // http://127.0.0.1:port
	log    *lockedBuffer // the server's stderr: its JSON log
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, once exited is closed
}

// startSignpost runs `signpost serve` over data with flags (e.g. "--open",
// "--demo") and waits until /healthz answers. The process is killed when
// the test ends if still running.
func startSignpost(t *testing.T, bin, data string, flags ...string) *process {
	t.Helper()
	addr := freeAddr(t)
	p := &process{base: "http://" + addr, log: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--data", data}, flags...)...)
	// Flags win over the environment; clear it so a developer's
	// SIGNPOST_* settings cannot leak in.
	p.cmd.Env = withoutSignpostEnv(os.Environ())
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting signpost: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("signpost output (%s):\n%s", addr, tail(p.log.String(), 6000))
		}
	})
	deadline := time.Now().Add(60 * time.Second) // --demo loads a county first
	for {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("signpost exited before serving: %v\n%s", p.err, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("signpost did not answer /healthz within 30s\n%s", p.log.String())
		}
	}
}

// signal sends sig to the process.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v to signpost: %v", sig, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *process) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("signpost did not exit within %v", d)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("waiting for signpost: %v", p.err)
	return -1
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func withoutSignpostEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !bytes.HasPrefix([]byte(kv), []byte("SIGNPOST_")) {
			out = append(out, kv)
		}
	}
	return out
}

// lockedBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor polls cond every 10ms until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
