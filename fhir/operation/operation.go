// Package operation is the contract between the API and the packages that
// implement FHIR operations ($validate, $find, $book, $shortlist…): an
// operation is a named handler over a Parameters input, registered with
// its OperationDefinition, knowing nothing of HTTP frameworks.
package operation

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
)

// Operation is one FHIR operation.
type Operation struct {
	Name       string          // without the "$"
	Types      []string        // resource types it is invoked on; none for a system-level operation
	Instance   bool            // invoked on an instance: /Type/id/$name
	TypeLevel  bool            // invoked on the type: /Type/$name
	System     bool            // with Types, invoked at system level too: /$name (as $export is)
	Affects    bool            // changes state: POST only (otherwise GET is allowed too)
	Definition json.RawMessage // the OperationDefinition the server publishes
	Handle     func(ctx context.Context, req *Request) (*Result, error)

	// Access is the REST interaction on its target type that a caller's
	// scopes must grant to invoke it: "read", "search", "create", "update"
	// or "delete". Empty means read for an instance invocation and search
	// otherwise. Resources the operation writes are checked again against
	// the caller's patient context.
	Access string
	// AccessFor, when set, decides Access from the inputs instead: an
	// operation some callers may invoke with fewer rights for some inputs
	// ($defer with reason "no slots" needs only read on the referral).
	AccessFor func(p *Parameters) string
	// Roles, when not empty, names who may invoke the operation: callers
	// with one of these roles (auth role names, e.g. "commissioner"), and
	// backend services (tokens without a role, with a system-level scope).
	// Any other caller gets 403, whatever its scopes: a patient's or UBRN
	// token, a token with a patient in context, another role. The API
	// enforces it before Access; the operation may narrow what each
	// caller sees further.
	Roles []string
	// BodyTypes are the media types, besides FHIR JSON, that the operation
	// takes as its POST body (an upload: "text/csv",
	// "application/x-ndjson"). Such a body reaches Handle untouched in
	// Request.Body, its type in Request.ContentType, and the inputs come
	// from the query string.
	BodyTypes []string
	// Public operations may be invoked without an access token: they
	// authenticate the caller themselves (e.g. $ubrn-access with a UBRN and
	// an access code) and must limit attempts themselves.
	Public bool
	// Produces are the media types, besides FHIR JSON, that the operation
	// may answer with (e.g. "application/fhir+ndjson"): a caller that
	// accepts only one of them is not refused by content negotiation.
	Produces []string
	// Deletes lets the operation be invoked with DELETE too (cancelling
	// what an earlier invocation started, such as an asynchronous job);
	// Handle sees the method in Request.Method.
	Deletes bool
}

// Request is an operation invocation.
type Request struct {
	Type, ID string      // the target: type and/or instance, when not system level
	Method   string      // the HTTP method: GET, POST or (for Deletes operations) DELETE
	Params   *Parameters // the inputs, from a Parameters body or the query string
	Body     []byte      // the raw body, for operations that take a resource or an upload
	// ContentType is the body's media type (without parameters) when it
	// is one of the operation's BodyTypes; "" for a FHIR JSON body.
	ContentType string
	Format      string // the _format parameter, if any (e.g. "text/csv")
	Accept      string // the media types the caller accepts (its Accept header), e.g. "text/csv"
	BaseURL     string // the server's public FHIR base
	// Header holds the request's headers (Prefer, If-None-Match…), and
	// Query its whole query string, including the names starting with
	// "_" that Params leaves out (_type, _since…).
	Header http.Header
	Query  url.Values
	// Idempotency, when not nil, is the unused Idempotency-Key the
	// invocation carries: an operation that writes stores its answer
	// under it in the transaction of its write (write.Tx.Remember, after
	// converting it to a write.Claim), so a retry is answered from memory.
	Idempotency *Idempotency
}

// Idempotency is an Idempotency-Key no committed write has used yet, as the
// API names it (write.Claim has the same fields).
type Idempotency struct {
	Client  string        // the verified caller, the scope of the key
	Key     string        // the Idempotency-Key as sent
	Request string        // a digest of the request: the same key with another request is refused
	KeepFor time.Duration // how long the answer is remembered
}

// Result is what an operation answers.
type Result struct {
	Status      int    // HTTP status; 200 when 0
	Body        []byte // a FHIR resource (Bundle, Parameters, OperationOutcome…) or other content
	ContentType string // "" means application/fhir+json
	Header      http.Header
}

// Parameters is a FHIR Parameters resource's parameter list.
type Parameters struct {
	Parameter []Parameter `json:"parameter,omitempty"`
}

// Parameter is one named input or output. Value holds the value[x] member's
// JSON and ValueType its suffix (e.g. "Reference", "dateTime").
type Parameter struct {
	Name      string
	ValueType string
	Value     json.RawMessage
	Resource  json.RawMessage
	Part      []Parameter
}

// UnmarshalJSON reads a parameter, finding its value[x].
func (p *Parameter) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, v := range m {
		switch {
		case k == "name":
			if err := json.Unmarshal(v, &p.Name); err != nil {
				return err
			}
		case k == "resource":
			p.Resource = v
		case k == "part":
			if err := json.Unmarshal(v, &p.Part); err != nil {
				return err
			}
		case strings.HasPrefix(k, "value"):
			p.ValueType, p.Value = k[len("value"):], v
		}
	}
	return nil
}

// MarshalJSON writes a parameter with its value[x].
func (p Parameter) MarshalJSON() ([]byte, error) {
	m := map[string]any{"name": p.Name}
	if p.Value != nil {
		m["value"+p.ValueType] = p.Value
	}
	if p.Resource != nil {
		m["resource"] = p.Resource
	}
	if len(p.Part) > 0 {
		m["part"] = p.Part
	}
	return json.Marshal(m)
}

// ParseBody reads a Parameters resource.
func ParseBody(body []byte) (*Parameters, error) {
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "", "the body is not valid JSON: %v", err)
	}
	if head.ResourceType != "Parameters" {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "resourceType", "an operation's body must be a Parameters resource, not %q", head.ResourceType)
	}
	var p Parameters
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "Parameters.parameter", "the parameters are malformed: %v", err)
	}
	return &p, nil
}

// FromQuery reads simple inputs from a query string (GET invocation).
// Parameters whose names start with "_" are the API's (_format, _pretty…)
// and left out, except _count: operations that return a searchset, such as
// IHE's Appointment/$find, take the standard _count as an input.
func FromQuery(q url.Values) *Parameters {
	p := &Parameters{}
	for name, vals := range q {
		if strings.HasPrefix(name, "_") && name != "_count" {
			continue
		}
		for _, v := range vals {
			raw, _ := json.Marshal(v)
			p.Parameter = append(p.Parameter, Parameter{Name: name, ValueType: "String", Value: raw})
		}
	}
	return p
}

// All returns the parameters named name.
func (p *Parameters) All(name string) []Parameter {
	var out []Parameter
	for _, x := range p.Parameter {
		if x.Name == name {
			out = append(out, x)
		}
	}
	return out
}

// Get returns the first parameter named name.
func (p *Parameters) Get(name string) (Parameter, bool) {
	for _, x := range p.Parameter {
		if x.Name == name {
			return x, true
		}
	}
	return Parameter{}, false
}

// String returns the first parameter named name as a string: a primitive
// value, or a Reference's reference.
func (p *Parameters) String(name string) (string, bool) {
	x, ok := p.Get(name)
	if !ok {
		return "", false
	}
	return x.String()
}

// String returns a primitive value as a string, or a Reference's reference.
func (x Parameter) String() (string, bool) {
	var s string
	if json.Unmarshal(x.Value, &s) == nil {
		return s, true
	}
	var ref struct {
		Reference string `json:"reference"`
	}
	if json.Unmarshal(x.Value, &ref) == nil && ref.Reference != "" {
		return ref.Reference, true
	}
	if len(x.Value) > 0 && x.Value[0] != '{' && x.Value[0] != '[' {
		return string(x.Value), true
	}
	return "", false
}

// Encode renders parameters as a Parameters resource.
func (p *Parameters) Encode() []byte {
	b, _ := json.Marshal(struct {
		ResourceType string      `json:"resourceType"`
		Parameter    []Parameter `json:"parameter,omitempty"`
	}{"Parameters", p.Parameter})
	return b
}
