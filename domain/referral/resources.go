package referral

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

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
