package api

import (
	"net/http"
	"sort"
	"strings"
)

// Site is a set of pages served beside the FHIR API, outside /fhir: the
// portal at "/", the API reference at "/api". A site is served without a
// token and unaudited (its pages and assets carry no patient data; the
// scripts they load call the FHIR API with a token of their own), answers
// in its own formats whatever Accept says, and gets its own
// Content-Security-Policy instead of the API's "default-src 'none'".
type Site struct {
	// Prefix is the path the site is served under: "/api" serves /api and
	// /api/…; "/" serves every path outside /fhir that no other route or
	// site serves. It must not be /fhir, /auth or under them.
	Prefix string
	// Handler serves the site's requests, whatever their method.
	Handler http.Handler
	// CSP is the Content-Security-Policy of its responses; "" is
	// "default-src 'self'; frame-ancestors 'none'" (no inline script or
	// style).
	CSP string
}

// DefaultSiteCSP is the policy of a Site that sets none.
const DefaultSiteCSP = "default-src 'self'; frame-ancestors 'none'"

// sites are the configured sites, longest prefix first.
type sites []Site

func newSites(in []Site) sites {
	out := make(sites, len(in))
	copy(out, in)
	for i := range out {
		p := "/" + strings.Trim(out[i].Prefix, "/")
		if reserved(p) {
			panic("api: a Site may not be served under the API's own paths (" + p + ")")
		}
		out[i].Prefix = p
		if out[i].CSP == "" {
			out[i].CSP = DefaultSiteCSP
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Prefix) > len(out[j].Prefix) })
	return out
}

// reserved reports whether path is the API's own: never a site's.
func reserved(path string) bool {
	for _, r := range []string{"/fhir", "/auth", "/healthz", "/readyz"} {
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}

// at returns the site that serves path, or nil.
func (ss sites) at(path string) *Site {
	if len(ss) == 0 || reserved(path) {
		return nil
	}
	for i := range ss {
		p := ss[i].Prefix
		if p == "/" || path == p || strings.HasPrefix(path, p+"/") {
			return &ss[i]
		}
	}
	return nil
}
