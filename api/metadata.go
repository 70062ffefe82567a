package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir/operation"
)

const capabilityID = "signpost"

// metadata serves GET /fhir/metadata.
func (s *Server) metadata(c *gin.Context) error {
	writeJSON(c, http.StatusOK, s.capabilityStatement())
	return nil
}

// searchParam describes a search parameter in the CapabilityStatement.
type searchParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition,omitempty"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

// capabilityParams lists every parameter of resourceType the registry can
// search (composite ones with type composite), in code order.
func capabilityParams(sr Searcher, resourceType string) []searchParam {
	var out []searchParam
	for _, par := range sr.Params(resourceType) {
		if par.Unsupported == "" {
			out = append(out, searchParam{Name: par.Code, Definition: par.URL, Type: string(par.Type), Documentation: par.Description})
		}
	}
	return out
}

// definitionSearchParams are the parameters of a search on a read-only
// conformance type (searchDefinitions).
var definitionSearchParams = []searchParam{
	{Name: "_id", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id", Type: "token", Documentation: "Logical id of the resource"},
	{Name: "url", Definition: "http://hl7.org/fhir/SearchParameter/conformance-url", Type: "uri", Documentation: "The canonical URL of the definition"},
}

// systemSearchParams are the parameters of a search across all types
// (GET /fhir?…).
var systemSearchParams = []searchParam{
	{Name: "_id", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id", Type: "token", Documentation: "Logical id of the resource"},
	{Name: "_lastUpdated", Definition: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", Type: "date", Documentation: "When the resource version last changed"},
	{Name: "_type", Type: "token", Documentation: "The resource types to search, comma-separated"},
}

// capabilityStatement generates the CapabilityStatement from the registry
// of types, search parameters and operations.
func (s *Server) capabilityStatement() []byte {
	type interaction struct {
		Code string `json:"code"`
	}
	type op struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	type resource struct {
		Type              string        `json:"type"`
		SupportedProfile  []string      `json:"supportedProfile,omitempty"`
		Interaction       []interaction `json:"interaction"`
		Versioning        string        `json:"versioning,omitempty"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		ConditionalUpdate bool          `json:"conditionalUpdate"`
		ConditionalDelete string        `json:"conditionalDelete,omitempty"`
		SearchInclude     []string      `json:"searchInclude,omitempty"`
		SearchParam       []searchParam `json:"searchParam,omitempty"`
		Operation         []op          `json:"operation,omitempty"`
	}
	ops := func(typ string) []op {
		var out []op
		for _, o := range s.ops.sorted() {
			if (typ == "" && (len(o.Types) == 0 || o.System)) || slices.Contains(o.Types, typ) {
				out = append(out, op{Name: o.Name, Definition: definitionURL(o)})
			}
		}
		return out
	}
	var resources []resource
	for _, typ := range s.cfg.Writable {
		r := resource{Type: typ, Versioning: "versioned", ReadHistory: true, UpdateCreate: true,
			ConditionalCreate: true, ConditionalUpdate: true, ConditionalDelete: "single", Operation: ops(typ),
			SupportedProfile: s.cfg.SupportedProfiles[typ]}
		for _, code := range []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"} {
			r.Interaction = append(r.Interaction, interaction{code})
		}
		r.SearchParam = capabilityParams(s.search, typ)
		resources = append(resources, r)
	}
	for _, typ := range s.cfg.ReadOnly {
		resources = append(resources, resource{Type: typ, Interaction: []interaction{{"read"}, {"search-type"}}, SearchParam: definitionSearchParams, Operation: ops(typ)})
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"id":           capabilityID,
		"url":          "https://signpost.example/fhir/CapabilityStatement/signpost",
		"name":         "Signpost",
		"title":        "Signpost FHIR R4 server for directory, referral and booking",
		"status":       "active",
		"date":         "2026-11-22",
		"kind":         "instance",
		"software":     map[string]string{"name": "Signpost"},
		"implementation": map[string]string{
			"description": "Signpost", "url": s.cfg.BaseURL,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"patchFormat": []string{"application/json-patch+json"},
		"rest": []map[string]any{{
			"mode":        "server",
			"resource":    resources,
			"interaction": []interaction{{"transaction"}, {"batch"}, {"history-system"}, {"search-system"}},
			"searchParam": systemSearchParams,
			"operation":   ops(""),
		}},
	}
	if sec := s.sec.capability(); sec != nil {
		cs["rest"].([]map[string]any)[0]["security"] = sec
	}
	b, _ := json.Marshal(cs)
	return b
}

func definitionURL(o *operation.Operation) string {
	var head struct {
		URL string `json:"url"`
	}
	_ = json.Unmarshal(o.Definition, &head)
	return head.URL
}

// sorted lists the operations by name.
func (ops operations) sorted() []*operation.Operation {
	var out []*operation.Operation
	for _, o := range ops {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// addBuiltinOperations registers $validate on every writable type.
func (s *Server) addBuiltinOperations() {
	def, _ := json.Marshal(map[string]any{"resourceType": "OperationDefinition", "id": "Resource-validate",
		"url": "http://hl7.org/fhir/OperationDefinition/Resource-validate", "name": "Validate", "status": "active",
		"kind": "operation", "code": "validate", "resource": []string{"Resource"}, "system": false, "type": true, "instance": true})
	s.AddOperation(&operation.Operation{Name: "validate", Types: s.cfg.Writable, TypeLevel: true, Instance: true,
		Affects: true, Definition: def, Handle: s.validateOp})
}
