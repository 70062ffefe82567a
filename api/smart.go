package api

// SMART on FHIR discovery: the .well-known/smart-configuration document,
// CapabilityStatement.rest.security, and the mounted authorisation server
// (the development server, or the UBRN issuer beside an external one).

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

const smartPath = "/fhir/.well-known/smart-configuration"

// smartConfiguration serves the SMART discovery document, always as JSON.
func (s *Server) smartConfiguration(c *gin.Context) {
	if len(s.cfg.Security.SmartConfiguration) == 0 {
		s.fail(c, fhir.Errorf(fhir.NotFound, "not-found", "", "this server has no authorisation configured"))
		return
	}
	c.Data(http.StatusOK, "application/json", s.cfg.Security.SmartConfiguration)
}

// capabilitySecurity is CapabilityStatement.rest.security: SMART on FHIR.
func (s *Server) capabilitySecurity() map[string]any {
	if s.cfg.Security.Open {
		return nil
	}
	sec := map[string]any{
		"cors": len(s.cfg.Security.CORSOrigins) > 0,
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
	if json.Unmarshal(s.cfg.Security.SmartConfiguration, &smart) == nil && smart.Token != "" {
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

// securityRoutes adds the SMART discovery document and mounts the
// development authorisation server.
func (s *Server) securityRoutes(r *gin.Engine) {
	r.GET(smartPath, s.smartConfiguration)
	if s.cfg.Security.AuthServer != nil {
		r.Any(s.cfg.Security.AuthPath+"/*path", gin.WrapH(s.cfg.Security.AuthServer))
	}
}
