package app

import (
	"strings"

	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/portal"
)

// portalSite is the web portal (package portal) as a Site at "/": its
// pages call the FHIR API at BaseURL's path on their own origin and sign
// in with the client PortalClientID (default portal.DefaultClientID, which
// the development server registers). With an external issuer, the
// policy also lets the pages call the issuer (its token endpoint).
func portalSite(cfg Config) api.Site {
	pc := portal.Config{FHIRBase: cfg.BaseURL, ClientID: cfg.PortalClientID}
	if cfg.Issuer != "" {
		pc.ConnectSources = []string{cfg.Issuer}
	}
	return api.Site{Prefix: "/", Handler: portal.Handler(pc), CSP: portal.CSP(pc)}
}

// portalRedirect is the portal's redirect URI on Signpost's public origin.
func portalRedirect(cfg Config) string {
	return strings.TrimSuffix(cfg.BaseURL, "/fhir") + "/callback"
}
