package adaptertest_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/signpost-fhir/signpost/adapters/adaptertest"
)

// TestNode: with the package installed in the peer's folder, Node gives
// the node binary; the test runs only where Node is installed.
func TestNode(t *testing.T) {
	want, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	dir := filepath.Join(t.TempDir(), "some-peer")
	if err := os.MkdirAll(filepath.Join(dir, "node_modules", "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node_modules", "pkg", "package.json"), []byte(`{"name":"pkg"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := adaptertest.Node(t, dir, "pkg"); got != want {
		t.Errorf("Node = %q, want %q", got, want)
	}
}

// recorder is a testing.TB that records a skip or a failure and ends
// the goroutine, as testing's do.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

// TestNodeWithoutThePackage: a package not installed skips the test,
// saying how to install it; under CI it fails it.
func TestNodeWithoutThePackage(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := filepath.Join(t.TempDir(), "some-peer")
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); adaptertest.Node(r, dir, "pkg") }()
		<-done
		want := "pkg is not installed: run `npm ci --prefix test/some-peer`"
		got := r.skipped
		if ci != "" {
			got = r.failed
		}
		if got != want {
			t.Errorf("CI=%q: skipped %q, failed %q; want %q", ci, r.skipped, r.failed, want)
		}
	}
}
