package apiref

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
)

// CSP is the Content-Security-Policy of the reference's pages: scripts,
// styles and the document from the server itself only (swagger-ui's
// initializer is a file, not inline script), images also as data: URLs
// (swagger-ui's icons), never framed. Extra origins for connect-src (an
// external issuer's token endpoint) are added by CSPWith.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// CSPWith is CSP allowing the page to also call origins (e.g. an external
// issuer's token endpoint, for the Authorize dialog).
func CSPWith(origins ...string) string {
	if len(origins) == 0 {
		return CSP
	}
	return strings.Replace(CSP, "connect-src 'self'", "connect-src 'self' "+strings.Join(origins, " "), 1)
}

//go:embed ui/dist page
var assets embed.FS

// Prefix is the path the reference is served under.
const Prefix = "/api"

// DocumentPath is where the OpenAPI document is served.
const DocumentPath = Prefix + "/openapi.json"

// Config configures the reference.
type Config struct {
	// Sources returns the definitions to generate the document from; it
	// is called once, at the first request for the document, when the
	// server has every operation registered.
	Sources func(ctx context.Context) (Sources, error)
	// ClientID is the public OAuth client the page's Authorize dialog
	// offers (the development server's api-reference client); "" leaves
	// it for the user to type.
	ClientID string
	// Metadata is the URL of the server's CapabilityStatement, linked
	// from the page; default /fhir/metadata.
	Metadata string
	// Logger logs a failure to generate the document.
	Logger *slog.Logger
}

// Reference serves the API reference under Prefix: the page at /api/, its
// assets, and the OpenAPI document at /api/openapi.json.
type Reference struct {
	cfg   Config
	index []byte

	mu   sync.Mutex
	doc  []byte // generated once
	etag string
}

var indexPage = template.Must(template.ParseFS(assets, "page/index.html"))

// New returns the reference.
func New(cfg Config) *Reference {
	if cfg.Metadata == "" {
		cfg.Metadata = "/fhir/metadata"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var b bytes.Buffer
	if err := indexPage.Execute(&b, cfg); err != nil {
		panic("apiref: the page's template: " + err.Error()) // strings only: cannot fail
	}
	return &Reference{cfg: cfg, index: b.Bytes()}
}

// Document returns the OpenAPI document as JSON, generating it at the first
// call; a failure is returned (and tried again at the next call).
func (r *Reference) Document(ctx context.Context) ([]byte, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.doc != nil {
		return r.doc, r.etag, nil
	}
	src, err := r.cfg.Sources(ctx)
	if err != nil {
		return nil, "", err
	}
	doc, err := JSON(src)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(doc)
	r.doc, r.etag = doc, `"`+hex.EncodeToString(sum[:8])+`"`
	return r.doc, r.etag, nil
}

// ServeHTTP serves the reference's paths (under Prefix).
func (r *Reference) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := req.URL.Path
	switch p {
	case Prefix:
		http.Redirect(w, req, Prefix+"/", http.StatusMovedPermanently)
		return
	case Prefix + "/", Prefix + "/index.html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(r.index)
		return
	case DocumentPath:
		r.serveDocument(w, req)
		return
	}
	name, ok := strings.CutPrefix(p, Prefix+"/")
	if !ok || strings.Contains(name, "/") || name == "index.html" || name == "VENDOR.json" {
		http.NotFound(w, req)
		return
	}
	b, err := fs.ReadFile(assets, "page/"+name)
	if err != nil {
		b, err = fs.ReadFile(assets, "ui/dist/"+name)
	}
	if err != nil {
		http.NotFound(w, req)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" || name == "LICENSE" || name == "NOTICE" {
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

func (r *Reference) serveDocument(w http.ResponseWriter, req *http.Request) {
	doc, etag, err := r.Document(req.Context())
	if err != nil {
		r.cfg.Logger.Error("apiref: generating the OpenAPI document", "error", err)
		http.Error(w, "the API reference could not be generated; the server log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if match := req.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}
