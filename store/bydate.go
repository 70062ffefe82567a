package store

import (
	"context"
	"fmt"

	"github.com/signpost-fhir/signpost/fhir/search"
)

// DateOrderer is an optional capability of a Reader, found by type
// assertion: answering a search in the order of one of its date
// parameters from an index kept in that order, so that the first few
// matches of a large set cost a few rows rather than a sort of all of
// them (Appointment/$find wants the earliest free slots of a month).
// Callers use SearchByDate, which falls back to Search.
type DateOrderer interface {
	// SearchByDate returns one page of the matches of q (which has no
	// _sort) in ascending order of the smallest low bound of the date
	// parameter param, as Search with q sorted by param would, except
	// that matches with equal values may come in another order of the
	// store's choosing, the same on every page. Page.Next continues it;
	// Prev and Total are not set.
	//
	// ok is false, and nothing else is returned, when the store cannot
	// answer q this way better than Search sorted by param. It is never
	// false for a q whose Cursor an earlier SearchByDate returned, and
	// always false for one whose Cursor came from Search.
	SearchByDate(ctx context.Context, q *search.Query, param string) (page *Page, ok bool, err error)
}

// SearchByDate returns one page of the matches of q in ascending order of
// the date parameter param, through r's DateOrderer when r has one that
// answers q, and otherwise through r.Search with q sorted by param (ties
// then by _lastUpdated and id). Page.Next, passed back as q.Cursor with
// the same q and param, gives the next page. q must have no _sort.
func SearchByDate(ctx context.Context, r Reader, q *search.Query, param string) (*Page, error) {
	if len(q.Sort) > 0 {
		return nil, fmt.Errorf("store: search by %s of %s: the query has its own _sort", param, q.Type)
	}
	if o, ok := r.(DateOrderer); ok {
		page, ok, err := o.SearchByDate(ctx, q, param)
		if ok || err != nil {
			return page, err
		}
	}
	sorted := *q
	sorted.Sort = []search.SortKey{{Param: param, Type: search.Date}}
	return r.Search(ctx, &sorted)
}
