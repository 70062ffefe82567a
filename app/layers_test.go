package app_test

import (
	"os/exec"
	"strings"
	"testing"
)

// module is the import path every Signpost package starts with.
const module = "github.com/signpost-fhir/signpost/"

// layers are the arrows docs/ARCHITECTURE.md allows, from the top down: a
// package in a layer may import the packages of the layers listed for it
// (and its own subtree), nothing else of Signpost's. Packages made for
// tests (storetest, bookingtest, synth) follow the layer they sit in.
var layers = []struct {
	prefix string   // a package path under the module, and its subtree
	may    []string // prefixes it may import
}{
	{"cmd/", []string{"app", "api", "apiref", "adapters", "domain/", "auth", "store", "fhir", "conformance", "bench", "portal", "internal/"}},
	// The benchmark speaks plain HTTP to any FHIR server.
	{"bench", nil},
	{"app", []string{"api", "apiref", "adapters", "domain/", "auth", "store", "fhir", "conformance", "portal", "internal/"}},
	// Adapters (HL7 v2, GP Connect, notifications) act through the domain,
	// beside the API, never through its handlers.
	{"adapters", []string{"domain/", "auth", "store", "fhir", "conformance", "internal/"}},
	// Handlers stay generic: of the domain, the API knows only the write
	// path; the domain's operations reach it through app.
	{"api", []string{"domain/write", "auth", "store", "fhir", "conformance", "internal/"}},
	{"domain/", []string{"domain/", "auth", "store", "fhir", "conformance", "internal/"}},
	{"auth", []string{"fhir", "internal/"}},
	{"store", []string{"fhir", "conformance", "internal/"}},
	{"fhir", []string{"fhir", "conformance", "internal/"}},
	// The API reference generates its document from definitions app hands
	// it (the CapabilityStatement, OperationDefinitions), importing nothing.
	{"apiref", nil},
	{"conformance", nil},
	// Small parts of any layer (a bounded cache) that import nothing of
	// Signpost's.
	{"internal/", nil},
	// The web portal is a SMART app on the FHIR API: it imports nothing
	// of Signpost's but itself; app serves it as an api.Site.
	{"portal", []string{"portal"}},
}

// TestLayers fails when a package imports against the arrows of
// docs/ARCHITECTURE.md: api → domain → store → fhir, with auth and
// conformance beside, app wiring them and cmd on top.
func TestLayers(t *testing.T) {
	// The product's imports: tests (package x_test) may use anything to
	// stand up a real server.
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], module)
		if !ok {
			continue
		}
		rule := -1
		for i, l := range layers {
			if within(pkg, l.prefix) {
				rule = i
				break
			}
		}
		if rule < 0 {
			t.Errorf("package %s is in no layer of docs/ARCHITECTURE.md: add it to layers", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok || within(dep, layers[rule].prefix) {
				continue
			}
			allowed := false
			for _, p := range layers[rule].may {
				allowed = allowed || within(dep, p)
			}
			if !allowed {
				t.Errorf("%s imports %s: against the allowed arrows (docs/ARCHITECTURE.md)", pkg, dep)
			}
		}
	}
}

// within reports whether pkg is prefix or below it; a prefix ending in "/"
// names a subtree only.
func within(pkg, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(pkg, prefix)
	}
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// TestLayersCatch checks the check: imports against the arrows are caught.
func TestLayersCatch(t *testing.T) {
	for _, tc := range []struct {
		pkg, dep string
		ok       bool
	}{
		{"fhir/search", "store", false},
		{"store/sqlite", "domain/write", false},
		{"domain/booking", "api", false},
		{"api", "domain/booking", false},
		{"auth", "store", false},
		{"api", "domain/write", true},
		{"domain/referral", "domain/booking", true},
		{"store/storetest", "conformance", true},
		{"cmd/signpost", "app", true},
		{"adapters/hl7v2", "api", false},
		{"adapters/pas", "domain/booking", true},
	} {
		allowed := false
		for _, l := range layers {
			if within(tc.pkg, l.prefix) {
				allowed = within(tc.dep, l.prefix)
				for _, p := range l.may {
					allowed = allowed || within(tc.dep, p)
				}
				break
			}
		}
		if allowed != tc.ok {
			t.Errorf("%s → %s allowed = %v, want %v", tc.pkg, tc.dep, allowed, tc.ok)
		}
	}
}

// TestBinaryHasNoTestSupport: the signpost binary links no test support
// (package testing, httptest, the apptest, storetest and bookingtest
// helpers): those live in _test.go files and test-only packages.
func TestBinaryHasNoTestSupport(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../cmd/signpost").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == "testing", dep == "net/http/httptest",
			strings.HasSuffix(dep, "/apptest"), strings.HasSuffix(dep, "/authtest"), strings.HasSuffix(dep, "/storetest"), strings.HasSuffix(dep, "/bookingtest"):
			t.Errorf("the signpost binary links %s, test support", dep)
		}
	}
}
