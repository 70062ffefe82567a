package access

// SMART on FHIR discovery: the .well-known/smart-configuration document,
// CapabilityStatement.rest.security, and the mounted authorisation server
// (the development server, or the UBRN issuer beside an external one).

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

// SmartPath is where the SMART discovery document is served.
const SmartPath = "/fhir/.well-known/smart-configuration"

// smartConfiguration serves the SMART discovery document, always as JSON.
func (g *Guard) smartConfiguration(c *gin.Context) {
	if len(g.cfg.SmartConfiguration) == 0 {
		g.cfg.Fail(c, fhir.Errorf(fhir.NotFound, "not-found", "", "this server has no authorisation configured"))
		return
	}
	c.Data(http.StatusOK, "application/json", g.cfg.SmartConfiguration)
}

// CapabilitySecurity is CapabilityStatement.rest.security: SMART on FHIR
// (nil when the server is open).
func (g *Guard) CapabilitySecurity() map[string]any {
	if g.cfg.Open {
		return nil
	}
	sec := map[string]any{
		"cors": len(g.cfg.CORSOrigins) > 0,
		"service": []map[string]any{{
			"coding": []map[string]string{{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":   "SMART-on-FHIR", "display": "SMART-on-FHIR",
			}},
			"text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		}},
		"description": "Bearer access tokens (JWT) with SMART v1/v2 scopes; discovery at .well-known/smart-configuration",
	}
	var smart struct {
		Authorize string `json:"authorization_endpoint"`
		Token     string `json:"token_endpoint"`
	}
	if json.Unmarshal(g.cfg.SmartConfiguration, &smart) == nil && smart.Token != "" {
		sec["extension"] = []map[string]any{{
			"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": []map[string]string{
				{"url": "token", "valueUri": smart.Token},
				{"url": "authorize", "valueUri": smart.Authorize},
			},
		}}
	}
	return sec
}

// Routes adds the SMART discovery document and mounts the configured
// authorisation server (the development server, or the UBRN issuer).
func (g *Guard) Routes(r gin.IRoutes) {
	r.GET(SmartPath, g.smartConfiguration)
	if g.cfg.AuthServer != nil {
		r.Any(g.cfg.AuthPath+"/*path", gin.WrapH(g.cfg.AuthServer))
	}
}
