// Package adaptertest is test support for the adapters' tests: the peers
// nobody on Signpost wrote (npm packages under test/<name>, run by Node)
// that they exchange messages with, and the certificates of their TLS
// connections. It is kept out of the signpost binary: only _test.go
// files import it. (A client of the real server is app/apptest.Client.)
package adaptertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
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

// SelfSigned makes a certificate for 127.0.0.1, valid for a day, for a
// server or a client, and its key, both PEM: being a CA of itself, the
// certificate is also the pool that trusts it.
func SelfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signpost test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// SelfSignedFiles writes a SelfSigned certificate and its key into dir,
// as cert.pem and key.pem, for settings that name files (the
// certificate is its own CA).
func SelfSignedFiles(t testing.TB, dir string) (cert, key string) {
	t.Helper()
	certPEM, keyPEM := SelfSigned(t)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// Peer is a running Node peer that reports what it sees as JSON lines on
// its standard output. It runs until the test ends (closing its standard
// input stops it).
type Peer struct {
	t      testing.TB
	lines  *bufio.Scanner
	stderr bytes.Buffer
}

// StartPeer runs node with script and args under ctx, for the rest of
// test t.
func StartPeer(t testing.TB, ctx context.Context, node, script string, args ...string) *Peer {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Peer{t: t, lines: bufio.NewScanner(stdout)}
	p.lines.Buffer(nil, 1<<20)
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	return p
}

// Next reads the peer's next line into v, failing the test if the peer
// stopped or the line is not JSON.
func (p *Peer) Next(v any) {
	p.t.Helper()
	if !p.lines.Scan() {
		p.t.Fatalf("the peer stopped: %v\n%s", p.lines.Err(), p.stderr.String())
	}
	if err := json.Unmarshal(p.lines.Bytes(), v); err != nil {
		p.t.Fatalf("%v: %s", err, p.lines.Bytes())
	}
}

// Stderr is what the peer wrote to its standard error so far.
func (p *Peer) Stderr() string { return p.stderr.String() }
