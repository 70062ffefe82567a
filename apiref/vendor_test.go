package apiref_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestVendoredUI: the vendored swagger-ui (ui/dist) is the one
// ui/package-lock.json pins, untouched: VENDOR.json, written by go
// generate ./apiref, names the locked version and integrity, and every
// file in ui/dist is listed there with its SHA-256. After changing the
// version in ui/package.json and the lock, this fails until go generate is
// run again.
func TestVendoredUI(t *testing.T) {
	var manifest struct {
		Package, Version, Integrity string
		Files                       map[string]string
	}
	readJSON(t, "ui/dist/VENDOR.json", &manifest)
	var lock struct {
		Packages map[string]struct{ Version, Integrity string } `json:"packages"`
	}
	readJSON(t, "ui/package-lock.json", &lock)
	var pkg struct{ Dependencies map[string]string }
	readJSON(t, "ui/package.json", &pkg)

	locked, ok := lock.Packages["node_modules/"+manifest.Package]
	if manifest.Package != "swagger-ui-dist" || !ok {
		t.Fatalf("VENDOR.json names %q, which the lock file does not pin", manifest.Package)
	}
	if manifest.Version != locked.Version || manifest.Integrity != locked.Integrity {
		t.Errorf("vendored %s %s (%s), the lock pins %s (%s): run go generate ./apiref",
			manifest.Package, manifest.Version, manifest.Integrity, locked.Version, locked.Integrity)
	}
	if want := pkg.Dependencies[manifest.Package]; want != locked.Version {
		t.Errorf("package.json asks for %s %s, the lock pins %s: run npm install --package-lock-only --ignore-scripts --save-exact in apiref/ui",
			manifest.Package, want, locked.Version)
	}
	entries, err := os.ReadDir("ui/dist")
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, e := range entries {
		if e.Name() != "VENDOR.json" {
			onDisk = append(onDisk, e.Name())
		}
	}
	var listed []string
	for name, sum := range manifest.Files {
		listed = append(listed, name)
		b, err := os.ReadFile(filepath.Join("ui/dist", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("ui/dist/%s differs from the %s %s file go generate vendored: run go generate ./apiref", name, manifest.Package, manifest.Version)
		}
	}
	slices.Sort(onDisk)
	slices.Sort(listed)
	if !slices.Equal(onDisk, listed) {
		t.Errorf("ui/dist holds %v, VENDOR.json lists %v", onDisk, listed)
	}
	for _, need := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "oauth2-redirect.html", "oauth2-redirect.js", "LICENSE"} {
		if !slices.Contains(listed, need) {
			t.Errorf("%s is not vendored", need)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
