package referral

import (
	"context"
	"encoding/json"
	"net/url"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The typed views below read the few fields the rules need; resources are
// always written back by patching their own JSON (fhir.Object), never by
// re-encoding these structs.

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type concept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

func (c concept) has(system, code string) bool {
	for _, x := range c.Coding {
		if x.System == system && x.Code == code {
			return true
		}
	}
	return false
}

func (c concept) code(system string) string {
	for _, x := range c.Coding {
		if x.System == system {
			return x.Code
		}
	}
	return ""
}

type reference struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

type identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

type extension struct {
	URL            string          `json:"url"`
	ValueReference *reference      `json:"valueReference,omitempty"`
	ValueCoding    *coding         `json:"valueCoding,omitempty"`
	ValueString    *string         `json:"valueString,omitempty"`
	ValueCode      *string         `json:"valueCode,omitempty"`
	ValueBoolean   *bool           `json:"valueBoolean,omitempty"`
	ValueInteger   *int            `json:"valueInteger,omitempty"`
	ValueDecimal   *float64        `json:"valueDecimal,omitempty"`
	ValueDateTime  *string         `json:"valueDateTime,omitempty"`
	ValueInstant   *string         `json:"valueInstant,omitempty"`
	Extension      []extension     `json:"extension,omitempty"`
	Value          json.RawMessage `json:"-"`
}

func findExt(exts []extension, url string) []extension {
	var out []extension
	for _, e := range exts {
		if e.URL == url {
			out = append(out, e)
		}
	}
	return out
}

// str returns *p, or "" for nil: samply's models hold optional primitive
// elements as pointers.
func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// opt returns a pointer to s, or nil for "": an element left out.
func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// literal returns a literal reference to ref ("Type/id").
func literal(ref string) *r4.Reference { return &r4.Reference{Reference: opt(ref)} }

// decode reads raw JSON into v, reporting a malformed stored resource.
func decode(raw []byte, v any, what string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fhir.Errorf(fhir.Invalid, "structure", what, "%s cannot be read: %v", what, err)
	}
	return nil
}

// find runs a search (a query string such as "identifier=s|v") inside tx
// and returns every match, following pages.
func find(ctx context.Context, tx store.Reader, reg *search.Registry, typ, query string) ([]*fhir.Resource, error) {
	v, err := url.ParseQuery(query)
	if err != nil {
		return nil, err
	}
	if v.Get("_count") == "" {
		v.Set("_count", "1000")
	}
	q, err := reg.Parse(typ, v, search.ParseOptions{Strict: true})
	if err != nil {
		return nil, err
	}
	var out []*fhir.Resource
	for {
		page, err := tx.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Resources...)
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// read reads typ/id, as "Type/id" (a literal reference), within tx.
func readRef(ctx context.Context, tx store.Reader, ref string) (*fhir.Resource, error) {
	typ, id, ok := fhir.SplitReference(ref)
	if !ok {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "", "%q is not a Type/id reference", ref)
	}
	return tx.Read(ctx, typ, id)
}

// readAs reads ref as the caller in ctx may: one it cannot read is
// fhir.NotFound, as if it did not exist (write.ReadAs).
func (s *Service) readAs(ctx context.Context, tx store.Reader, ref string) (*fhir.Resource, error) {
	typ, id, ok := fhir.SplitReference(ref)
	if !ok {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "", "%q is not a Type/id reference", ref)
	}
	return s.repo.ReadAs(ctx, tx, typ, id)
}

// putJSON writes a fresh resource built from v through tx.
func create(ctx context.Context, tx *write.Tx, typ string, v any) (*fhir.Resource, error) {
	return createWith(ctx, tx, typ, v, write.PutOptions{})
}

// createOwn is create for a resource this package makes itself (own).
func createOwn(ctx context.Context, tx *write.Tx, typ string, v any) (*fhir.Resource, error) {
	return createWith(ctx, tx, typ, v, own)
}

func createWith(ctx context.Context, tx *write.Tx, typ string, v any, opts write.PutOptions) (*fhir.Resource, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	obj, err := fhir.ParseObject(b)
	if err != nil {
		return nil, err
	}
	res, _, err := tx.PutWith(ctx, typ, write.NewID(), obj, 0, opts)
	return res, err
}
