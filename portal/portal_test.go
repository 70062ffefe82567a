package portal_test

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/portal"
	"github.com/signpost-fhir/signpost/portal/internal/vendored"
)

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestPortalServed: through the real server with authorisation on, GET /
// answers the portal's page under its own policy, with the configuration
// filled in; the portal's routes load the same page; every asset the page,
// the stylesheets and the scripts refer to (the router's page modules
// included) is served with its type; what is not there is 404 and only
// GET and HEAD are answered.
func TestPortalServed(t *testing.T) {
	_, ts := apptest.New(t, app.Config{Auth: true, Portal: true})
	resp, page := get(t, ts.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != wantCSP {
		t.Errorf("CSP %q, want %q", got, wantCSP)
	}
	for _, want := range []string{`<meta name="signpost-fhir-base" content="/fhir">`, `<meta name="signpost-client-id" content="portal">`,
		`<meta name="signpost-audience" content="` + ts.URL + `/fhir">`} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, p := range []string{"/referrals/abc", "/callback", "/holds/x"} {
		if r, b := get(t, ts.URL+p); r.StatusCode != 200 || !bytes.Equal(b, page) {
			t.Errorf("GET %s: %d, not the portal's page", p, r.StatusCode)
		}
	}

	// Every asset referred to, followed through stylesheets and scripts.
	types := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".ico": "image/", ".png": "image/png"}
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"|url\((/assets/[^)]+)\)|(?:import|from)\s*\(?\s*'(\.{1,2}/[^']+\.js)'`)
	routed := regexp.MustCompile(`\['[^']*', '([a-z-]+)', (?:true|false)\]`)
	todo := []string{"/"}
	seen := map[string]bool{}
	for len(todo) > 0 {
		u := todo[0]
		todo = todo[1:]
		if seen[u] {
			continue
		}
		seen[u] = true
		r, b := get(t, ts.URL+u)
		if r.StatusCode != 200 {
			t.Errorf("GET %s: %d", u, r.StatusCode)
			continue
		}
		if ext := filepath.Ext(u); ext != "" && !strings.HasPrefix(r.Header.Get("Content-Type"), types[ext]) {
			t.Errorf("GET %s: Content-Type %q", u, r.Header.Get("Content-Type"))
		}
		dir := u[:strings.LastIndex(u, "/")+1]
		for _, m := range refs.FindAllSubmatch(b, -1) {
			switch {
			case len(m[1]) > 0:
				todo = append(todo, string(m[1]))
			case len(m[2]) > 0:
				todo = append(todo, string(m[2]))
			case len(m[3]) > 0:
				todo = append(todo, filepath.Clean(dir+string(m[3])))
			}
		}
		if strings.HasSuffix(u, "/router.js") {
			for _, m := range routed.FindAllSubmatch(b, -1) {
				todo = append(todo, "/assets/js/pages/"+string(m[1])+".js")
			}
		}
	}
	for _, want := range []string{"/assets/js/main.js", "/assets/js/pages/calendar.js", "/assets/vendor/nhsuk-frontend.min.js", "/assets/images/nhsuk-icon-cross.svg"} {
		if !seen[want] {
			t.Errorf("%s was not reached from the page", want)
		}
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/assets/js/nothing.js", 404}, {"GET", "/assets/index.html", 404}, {"GET", "/robots.txt", 404},
		{"GET", "/assets/js", 404}, {"POST", "/", 405}, {"HEAD", "/", 200}, {"GET", "/favicon.ico", 200},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, r.StatusCode, tc.status)
		}
	}
	// The API keeps its own policy and its authentication.
	if r, _ := get(t, ts.URL+"/fhir/Patient"); r.StatusCode != 401 || r.Header.Get("Content-Security-Policy") == wantCSP {
		t.Errorf("/fhir/Patient: %d, CSP %q", r.StatusCode, r.Header.Get("Content-Security-Policy"))
	}
}

// TestNoInlineCode: the page has no inline script, style or event
// handler (the policy would refuse them), and the scripts never turn
// text into markup.
func TestNoInlineCode(t *testing.T) {
	root := portal.Assets()
	page, err := fs.ReadFile(root, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`<style`, `\sstyle=`, `\son[a-z]+=`} {
		if regexp.MustCompile(re).Match(page) {
			t.Errorf("index.html matches %s", re)
		}
	}
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAll(page, -1) {
		if !bytes.Contains(m, []byte(`src="/assets/`)) {
			t.Errorf("index.html has an inline script: %s", m)
		}
	}
	err = fs.WalkDir(root, "js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("%s uses %s", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCSP: an external issuer's origin (not its path) is added to
// connect-src, nothing else changes.
func TestCSP(t *testing.T) {
	if got := portal.CSP(portal.Config{}); got != wantCSP {
		t.Errorf("CSP = %q", got)
	}
	got := portal.CSP(portal.Config{ConnectSources: []string{"https://login.example.org/realms/nhs", "not a url"}})
	if want := strings.Replace(wantCSP, "connect-src 'self'", "connect-src 'self' https://login.example.org", 1); got != want {
		t.Errorf("CSP = %q, want %q", got, want)
	}
}

// TestVendored: the committed copy of the NHS.UK frontend is what
// "go generate ./portal" makes from test/portal/node_modules (skipped
// before `npm ci --prefix test/portal`).
func TestVendored(t *testing.T) {
	nm := filepath.Join("..", "test", "portal", "node_modules")
	if _, err := os.Stat(filepath.Join(nm, "nhsuk-frontend", "package.json")); err != nil {
		t.Skip("nhsuk-frontend is not installed: run `npm ci --prefix test/portal`")
	}
	files, err := vendored.Files(nm)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("assets", filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("assets/%s is not current (%v): run `npm ci --prefix test/portal && go generate ./portal`", name, err)
		}
	}
	// Nothing vendored that the generator no longer makes.
	for _, dir := range []string{"vendor", "images"} {
		entries, _ := os.ReadDir(filepath.Join("assets", dir))
		for _, e := range entries {
			if _, ok := files[dir+"/"+e.Name()]; !ok {
				t.Errorf("assets/%s/%s is not made by the generator", dir, e.Name())
			}
		}
	}
}
