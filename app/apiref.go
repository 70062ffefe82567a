package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/apiref"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/conformance"
)

// sites are the pages served beside the API: the configured ones, and the
// API reference at /api (package apiref) unless one of them takes /api.
func (a *App) sites(defs *api.Definitions) []api.Site {
	sites := a.Config.Sites
	for _, s := range sites {
		if "/"+strings.Trim(s.Prefix, "/") == apiref.Prefix {
			return sites
		}
	}
	cfg := apiref.Config{Sources: func(ctx context.Context) (apiref.Sources, error) {
		cs, err := a.capabilityStatement(ctx)
		if err != nil {
			return apiref.Sources{}, err
		}
		return apiref.Sources{CapabilityStatement: cs, Resolve: defs.Resolve,
			StructureDefinitions: conformance.StructureDefinitions()}, nil
	}, Logger: a.Config.Logger}
	if a.Auth != nil {
		cfg.ClientID = devserver.ClientAPIReference
	}
	cfg.Metadata = a.Config.BaseURL + "/metadata"
	var origins []string
	if u, err := url.Parse(a.Config.Issuer); err == nil && a.Config.Issuer != "" {
		origins = append(origins, u.Scheme+"://"+u.Host) // the Authorize dialog calls its token endpoint
	}
	ref := apiref.New(cfg)
	return append(sites[:len(sites):len(sites)], api.Site{Prefix: apiref.Prefix, Handler: ref, CSP: apiref.CSPWith(origins...)})
}

// capabilityStatement is what GET /fhir/metadata answers, asked of the
// API in process: the API reference is generated from exactly that.
func (a *App) capabilityStatement(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/fhir/metadata", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	a.API.Handler().ServeHTTP(rec, req)
	if rec.status != http.StatusOK || !json.Valid(rec.body.Bytes()) {
		return nil, fmt.Errorf("GET %s answered %d: %.200s", req.URL.Path, rec.status, rec.body.Bytes())
	}
	return rec.body.Bytes(), nil
}

// recorder is the http.ResponseWriter of an in-process request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }
