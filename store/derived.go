package store

import (
	"context"
	"encoding/json"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Deriver is an optional capability of a Reader, found by type
// assertion: values the server derives for a resource from other
// resources (a service's waiting time, from its slots), kept beside the
// resource rather than in it. Changing one makes no new version: the
// resource's versionId, lastUpdated and history change only when the
// resource itself is written. A derived value's index entries are part of
// the resource's index (searched, sorted and tested for :missing like its
// own) until the value changes or the resource is deleted, through new
// versions of the resource and a Reindex. Its Tx implements DeriverTx, so a
// derived value is written atomically with the resources of the same
// transaction.
type Deriver interface {
	// Derived returns the derived values of the current (not deleted)
	// resources of type typ among ids, by id, each list in name order.
	// Resources without any, or not known, are absent from the map.
	Derived(ctx context.Context, typ string, ids []string) (map[string][]DerivedValue, error)
}

// DeriverTx is the Deriver capability of a Tx; its reads see its own
// writes.
type DeriverTx interface {
	Deriver
	// PutDerived sets the derived value v.Name of typ/id to v, replacing
	// the value of that name and its index entries; a nil v.Value removes
	// it. typ/id must be current: an unknown resource gives an error of
	// kind fhir.NotFound and a deleted one fhir.Gone, and nothing is
	// written. The resource's version and lastUpdated do not change. The
	// entries' parameters must be parameters of typ that no resource's own
	// entries (Write.Index) use: a derived value owns its parameters.
	PutDerived(ctx context.Context, typ, id string, v DerivedValue) error
}

// DerivedValue is one derived value of a resource.
type DerivedValue struct {
	// Name identifies the value among the resource's: for a value served as
	// an extension (the only kind so far), the extension's url.
	Name string
	// Value is the value's JSON: for an extension, the whole Extension
	// element ({"url": Name, …}).
	Value json.RawMessage
	// Index holds the value's index entries (see search.Registry.ExtractDerived).
	Index []search.Entry
}

// AddDerived writes the derived values of res (current versions, as Read
// and Search return them) into their JSON as they are served: each value
// as the resource's extension of url Name, in place of any extension of
// that url. Resources without derived values, tombstones, and any r
// without the Deriver capability are left as they are. It reads the values
// of each type with one call.
func AddDerived(ctx context.Context, r Reader, res []*fhir.Resource) error {
	d, ok := r.(Deriver)
	if !ok {
		return nil
	}
	var types []string
	ids := map[string][]string{}
	for _, x := range res {
		if x == nil || x.Deleted || x.JSON == nil {
			continue
		}
		if _, seen := ids[x.Type]; !seen {
			types = append(types, x.Type)
		}
		ids[x.Type] = append(ids[x.Type], x.ID)
	}
	for _, typ := range types {
		vals, err := d.Derived(ctx, typ, ids[typ])
		if err != nil {
			return err
		}
		if len(vals) == 0 {
			continue
		}
		for _, x := range res {
			if x == nil || x.Deleted || x.JSON == nil || x.Type != typ || len(vals[x.ID]) == 0 {
				continue
			}
			if x.JSON, err = WithDerived(x.JSON, nil, vals[x.ID]); err != nil {
				return err
			}
		}
	}
	return nil
}

// WithDerived returns body with every extension whose url is in drop or
// names one of vals removed, and vals added as extensions: the JSON of a
// resource as served. A body that is not a JSON object is an error.
func WithDerived(body []byte, drop []string, vals []DerivedValue) ([]byte, error) {
	urls := append([]string(nil), drop...)
	exts := make([]json.RawMessage, 0, len(vals))
	for _, v := range vals {
		urls = append(urls, v.Name)
		if v.Value != nil {
			exts = append(exts, v.Value)
		}
	}
	return fhir.ReplaceExtensions(body, urls, exts)
}
