package api

import (
	"context"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// served prepares stored resources for a response. The extensions that
// parameters of their type are derived from (search.Param.Derived: a
// service's waiting time) are the server's and kept beside the resource
// (store.Deriver): a stored version never shows one (one that an older
// release stored inside is dropped), and a current version (current: as
// Read, Search or a write of this request return it) shows the current
// values r keeps. A read, a search and a write's answer are current; a
// vread and a history entry are not, even of the current version. Types
// without derived parameters cost nothing.
func (s *Server) served(ctx context.Context, r store.Reader, current bool, res ...*fhir.Resource) error {
	var ids map[string][]string
	for _, x := range res {
		if x == nil || x.Deleted || x.JSON == nil || len(s.search.DerivedExtensions(x.Type)) == 0 {
			continue
		}
		if ids == nil {
			ids = map[string][]string{}
		}
		ids[x.Type] = append(ids[x.Type], x.ID)
	}
	if ids == nil {
		return nil
	}
	d, _ := r.(store.Deriver)
	for typ, list := range ids {
		var vals map[string][]store.DerivedValue
		if current && d != nil {
			var err error
			if vals, err = d.Derived(ctx, typ, list); err != nil {
				return err
			}
		}
		drop := s.search.DerivedExtensions(typ)
		for _, x := range res {
			if x == nil || x.Deleted || x.JSON == nil || x.Type != typ {
				continue
			}
			body, err := store.WithDerived(x.JSON, drop, vals[x.ID])
			if err != nil {
				return err
			}
			x.JSON = body
		}
	}
	return nil
}
