// Package adaptertest is test support for the adapters' tests: the peers
// nobody on Signpost wrote (npm packages under test/<name>, run by Node)
// that they exchange messages with. It is kept out of the signpost
// binary: only _test.go files import it.
package adaptertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Node returns the node binary for a test of the Node peer in dir (a
// folder test/<name> with a package.json, given from the test's package),
// after checking that npm package pkg is installed there: without Node
// the test is skipped; without the package it is skipped too, but fails
// under CI (CI set), whose .ci/run installs it.
func Node(t testing.TB, dir, pkg string) string {
	t.Helper()
	install := "`npm ci --prefix test/" + filepath.Base(dir) + "`"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: this test needs Node 18+ and " + install)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
		msg := pkg + " is not installed: run " + install
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}
