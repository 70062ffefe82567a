// Command vendorui vendors swagger-ui-dist into apiref/ui/dist: it installs
// the version apiref/ui/package-lock.json pins (npm ci, without install
// scripts, in a temporary copy of apiref/ui so that no node_modules is left
// in the tree), copies the files the API reference serves, and records
// them in dist/VENDOR.json (package, version, lock integrity, each file's
// SHA-256), which apiref's TestVendoredUI checks against the lock file and
// the files.
//
// Run it from the apiref directory, as go generate ./apiref does:
//
//	go generate ./apiref
//
// To move to another swagger-ui-dist version, change it in
// apiref/ui/package.json, run npm install --package-lock-only
// --ignore-scripts --save-exact in apiref/ui, then go generate ./apiref.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// files are what the API reference serves of swagger-ui-dist: the bundle,
// its stylesheet, the OAuth 2 redirect page (its script in a file of its
// own, so the CSP needs no inline script), the icons and the licences.
var files = []string{
	"swagger-ui-bundle.js",
	"swagger-ui-bundle.js.LICENSE.txt",
	"swagger-ui.css",
	"oauth2-redirect.html",
	"oauth2-redirect.js",
	"favicon-16x16.png",
	"favicon-32x32.png",
	"LICENSE",
	"NOTICE",
}

// Manifest is dist/VENDOR.json.
type Manifest struct {
	Package   string            `json:"package"`
	Version   string            `json:"version"`
	Integrity string            `json:"integrity"`
	Files     map[string]string `json:"files"` // name → SHA-256, hex
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("vendorui: ")
	if err := run("ui"); err != nil {
		log.Fatal(err)
	}
}

func run(ui string) error {
	tmp, err := os.MkdirTemp("", "apiref-ui-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		if err := copyFile(filepath.Join(ui, f), filepath.Join(tmp, f)); err != nil {
			return err
		}
	}
	cmd := exec.Command("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir, cmd.Stdout, cmd.Stderr = tmp, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci: %w", err)
	}
	var lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(ui, "package-lock.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return fmt.Errorf("package-lock.json: %w", err)
	}
	pkg, ok := lock.Packages["node_modules/swagger-ui-dist"]
	if !ok {
		return fmt.Errorf("package-lock.json pins no swagger-ui-dist")
	}
	m := Manifest{Package: "swagger-ui-dist", Version: pkg.Version, Integrity: pkg.Integrity, Files: map[string]string{}}
	dist := filepath.Join(ui, "dist")
	if err := os.RemoveAll(dist); err != nil {
		return err
	}
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return err
	}
	src := filepath.Join(tmp, "node_modules", "swagger-ui-dist")
	sort.Strings(files)
	for _, f := range files {
		if err := copyFile(filepath.Join(src, f), filepath.Join(dist, f)); err != nil {
			return err
		}
		sum, err := fileSum(filepath.Join(dist, f))
		if err != nil {
			return err
		}
		m.Files[f] = sum
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dist, "VENDOR.json"), append(out, '\n'), 0o644)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileSum(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
