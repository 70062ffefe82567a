// Package portal is Signpost's web portal: the single point of access for
// patients (and, on the same foundation, call-centre agents, providers and
// commissioners), served by the same binary at "/" as an api.Site. It is a
// SMART app like any other: its pages are plain ES modules written by hand
// (assets/js, no build step) that sign in through the authorisation server
// the FHIR base announces (.well-known/smart-configuration) with the
// authorisation-code flow and PKCE, or exchange a UBRN, access code and
// birth date for a token ($ubrn-access), and then talk to Signpost only
// through its FHIR API.
//
// Its assets are embedded (embed.FS); the NHS.UK frontend (nhsuk-frontend
// from npm) is vendored into assets/vendor and assets/images by
// "go generate ./portal" from test/portal/node_modules, and TestVendored
// checks the committed copy is what the generator makes.
//
// The package imports nothing of Signpost's: app turns Handler and CSP
// into an api.Site.
package portal

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
)

//go:generate go run ./internal/vendored/gen ../test/portal/node_modules assets

//go:embed assets
var assets embed.FS

// Assets returns the portal's files (index.html, js/, css/, vendor/,
// images/), for tests that check every referenced asset is served.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err)
	}
	return sub
}

// DefaultClientID is the client id the portal signs in with unless
// configured: the development server registers it (a public client with
// PKCE whose redirect URI is <root>/callback).
const DefaultClientID = "portal"

// Config configures the portal.
type Config struct {
	// FHIRBase is the public FHIR base URL, e.g.
	// "http://127.0.0.1:8080/fhir": the audience the portal asks tokens
	// for; its pages call the API at its path on their own origin.
	FHIRBase string
	// ClientID is the portal's client id at the issuer; "" is
	// DefaultClientID.
	ClientID string
	// ConnectSources are origins, besides the portal's own, its scripts
	// may call: an external issuer's token endpoint.
	ConnectSources []string
}

// CSP returns the portal's Content-Security-Policy: scripts, styles and
// calls to its own origin only (and the issuer's, when external), no
// inline script or style, no framing, no foreign forms, no <base>.
func CSP(cfg Config) string {
	connect := "'self'"
	for _, o := range cfg.ConnectSources {
		if u, err := url.Parse(o); err == nil && u.Scheme != "" && u.Host != "" {
			connect += " " + u.Scheme + "://" + u.Host
		}
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; connect-src " + connect +
		"; img-src 'self' data:; font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
}

// Handler serves the portal: files under /assets/ as they are, and the
// application page (index.html, with the configuration in meta elements)
// at every other path without a file extension, so that the portal's own
// routes (/referrals/…, /callback) load it; anything else is 404.
func Handler(cfg Config) http.Handler {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	root := Assets()
	page, err := renderIndex(root, cfg)
	if err != nil {
		panic(err) // the embedded template is part of the binary: a test covers it
	}
	files := http.FileServerFS(root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		p := path.Clean("/" + r.URL.Path)
		switch {
		case strings.HasPrefix(p, "/assets/"):
			name := strings.TrimPrefix(p, "/assets/")
			if name == "index.html" || !fs.ValidPath(name) {
				http.NotFound(w, r)
				return
			}
			if st, err := fs.Stat(root, name); err != nil || st.IsDir() {
				http.NotFound(w, r)
				return
			}
			if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.Header().Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			files.ServeHTTP(w, r2)
		case p == "/favicon.ico":
			w.Header().Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/images/favicon.ico"
			files.ServeHTTP(w, r2)
		case path.Ext(p) != "":
			http.NotFound(w, r)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if r.Method == http.MethodGet {
				w.Write(page)
			}
		}
	})
}

// renderIndex fills index.html's configuration.
func renderIndex(root fs.FS, cfg Config) ([]byte, error) {
	t, err := template.ParseFS(root, "index.html")
	if err != nil {
		return nil, err
	}
	basePath := "/fhir"
	if u, err := url.Parse(cfg.FHIRBase); err == nil && u.Path != "" {
		basePath = strings.TrimSuffix(u.Path, "/")
	}
	var b bytes.Buffer
	err = t.Execute(&b, map[string]string{"FHIRBase": basePath, "Audience": cfg.FHIRBase, "ClientID": cfg.ClientID})
	return b.Bytes(), err
}
