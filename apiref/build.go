package apiref

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Sources are the definitions the document is generated from: what the
// server publishes.
type Sources struct {
	// CapabilityStatement is the server's, as GET /fhir/metadata answers.
	CapabilityStatement []byte
	// Resolve returns the definition (an OperationDefinition) with a
	// canonical URL the CapabilityStatement names; an operation whose
	// definition it does not know is documented from the CapabilityStatement
	// alone (see coreOperations for FHIR's own).
	Resolve func(url string) (json.RawMessage, bool)
	// StructureDefinitions are the official definitions of resource and
	// data types, by type, for components.schemas.
	StructureDefinitions map[string]json.RawMessage
}

// capability is what the document needs of a CapabilityStatement.
type capability struct {
	Name           string `json:"name"`
	Title          string `json:"title"`
	Date           string `json:"date"`
	FHIRVersion    string `json:"fhirVersion"`
	Implementation struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	} `json:"implementation"`
	Software struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"software"`
	Rest []struct {
		Mode        string        `json:"mode"`
		Security    *capSecurity  `json:"security"`
		Resource    []capResource `json:"resource"`
		Interaction []code        `json:"interaction"`
		SearchParam []searchParam `json:"searchParam"`
		Operation   []capOp       `json:"operation"`
	} `json:"rest"`
}

// capSecurity is rest.security: the SMART oauth-uris extension names the
// authorize and token endpoints.
type capSecurity struct {
	Description string `json:"description"`
	Extension   []struct {
		URL       string `json:"url"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURI string `json:"valueUri"`
		} `json:"extension"`
	} `json:"extension"`
}

type code struct {
	Code string `json:"code"`
}

type capResource struct {
	Type              string        `json:"type"`
	Interaction       []code        `json:"interaction"`
	ConditionalCreate bool          `json:"conditionalCreate"`
	ConditionalUpdate bool          `json:"conditionalUpdate"`
	ConditionalDelete string        `json:"conditionalDelete"`
	SearchParam       []searchParam `json:"searchParam"`
	Operation         []capOp       `json:"operation"`
}

type searchParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition"`
	Type          string `json:"type"`
	Documentation string `json:"documentation"`
}

type capOp struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// opDef is what the document needs of an OperationDefinition.
type opDef struct {
	URL          string    `json:"url"`
	Name         string    `json:"name"`
	Title        string    `json:"title"`
	Description  string    `json:"description"`
	Code         string    `json:"code"`
	AffectsState *bool     `json:"affectsState"`
	System       bool      `json:"system"`
	Type         bool      `json:"type"`
	Instance     bool      `json:"instance"`
	Parameter    []opParam `json:"parameter"`
	Resource     []string  `json:"resource"`
	Comment      string    `json:"comment"`
}

type opParam struct {
	Name          string    `json:"name"`
	Use           string    `json:"use"`
	Min           int       `json:"min"`
	Max           string    `json:"max"`
	Documentation string    `json:"documentation"`
	Type          string    `json:"type"`
	SearchType    string    `json:"searchType"`
	Part          []opParam `json:"part"`
}

// FHIR JSON's media type, the one every body and answer uses.
const fhirJSON = "application/fhir+json"

// Build generates the OpenAPI 3.0.3 document of the server whose
// definitions src holds.
func Build(src Sources) (*Document, error) {
	var cs capability
	if err := json.Unmarshal(src.CapabilityStatement, &cs); err != nil {
		return nil, fmt.Errorf("apiref: the CapabilityStatement: %w", err)
	}
	if len(cs.Rest) == 0 {
		return nil, errors.New("apiref: the CapabilityStatement has no rest element")
	}
	if src.Resolve == nil {
		src.Resolve = func(string) (json.RawMessage, bool) { return nil, false }
	}
	b := &builder{src: src, schemas: newSchemas(src.StructureDefinitions), doc: &Document{
		OpenAPI: "3.0.3",
		Paths:   map[string]*PathItem{},
	}}
	rest := cs.Rest[0]
	b.info(cs)
	b.security(rest.Security != nil, securityURIs(rest.Security))
	for _, r := range rest.Resource {
		b.resource(r)
	}
	b.system(rest.Interaction, rest.SearchParam)
	for _, o := range rest.Operation {
		if err := b.operation("", o); err != nil {
			return nil, err
		}
	}
	for _, r := range rest.Resource {
		for _, o := range r.Operation {
			if err := b.operation(r.Type, o); err != nil {
				return nil, err
			}
		}
	}
	b.doc.Components.Schemas = b.schemas.out
	b.doc.Components.Responses = errorResponses(b.schemas)
	b.doc.Components.Parameters = commonParameters()
	return b.doc, nil
}

// JSON generates the document as JSON.
func JSON(src Sources) ([]byte, error) {
	doc, err := Build(src)
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

type builder struct {
	src     Sources
	schemas *schemas
	doc     *Document
	secured bool
}

func (b *builder) info(cs capability) {
	title := cs.Title
	if title == "" {
		title = cs.Name
	}
	version := cs.Software.Version
	if version == "" {
		version = cs.Date
	}
	if version == "" {
		version = "1"
	}
	base := cs.Implementation.URL
	b.doc.Info = Info{Title: title + " (FHIR " + cs.FHIRVersion + ")", Version: version, Description: "Generated by the running server from its " +
		"CapabilityStatement (`GET " + base + "/metadata`) and the OperationDefinitions it names, so it lists what this " +
		"server offers: every resource type with its interactions and search parameters, and every operation at the " +
		"levels it is defined. Bodies and answers are FHIR JSON (`" + fhirJSON + "`); every error is an " +
		"OperationOutcome naming each problem and where it is. Searches answer a searchset Bundle, paged by its `next` " +
		"link; search parameters also take the FHIR modifiers and prefixes of their type, and reference parameters " +
		"chain (`subject:Patient.identifier=…`)."}
	b.doc.ExternalDocs = &ExternalDocs{Description: "FHIR R4 RESTful API", URL: fhirSpec + "http.html"}
	server := Server{URL: "/fhir", Description: "this server"}
	if u, err := url.Parse(base); err == nil && u.Path != "" {
		server = Server{URL: u.Path, Description: "this server (" + base + ")"}
	}
	b.doc.Servers = []Server{server}
}

// securityURIs reads the SMART oauth-uris extension: the authorize and
// token endpoints.
func securityURIs(sec *capSecurity) map[string]string {
	out := map[string]string{}
	if sec == nil {
		return out
	}
	for _, e := range sec.Extension {
		if e.URL != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			continue
		}
		for _, x := range e.Extension {
			out[x.URL] = x.ValueURI
		}
	}
	return out
}

// Security scheme names.
const (
	schemeSMART  = "smart"
	schemeBearer = "bearer"
)

// security declares how clients authenticate, when the server asks them
// to: SMART on FHIR (OAuth 2 authorization code with PKCE, or client
// credentials for backend services) and the bearer token itself.
func (b *builder) security(on bool, uris map[string]string) {
	if !on {
		return
	}
	b.secured = true
	schemes := map[string]*SecurityScheme{
		schemeBearer: {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "An access token (JWT) from the server's issuer, with SMART scopes, sent as `Authorization: Bearer …`."},
	}
	if uris["token"] != "" {
		flows := &OAuthFlows{ClientCredentials: &OAuthFlow{TokenURL: uris["token"], Scopes: map[string]string{
			"system/*.rs":    "backend service: read and search what its organisation may reach",
			"system/*.cruds": "backend service: every interaction its organisation may perform",
		}}}
		if uris["authorize"] != "" {
			flows.AuthorizationCode = &OAuthFlow{AuthorizationURL: uris["authorize"], TokenURL: uris["token"], Scopes: map[string]string{
				"openid":          "an ID token for the signed-in user",
				"fhirUser":        "the user's own FHIR resource (fhirUser claim)",
				"launch/patient":  "a patient in context: a patient chooses who they are",
				"patient/*.rs":    "read and search the patient's own records",
				"patient/*.cruds": "everything on the patient's own records (book, cancel…)",
				"user/*.rs":       "staff: read and search what the user's role and organisation reach",
				"user/*.cruds":    "staff: every interaction the user's role and organisation allow",
			}}
		}
		schemes[schemeSMART] = &SecurityScheme{Type: "oauth2", Flows: flows,
			Description: "SMART on FHIR (App Launch 2.0 and Backend Services). Public clients must use PKCE with " +
				"code_challenge_method S256. Scopes are SMART v1 or v2 (`patient/Appointment.rs`, " +
				"`user/ServiceRequest.cruds`, granular `patient/Observation.rs?category=…`); a scope grants nothing " +
				"beyond what the role and organisation in the token allow. Discovery: `.well-known/smart-configuration` " +
				"under the FHIR base."}
	}
	b.doc.Components.SecuritySchemes = schemes
	b.doc.Security = *b.anyToken()
}

// anyToken is the requirement of an endpoint any valid token may call
// (its scopes decide the rest).
func (b *builder) anyToken() *[]Requirement {
	if !b.secured {
		return nil
	}
	out := []Requirement{}
	if _, ok := b.doc.Components.SecuritySchemes[schemeSMART]; ok {
		out = append(out, Requirement{schemeSMART: {}})
	}
	out = append(out, Requirement{schemeBearer: {}})
	return &out
}

// scoped is the requirement of an interaction needing permission letter
// perm on typ: a SMART scope of any context granting it, or a bearer token
// that carries one.
func (b *builder) scoped(typ, perm string) *[]Requirement {
	if !b.secured {
		return nil
	}
	var out []Requirement
	if _, ok := b.doc.Components.SecuritySchemes[schemeSMART]; ok {
		for _, level := range []string{"patient", "user", "system"} {
			out = append(out, Requirement{schemeSMART: {level + "/" + typ + "." + perm}})
		}
	}
	out = append(out, Requirement{schemeBearer: {}})
	return &out
}

// path returns the path item at p, creating it.
func (b *builder) path(p string, params ...*Parameter) *PathItem {
	it, ok := b.doc.Paths[p]
	if !ok {
		it = &PathItem{Parameters: params}
		b.doc.Paths[p] = it
	}
	return it
}

var (
	idParam  = &Parameter{Ref: "#/components/parameters/id"}
	vidParam = &Parameter{Ref: "#/components/parameters/vid"}
)

// resource adds the paths of one resource type's interactions.
func (b *builder) resource(r capResource) {
	typ := r.Type
	has := func(c string) bool {
		return slices.ContainsFunc(r.Interaction, func(x code) bool { return x.Code == c })
	}
	b.doc.Tags = append(b.doc.Tags, Tag{Name: typ, ExternalDocs: &ExternalDocs{URL: fhirSpec + specPage(typ)}})
	res := b.schemas.ref(typ)
	writable := has("create")
	body := func(what string) *RequestBody {
		return &RequestBody{Required: true, Description: what, Content: map[string]*MediaType{fhirJSON: {Schema: res}}}
	}
	op := func(interaction, summary, perm string) *Operation {
		return &Operation{Tags: []string{typ}, Summary: summary, OperationID: typ + "-" + interaction, Interaction: interaction,
			Responses: map[string]*Response{}, Security: b.scoped(typ, perm)}
	}
	if has("search-type") {
		params := b.searchParams(r.SearchParam, writable)
		get := op("search-type", "Search "+typ, "s")
		get.Description = "Searches " + typ + " resources; the answer is a searchset Bundle. " + searchHelp
		get.Parameters = params
		get.Responses = responses(b.schemas.ref("Bundle"), "the matches, as a searchset Bundle", "400")
		b.path("/" + typ).Get = get
		post := op("search-type", "Search "+typ+" (parameters in a form body)", "s")
		post.OperationID = typ + "-search-type-post"
		post.Description = "The same search with its parameters in an `application/x-www-form-urlencoded` body " +
			"(and the query), to keep them out of URLs and logs."
		post.RequestBody = &RequestBody{Required: true, Content: map[string]*MediaType{"application/x-www-form-urlencoded": {Schema: formSchema(params)}}}
		post.Responses = get.Responses
		b.path("/" + typ + "/_search").Post = post
	}
	if has("create") {
		o := op("create", "Create a "+typ, "c")
		o.Description = "Creates a " + typ + "; the server assigns its id and answers 201 with Location and ETag. "
		if r.ConditionalCreate {
			o.Description += "With If-None-Exist (a search), nothing is created when exactly one resource matches (200 with it); several matches answer 412."
			o.Parameters = []*Parameter{{Ref: "#/components/parameters/If-None-Exist"}, {Ref: "#/components/parameters/Prefer"}}
		} else {
			o.Parameters = []*Parameter{{Ref: "#/components/parameters/Prefer"}}
		}
		o.RequestBody = body("the " + typ + " to create (no id)")
		o.Responses = responses(res, "", "400", "409", "412", "422")
		o.Responses["201"] = &Response{Description: "created", Headers: writeHeaders(true), Content: fhirContent(res)}
		delete(o.Responses, "200")
		o.Responses["200"] = &Response{Description: "a conditional create found the one match", Content: fhirContent(res)}
		b.path("/" + typ).Post = o
	}
	instance := "/" + typ + "/{id}"
	if has("read") {
		o := op("read", "Read a "+typ, "r")
		o.Responses = responses(res, "the current version", "404", "410")
		o.Responses["200"].Headers = readHeaders()
		o.Parameters = []*Parameter{{Ref: "#/components/parameters/If-None-Match"}, {Ref: "#/components/parameters/_summary"}, {Ref: "#/components/parameters/_elements"}}
		b.path(instance, idParam).Get = o
	}
	if has("update") {
		o := op("update", "Update (or create with a chosen id) a "+typ, "u")
		o.Description = "Replaces the resource; its body's id must match the path. With If-Match (an ETag) the update applies only to that version (412 otherwise)."
		o.Parameters = []*Parameter{{Ref: "#/components/parameters/If-Match"}, {Ref: "#/components/parameters/Prefer"}}
		o.RequestBody = body("the new version, id as in the path")
		o.Responses = responses(res, "updated", "400", "404", "409", "412", "422")
		o.Responses["200"].Headers = writeHeaders(false)
		o.Responses["201"] = &Response{Description: "created with the id of the path", Headers: writeHeaders(true), Content: fhirContent(res)}
		b.path(instance, idParam).Put = o
	}
	if has("patch") {
		o := op("patch", "Patch a "+typ+" (JSON Patch)", "u")
		o.Description = "Applies a JSON Patch (RFC 6902); the result must still be a valid " + typ + ". With If-Match the patch applies only to that version."
		o.Parameters = []*Parameter{{Ref: "#/components/parameters/If-Match"}, {Ref: "#/components/parameters/Prefer"}}
		o.RequestBody = &RequestBody{Required: true, Content: map[string]*MediaType{"application/json-patch+json": {Schema: jsonPatchSchema(),
			Example: []map[string]any{{"op": "replace", "path": "/status", "value": "cancelled"}}}}}
		o.Responses = responses(res, "patched", "400", "404", "409", "412", "422")
		o.Responses["200"].Headers = writeHeaders(false)
		b.path(instance, idParam).Patch = o
	}
	if has("delete") {
		o := op("delete", "Delete a "+typ, "d")
		o.Description = "Deletes the resource: a read answers 410 afterwards, its history stays. With If-Match only that version is deleted."
		o.Parameters = []*Parameter{{Ref: "#/components/parameters/If-Match"}}
		o.Responses = responses(nil, "", "404", "409", "412")
		delete(o.Responses, "200")
		o.Responses["200"] = &Response{Description: "deleted", Content: fhirContent(b.schemas.ref("OperationOutcome"))}
		o.Responses["204"] = &Response{Description: "deleted (nothing to say)"}
		b.path(instance, idParam).Delete = o
	}
	if has("vread") {
		o := op("vread", "Read one version of a "+typ, "r")
		o.Responses = responses(res, "that version", "404", "410")
		o.Responses["200"].Headers = readHeaders()
		b.path(instance+"/_history/{vid}", idParam, vidParam).Get = o
	}
	if has("history-instance") {
		o := op("history-instance", "History of a "+typ, "r")
		o.Parameters = historyParams()
		o.Responses = responses(b.schemas.ref("Bundle"), "its versions, newest first, as a history Bundle", "400", "404")
		b.path(instance+"/_history", idParam).Get = o
	}
	if has("history-type") {
		o := op("history-type", "History of every "+typ, "s")
		o.Parameters = historyParams()
		o.Responses = responses(b.schemas.ref("Bundle"), "the changes, newest first, as a history Bundle", "400")
		b.path("/" + typ + "/_history").Get = o
	}
}

// searchHelp says how the parameters combine, for every search.
const searchHelp = "Parameters repeat for AND and take comma-separated values for OR; each parameter's type " +
	"decides its modifiers (`:exact`, `:missing`, `:not`, `:below`…) and prefixes (`ge2026-12-01`)."

// searchParams are a type's search parameters as query parameters, then
// the result parameters (for the full types).
func (b *builder) searchParams(sps []searchParam, results bool) []*Parameter {
	var out []*Parameter
	for _, sp := range sps {
		doc := strings.TrimSpace(sp.Documentation)
		if doc != "" && !strings.HasSuffix(doc, ".") {
			doc += "."
		}
		p := &Parameter{Name: sp.Name, In: "query", SearchType: sp.Type, Schema: &Schema{Type: "string"},
			Description: strings.TrimSpace(doc + " *" + sp.Type + "*: " + typeHelp[sp.Type])}
		if sp.Definition != "" {
			p.Description += " Definition: " + sp.Definition
		}
		out = append(out, p)
	}
	if results {
		for _, name := range []string{"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"} {
			out = append(out, &Parameter{Ref: "#/components/parameters/" + name})
		}
	}
	return out
}

// typeHelp says how a search parameter of each type is written.
var typeHelp = map[string]string{
	"number":    "a number, with an optional prefix (eq, ne, gt, lt, ge, le, sa, eb, ap).",
	"date":      "a date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD, or with a time and zone), with an optional prefix (eq, ne, gt, lt, ge, le, sa, eb, ap).",
	"string":    "matches values that start with it, ignoring case and accents; `:exact` for exact, `:contains` for anywhere.",
	"token":     "`code`, `system|code`, `|code` or `system|`; `:not`, `:text`, `:in`, `:of-type` where they apply.",
	"reference": "`Type/id`, `id` or an absolute URL; chain into the target with `name:Type.param=value`.",
	"composite": "component values joined by `$`.",
	"quantity":  "`[prefix]number|system|code`.",
	"uri":       "an exact URI; `:below` and `:above` match by path.",
	"special":   "as its definition says.",
}

// formSchema is a form body with the search's named parameters.
func formSchema(params []*Parameter) *Schema {
	s := &Schema{Type: "object", Properties: map[string]*Schema{}}
	for _, p := range params {
		if p.Name != "" {
			s.Properties[p.Name] = &Schema{Type: "string"} // described on the GET
		}
	}
	return s
}

func historyParams() []*Parameter {
	return []*Parameter{{Ref: "#/components/parameters/_count"}, {Ref: "#/components/parameters/_since"}, {Ref: "#/components/parameters/_at"}}
}

// system adds the system-level interactions.
func (b *builder) system(in []code, sps []searchParam) {
	b.doc.Tags = append(b.doc.Tags, Tag{Name: "System", Description: "Interactions and operations across resource types."})
	has := func(c string) bool { return slices.ContainsFunc(in, func(x code) bool { return x.Code == c }) }
	op := func(interaction, summary string) *Operation {
		return &Operation{Tags: []string{"System"}, Summary: summary, OperationID: "system-" + interaction, Interaction: interaction,
			Responses: map[string]*Response{}, Security: b.anyToken()}
	}
	meta := op("capabilities", "The server's CapabilityStatement")
	meta.Description = "What this document is generated from. Served without a token."
	meta.Security = &[]Requirement{}
	meta.Responses = map[string]*Response{"200": {Description: "the CapabilityStatement", Content: fhirContent(b.schemas.ref("CapabilityStatement"))}}
	b.path("/metadata").Get = meta
	if has("search-system") {
		o := op("search-system", "Search across resource types")
		o.Description = "Searches every type the caller may read (or those `_type` names). " + searchHelp
		o.Parameters = b.searchParams(sps, false)
		o.Parameters = append(o.Parameters, &Parameter{Ref: "#/components/parameters/_count"})
		o.Responses = responses(b.schemas.ref("Bundle"), "the matches, as a searchset Bundle", "400")
		b.path("/").Get = o
	}
	if has("transaction") || has("batch") {
		o := op("transaction", "Run a transaction or batch Bundle")
		o.Description = "A `transaction` Bundle's entries succeed or fail together (references between them by `urn:uuid`); a `batch` Bundle's each on its own. The answer is a transaction-response or batch-response Bundle."
		o.RequestBody = &RequestBody{Required: true, Content: fhirContent(b.schemas.ref("Bundle"))}
		o.Responses = responses(b.schemas.ref("Bundle"), "the response Bundle", "400", "409", "412", "422")
		b.path("/").Post = o
	}
	if has("history-system") {
		o := op("history-system", "History of every resource")
		o.Parameters = historyParams()
		o.Responses = responses(b.schemas.ref("Bundle"), "the changes, newest first, as a history Bundle", "400")
		b.path("/_history").Get = o
	}
}

// operation adds the paths of one operation the CapabilityStatement lists,
// at typ ("" for the system level).
func (b *builder) operation(typ string, o capOp) error {
	def, err := b.definition(o)
	if err != nil {
		return err
	}
	tag := typ
	var paths []string
	if typ == "" {
		tag = "System"
		paths = []string{"/$" + def.Code}
	} else {
		if def.Type {
			paths = append(paths, "/"+typ+"/$"+def.Code)
		}
		if def.Instance {
			paths = append(paths, "/"+typ+"/{id}/$"+def.Code)
		}
	}
	affects := def.AffectsState == nil || *def.AffectsState
	for _, p := range paths {
		level := "type"
		switch {
		case typ == "":
			level = "system"
		case strings.Contains(p, "{id}"):
			level = "instance"
		}
		var params []*Parameter
		if level == "instance" {
			params = []*Parameter{idParam}
		}
		item := b.path(p, params...)
		id := def.Code + "-" + level
		if typ != "" {
			id = typ + "-" + id
		}
		summary := def.Title
		if summary == "" {
			summary = def.Name
		}
		summary = "$" + def.Code + ": " + summary
		desc := def.Description
		if o.Definition != "" {
			desc += "\n\nDefinition: " + o.Definition
		}
		desc += "\n\n" + paramTable(def.Parameter)
		post := &Operation{Tags: []string{tag}, Summary: summary, Description: desc, OperationID: id, Interaction: "$" + def.Code,
			Security: b.anyToken(), Responses: b.opResponses(def)}
		post.RequestBody = &RequestBody{Required: slices.ContainsFunc(def.Parameter, func(p opParam) bool { return p.Use == "in" && p.Min > 0 }),
			Description: "the inputs, as a Parameters resource",
			Content:     map[string]*MediaType{fhirJSON: {Schema: b.schemas.ref("Parameters"), Example: exampleParameters(def.Parameter)}}}
		item.Post = post
		if !affects {
			get := *post
			get.OperationID = id + "-get"
			get.RequestBody = nil
			get.Description = def.Description + "\n\nInputs of a primitive type (and references, as `Type/id`) go in the query; others need POST.\n\n" + paramTable(def.Parameter)
			get.Parameters = queryParams(def.Parameter)
			item.Get = &get
		}
	}
	return nil
}

// definition resolves the operation's OperationDefinition.
func (b *builder) definition(o capOp) (*opDef, error) {
	raw, ok := b.src.Resolve(o.Definition)
	if !ok {
		raw, ok = coreOperations[o.Definition]
	}
	if !ok {
		// Documented from the CapabilityStatement alone: a type-level
		// operation taking and answering Parameters.
		return &opDef{Code: o.Name, Name: o.Name, Type: true, Description: "Its definition is " + o.Definition + "."}, nil
	}
	var def opDef
	if err := json.Unmarshal(raw, &def); err != nil {
		return nil, fmt.Errorf("apiref: OperationDefinition %s: %w", o.Definition, err)
	}
	if def.Code == "" {
		def.Code = o.Name
	}
	return &def, nil
}

// opResponses: one "return" output of a resource type is the answer
// itself; other outputs come in a Parameters resource.
func (b *builder) opResponses(def *opDef) map[string]*Response {
	var outs []opParam
	for _, p := range def.Parameter {
		if p.Use == "out" {
			outs = append(outs, p)
		}
	}
	answer := b.schemas.ref("Parameters")
	what := "the outputs, as a Parameters resource"
	if len(outs) == 1 && outs[0].Name == "return" && isResourceType(outs[0].Type) {
		answer, what = b.schemas.ref(outs[0].Type), "a "+outs[0].Type
	}
	return responses(answer, what, "400", "404", "409", "412", "422")
}

// isResourceType reports whether a FHIR type name is a resource's (or an
// abstract Resource): upper case and not a data type.
func isResourceType(t string) bool {
	return t != "" && t[0] >= 'A' && t[0] <= 'Z' && !isDataType(t) &&
		!slices.Contains([]string{"Reference", "Meta", "Narrative", "Extension", "Dosage", "ElementDefinition"}, t)
}

// queryParams are the inputs a GET can carry: primitives and references.
func queryParams(ps []opParam) []*Parameter {
	var out []*Parameter
	for _, p := range ps {
		if p.Use != "in" || len(p.Part) > 0 || p.Type != "Reference" && !isPrimitive(p.Type) {
			continue
		}
		q := &Parameter{Name: p.Name, In: "query", Required: p.Min > 0, Description: p.Documentation, SearchType: p.Type,
			Schema: primitiveSchema(p.Type)}
		if p.Max != "1" {
			q.Schema = &Schema{Type: "array", Items: q.Schema}
			q.Description += " (may repeat)"
		}
		out = append(out, q)
	}
	return out
}

func isPrimitive(t string) bool { return t != "" && t[0] >= 'a' && t[0] <= 'z' }

// primitiveSchema is the schema of an operation input of FHIR type t.
func primitiveSchema(t string) *Schema {
	switch t {
	case "boolean":
		return &Schema{Type: "boolean"}
	case "integer", "positiveInt", "unsignedInt":
		return &Schema{Type: "integer"}
	case "decimal":
		return &Schema{Type: "number"}
	case "Reference":
		return &Schema{Type: "string", Description: "Type/id"}
	}
	return &Schema{Type: "string", Format: primitiveFormat(t)}
}

// paramTable lists an operation's parameters, in and out, as a Markdown
// table.
func paramTable(ps []opParam) string {
	if len(ps) == 0 {
		return "No parameters."
	}
	var sb strings.Builder
	sb.WriteString("| parameter | use | cardinality | type | documentation |\n| --- | --- | --- | --- | --- |\n")
	var row func(prefix string, p opParam)
	row = func(prefix string, p opParam) {
		t := p.Type
		if t == "" && len(p.Part) > 0 {
			t = "(parts)"
		}
		if p.SearchType != "" {
			t += " (search type " + p.SearchType + ")"
		}
		doc := strings.NewReplacer("|", "\\|", "\n", " ").Replace(p.Documentation)
		fmt.Fprintf(&sb, "| %s%s | %s | %d..%s | %s | %s |\n", prefix, p.Name, p.Use, p.Min, p.Max, t, doc)
		for _, part := range p.Part {
			row(prefix+p.Name+".", part)
		}
	}
	for _, p := range ps {
		row("", p)
	}
	return sb.String()
}

// exampleParameters is an example body: the required inputs (or the first
// input, when none is required), each with a placeholder of its type.
func exampleParameters(ps []opParam) map[string]any {
	var ins []opParam
	for _, p := range ps {
		if p.Use == "in" && p.Min > 0 {
			ins = append(ins, p)
		}
	}
	if len(ins) == 0 {
		for _, p := range ps {
			if p.Use == "in" {
				ins = append(ins, p)
				break
			}
		}
	}
	params := []map[string]any{}
	for _, p := range ins {
		params = append(params, exampleParameter(p))
	}
	return map[string]any{"resourceType": "Parameters", "parameter": params}
}

func exampleParameter(p opParam) map[string]any {
	out := map[string]any{"name": p.Name}
	switch {
	case len(p.Part) > 0:
		var parts []map[string]any
		for _, x := range p.Part {
			parts = append(parts, exampleParameter(x))
		}
		out["part"] = parts
	case p.Type == "Reference":
		out["valueReference"] = map[string]string{"reference": "Type/id"}
	case isResourceType(p.Type):
		out["resource"] = map[string]string{"resourceType": p.Type}
	case p.Type == "boolean":
		out["valueBoolean"] = true
	case p.Type == "integer" || p.Type == "positiveInt" || p.Type == "unsignedInt":
		out["value"+upperFirst(p.Type)] = 1
	case p.Type == "date":
		out["valueDate"] = "2026-12-07"
	case p.Type == "dateTime":
		out["valueDateTime"] = "2026-12-07T09:00:00Z"
	case isPrimitive(p.Type):
		out["value"+upperFirst(p.Type)] = "…"
	case p.Type != "":
		out["value"+p.Type] = map[string]any{}
	}
	return out
}

// responses is an operation's answers: 200 with answer (when not nil),
// the errors of codes, and those any request may meet.
func responses(answer *Schema, what string, codes ...string) map[string]*Response {
	out := map[string]*Response{}
	if answer != nil {
		if what == "" {
			what = "OK"
		}
		out["200"] = &Response{Description: what, Content: fhirContent(answer)}
	}
	for _, c := range append(codes, "401", "403", "429") {
		out[c] = &Response{Ref: "#/components/responses/" + c}
	}
	out["default"] = &Response{Ref: "#/components/responses/default"}
	return out
}

func fhirContent(s *Schema) map[string]*MediaType {
	return map[string]*MediaType{fhirJSON: {Schema: s}}
}

// errorStatuses are the error answers the API gives, each an
// OperationOutcome.
var errorStatuses = map[string]string{
	"400":     "Bad request: a malformed request, an unknown parameter or an invalid value; the OperationOutcome names each problem and where it is.",
	"401":     "No valid access token (WWW-Authenticate says why).",
	"403":     "The token's scopes, role or organisation do not allow this.",
	"404":     "No such resource, or none the caller may see.",
	"409":     "Conflict: e.g. the slot was taken meanwhile, or a version conflict; choose again.",
	"410":     "The resource was deleted.",
	"412":     "Precondition failed: If-Match names another version, or a conditional request matched several resources.",
	"422":     "Unprocessable: the resource or inputs break a business rule (the OperationOutcome's details code names which).",
	"429":     "Too many requests: wait as Retry-After says.",
	"default": "Any other error (5xx: the server's fault, never a client's), as an OperationOutcome.",
}

func errorResponses(s *schemas) map[string]*Response {
	out := map[string]*Response{}
	oo := s.ref("OperationOutcome")
	for c, d := range errorStatuses {
		out[c] = &Response{Description: d, Content: fhirContent(oo)}
	}
	return out
}

func readHeaders() map[string]*Header {
	return map[string]*Header{
		"ETag":          {Description: "the version, `W/\"n\"`", Schema: &Schema{Type: "string"}},
		"Last-Modified": {Description: "when the version was written", Schema: &Schema{Type: "string"}},
	}
}

func writeHeaders(created bool) map[string]*Header {
	h := readHeaders()
	if created {
		h["Location"] = &Header{Description: "the new version's URL", Schema: &Schema{Type: "string"}}
	}
	return h
}

func jsonPatchSchema() *Schema {
	return &Schema{Type: "array", Items: &Schema{Type: "object", Required: []string{"op", "path"}, Properties: map[string]*Schema{
		"op":    {Type: "string", Enum: []string{"add", "remove", "replace", "move", "copy", "test"}},
		"path":  {Type: "string"},
		"from":  {Type: "string"},
		"value": {Description: "any JSON value"},
	}}}
}

// commonParameters are the parameters the paths refer to.
func commonParameters() map[string]*Parameter {
	str := func() *Schema { return &Schema{Type: "string"} }
	one := 1.0
	return map[string]*Parameter{
		"id":            {Name: "id", In: "path", Required: true, Description: "the resource's logical id", Schema: str()},
		"vid":           {Name: "vid", In: "path", Required: true, Description: "the version id", Schema: str()},
		"_count":        {Name: "_count", In: "query", Description: "the page size (the server caps it)", Schema: &Schema{Type: "integer", Minimum: &one}},
		"_sort":         {Name: "_sort", In: "query", Description: "comma-separated parameters to sort by, `-` for descending", Schema: str()},
		"_include":      {Name: "_include", In: "query", Description: "`Type:param[:target]`: add the resources the matches refer to", Schema: str()},
		"_revinclude":   {Name: "_revinclude", In: "query", Description: "`Type:param`: add the resources that refer to the matches", Schema: str()},
		"_summary":      {Name: "_summary", In: "query", Description: "return a summary only", Schema: &Schema{Type: "string", Enum: []string{"true", "text", "data", "count", "false"}}},
		"_elements":     {Name: "_elements", In: "query", Description: "comma-separated top-level elements to return", Schema: str()},
		"_total":        {Name: "_total", In: "query", Description: "whether to count the matches", Schema: &Schema{Type: "string", Enum: []string{"none", "estimate", "accurate"}}},
		"_since":        {Name: "_since", In: "query", Description: "only changes at or after this instant", Schema: &Schema{Type: "string", Format: "instant"}},
		"_at":           {Name: "_at", In: "query", Description: "the versions current at this instant", Schema: &Schema{Type: "string", Format: "dateTime"}},
		"If-Match":      {Name: "If-Match", In: "header", Description: "only if the current version is this ETag (`W/\"3\"`)", Schema: str()},
		"If-None-Match": {Name: "If-None-Match", In: "header", Description: "answer 304 if the current version is this ETag", Schema: str()},
		"If-None-Exist": {Name: "If-None-Exist", In: "header", Description: "a search (`identifier=…`): create only if nothing matches", Schema: str()},
		"Prefer":        {Name: "Prefer", In: "header", Description: "`return=minimal`, `return=representation` (default) or `return=OperationOutcome`", Schema: str()},
	}
}

// coreOperations are the definitions of FHIR's own operations the server
// implements without publishing an OperationDefinition of its own, by
// canonical URL, as Signpost answers them.
var coreOperations = map[string]json.RawMessage{
	"http://hl7.org/fhir/OperationDefinition/Resource-validate": json.RawMessage(`{
		"resourceType": "OperationDefinition", "url": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
		"name": "Validate", "title": "Validate a resource", "code": "validate", "affectsState": true,
		"system": false, "type": true, "instance": true,
		"description": "Validates a resource against the server's definitions and rules without storing it: the answer is an OperationOutcome listing every problem with its location (all OK when there is none). Signpost answers it on POST only.",
		"parameter": [
			{"name": "resource", "use": "in", "min": 0, "max": "1", "type": "Resource", "documentation": "the resource to validate (or the whole body)"},
			{"name": "mode", "use": "in", "min": 0, "max": "1", "type": "code", "documentation": "create, update or delete"},
			{"name": "profile", "use": "in", "min": 0, "max": "1", "type": "uri", "documentation": "a profile to validate against"},
			{"name": "return", "use": "out", "min": 1, "max": "1", "type": "OperationOutcome", "documentation": "the problems found"}
		]}`),
}
