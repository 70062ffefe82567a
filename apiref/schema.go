package apiref

import (
	"encoding/json"
	"slices"
	"strings"
)

// fhirSpec is the FHIR R4 specification the schemas link to.
const fhirSpec = "https://hl7.org/fhir/R4/"

// jsonSchema is the official FHIR R4 JSON Schema, which every schema names
// as its full definition.
const jsonSchema = fhirSpec + "fhir.schema.json"

// structure is what the schemas need of a StructureDefinition.
type structure struct {
	Type        string `json:"type"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Snapshot    struct {
		Element []element `json:"element"`
	} `json:"snapshot"`
}

// element is one element of a StructureDefinition's snapshot.
type element struct {
	Path  string `json:"path"`
	Short string `json:"short"`
	Min   int    `json:"min"`
	Max   string `json:"max"`
	Type  []struct {
		Code string `json:"code"`
	} `json:"type"`
}

// schemas builds components.schemas: one per resource type the document
// refers to and per data type those refer to, each with the top-level
// elements of its StructureDefinition (a backbone element is an object,
// described, not expanded) and a link to its definition in the official
// JSON Schema. A type without a StructureDefinition gets its resourceType
// and the link only.
type schemas struct {
	sds map[string]json.RawMessage
	out map[string]*Schema
}

func newSchemas(sds map[string]json.RawMessage) *schemas {
	return &schemas{sds: sds, out: map[string]*Schema{}}
}

// ref returns a reference to typ's schema, building it (and those it
// refers to) on first use.
func (s *schemas) ref(typ string) *Schema {
	if _, ok := s.out[typ]; !ok {
		s.out[typ] = &Schema{} // placeholder: breaks cycles (Identifier ↔ Reference)
		s.out[typ] = s.build(typ)
	}
	return &Schema{Ref: "#/components/schemas/" + typ}
}

func (s *schemas) build(typ string) *Schema {
	docs := &ExternalDocs{Description: "FHIR R4 " + typ, URL: fhirSpec + specPage(typ)}
	full := "Full definition: " + jsonSchema + "#/definitions/" + typ + "."
	raw, ok := s.sds[typ]
	var sd structure
	if ok {
		ok = json.Unmarshal(raw, &sd) == nil && len(sd.Snapshot.Element) > 0
	}
	if typ == "Parameters" {
		return parametersSchema(s, docs, full)
	}
	if !ok {
		return &Schema{Type: "object", Description: "FHIR R4 " + typ + ". " + full, Required: []string{"resourceType"},
			Properties: map[string]*Schema{"resourceType": {Type: "string", Enum: []string{typ}}}, ExternalDocs: docs}
	}
	out := &Schema{Type: "object", Description: firstSentence(sd.Description) + " " + full, ExternalDocs: docs,
		Properties: map[string]*Schema{}}
	if sd.Kind == "resource" {
		out.Required = []string{"resourceType"}
		out.Properties["resourceType"] = &Schema{Type: "string", Enum: []string{typ}}
	}
	for _, el := range sd.Snapshot.Element {
		name, ok := strings.CutPrefix(el.Path, typ+".")
		if !ok || strings.Contains(name, ".") {
			continue
		}
		if stem, choice := strings.CutSuffix(name, "[x]"); choice {
			for _, t := range el.Type {
				s.addProperty(out, stem+upperFirst(t.Code), el, t.Code)
			}
			continue
		}
		code := ""
		if len(el.Type) > 0 {
			code = el.Type[0].Code
		}
		s.addProperty(out, name, el, code)
	}
	return out
}

// addProperty adds one element, as a property of type code, to out.
func (s *schemas) addProperty(out *Schema, name string, el element, code string) {
	if name == "id" && strings.HasPrefix(code, "http://hl7.org/fhirpath/") {
		code = "id"
	}
	p := s.valueSchema(code)
	if p.Ref == "" {
		p.Description = el.Short
	}
	if el.Max == "*" {
		p = &Schema{Type: "array", Items: p, Description: el.Short}
	}
	out.Properties[name] = p
	if el.Min > 0 && out.Properties["resourceType"] == nil { // a data type's required elements
		out.Required = append(out.Required, name)
	}
}

// valueSchema is the schema of a value of FHIR type code.
func (s *schemas) valueSchema(code string) *Schema {
	switch code {
	case "boolean":
		return &Schema{Type: "boolean"}
	case "integer", "positiveInt", "unsignedInt":
		return &Schema{Type: "integer"}
	case "decimal":
		return &Schema{Type: "number"}
	case "string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown", "base64Binary",
		"date", "dateTime", "instant", "time", "xhtml", "":
		return &Schema{Type: "string", Format: primitiveFormat(code)}
	case "BackboneElement", "Element":
		return &Schema{Type: "object"}
	case "Resource":
		return &Schema{Type: "object", Description: "a FHIR resource", Required: []string{"resourceType"},
			Properties: map[string]*Schema{"resourceType": {Type: "string"}}}
	}
	if strings.HasPrefix(code, "http://hl7.org/fhirpath/") {
		return &Schema{Type: "string"}
	}
	if _, ok := s.sds[code]; ok {
		return s.ref(code)
	}
	return &Schema{Type: "object", Description: "FHIR R4 " + code}
}

// primitiveFormat names the lexical form of a FHIR primitive (OpenAPI
// format), where OpenAPI has one that fits; FHIR's dates may be partial, so
// they get FHIR's names.
func primitiveFormat(code string) string {
	switch code {
	case "date", "dateTime", "instant", "time", "uri", "url", "canonical", "uuid", "base64Binary":
		return code
	}
	return ""
}

// parametersSchema is the Parameters resource (no StructureDefinition of it
// is embedded): named values, resources or parts.
func parametersSchema(s *schemas, docs *ExternalDocs, full string) *Schema {
	no := false
	param := &Schema{Type: "object", Required: []string{"name"}, Description: "One parameter: its name and a value[x], a resource or parts (nested parameters).",
		Properties: map[string]*Schema{
			"name":     {Type: "string"},
			"resource": s.valueSchema("Resource"),
			"part":     {Type: "array", Items: &Schema{Type: "object"}, Description: "Nested parameters, each like this one."},
		}}
	for _, t := range []string{"String", "Code", "Id", "Uri", "Canonical", "Date", "DateTime", "Instant", "Markdown"} {
		param.Properties["value"+t] = &Schema{Type: "string"}
	}
	param.Properties["valueBoolean"] = &Schema{Type: "boolean"}
	param.Properties["valueInteger"] = &Schema{Type: "integer"}
	param.Properties["valuePositiveInt"] = &Schema{Type: "integer"}
	param.Properties["valueDecimal"] = &Schema{Type: "number"}
	for _, t := range []string{"Reference", "Identifier", "CodeableConcept", "Coding", "Period", "Timing", "Quantity"} {
		param.Properties["value"+t] = s.valueSchema(t)
	}
	return &Schema{Type: "object", Required: []string{"resourceType"}, ExternalDocs: docs, AdditionalProperties: &no,
		Description: "The inputs or outputs of an operation. " + full,
		Properties: map[string]*Schema{
			"resourceType": {Type: "string", Enum: []string{"Parameters"}},
			"id":           {Type: "string"},
			"meta":         s.valueSchema("Meta"),
			"parameter":    {Type: "array", Items: param},
		}}
}

// specPage is typ's page in the FHIR specification.
func specPage(typ string) string {
	if typ == "" {
		return ""
	}
	if typ[0] >= 'a' && typ[0] <= 'z' { // a primitive
		return "datatypes.html#" + typ
	}
	if typ == "Reference" || typ == "Meta" || typ == "Narrative" || typ == "Extension" || typ == "Dosage" || typ == "ElementDefinition" {
		return strings.ToLower(typ) + ".html"
	}
	if isDataType(typ) {
		return "datatypes.html#" + typ
	}
	return strings.ToLower(typ) + ".html"
}

// dataTypes are the complex data types of FHIR R4 (datatypes.html and
// metadatatypes.html), as opposed to resources.
var dataTypes = strings.Fields(`Address Age Annotation Attachment BackboneElement CodeableConcept Coding
	ContactDetail ContactPoint Contributor Count DataRequirement Distance Duration Element Expression
	HumanName Identifier MarketingStatus Money ParameterDefinition Period Population ProdCharacteristic
	ProductShelfLife Quantity Range Ratio RelatedArtifact SampledData Signature SubstanceAmount Timing
	TriggerDefinition UsageContext`)

func isDataType(typ string) bool { return slices.Contains(dataTypes, typ) }

// firstSentence is the first sentence of a StructureDefinition's
// description.
func firstSentence(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i+1]
	}
	if len(s) > 300 {
		s = s[:297] + "…"
	}
	return s
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
