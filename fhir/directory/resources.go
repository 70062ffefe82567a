package directory

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// setExtension replaces every extension of url on obj with exts.
func setExtension(obj *fhir.Object, url string, exts ...any) error {
	var cur []json.RawMessage
	if raw := obj.Get("extension"); raw != nil {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fhir.Errorf(fhir.Invalid, "structure", "extension", "extension must be an array")
		}
	}
	var out []json.RawMessage
	for _, e := range cur {
		var head struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(e, &head)
		if head.URL != url {
			out = append(out, e)
		}
	}
	for _, e := range exts {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		obj.Delete("extension")
		return nil
	}
	obj.Set("extension", out)
	return nil
}

// copyExtension makes obj's extensions of url those of old.
func copyExtension(obj *fhir.Object, old []byte, url string) error {
	var o struct {
		Extension []json.RawMessage `json:"extension"`
	}
	if old != nil {
		_ = json.Unmarshal(old, &o)
	}
	var keep []any
	for _, e := range o.Extension {
		var head struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(e, &head)
		if head.URL == url {
			keep = append(keep, json.RawMessage(e))
		}
	}
	return setExtension(obj, url, keep...)
}

// find runs a search inside tx and returns every match, following pages.
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

// splitRef splits "Type/id" or "base/Type/id" into its type and id.
func splitRef(ref string) (typ, id string, ok bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return "", "", false
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	return typ, id, typ != "" && id != "" && typ[0] >= 'A' && typ[0] <= 'Z'
}
