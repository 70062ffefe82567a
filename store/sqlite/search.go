package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Search answers the filters the core server needs (_id and token
// equality); the search engine replaces this with the full translation.
func (r reader) Search(ctx context.Context, q *search.Query) (*store.Page, error) {
	query := `SELECT r.id, h.version, h.updated, h.body FROM resources r JOIN history h ON h.seq = r.seq
		WHERE r.type = ? AND r.deleted = 0`
	args := []any{q.Type}
	for _, f := range q.Filter {
		switch f := f.(type) {
		case search.IDIn:
			query += " AND r.id IN (" + placeholders(len(f.IDs)) + ")"
			for _, id := range f.IDs {
				args = append(args, id)
			}
		case search.TokenIn:
			pid, ok := r.pid(q.Type, f.Param)
			if !ok {
				return &store.Page{Total: 0}, nil
			}
			query += " AND r.rid IN (SELECT rid FROM idx_token WHERE pid = ? AND value IN (" + placeholders(len(f.Codes)) + ")"
			args = append(args, pid)
			for _, c := range f.Codes {
				args = append(args, c)
			}
			if f.HasSystem {
				query += " AND system = ?"
				args = append(args, f.System)
			}
			query += ")"
		default:
			return nil, fhir.Errorf(fhir.NotSupported, "not-supported", "", "search expression %T is not supported", f)
		}
	}
	query += " ORDER BY r.updated, r.id"
	if q.Count > 0 {
		query += " LIMIT ?"
		args = append(args, q.Count)
	}
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &store.Page{Total: -1}
	for rows.Next() {
		res := &fhir.Resource{Type: q.Type}
		var updated int64
		if err := rows.Scan(&res.ID, &res.Version, &updated, &res.JSON); err != nil {
			return nil, err
		}
		res.LastUpdated = time.UnixMicro(updated).UTC()
		page.Resources = append(page.Resources, res)
	}
	return page, rows.Err()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
