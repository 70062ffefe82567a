package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// indexedRefsSQL reads the current version of each resource of a type
// named in a JSON array of ids, with the targets of its reference index
// rows for one parameter (pid) or, when the second argument is 0, for all.
// One text for every call, so it is prepared once; json_each keeps the id
// list out of the SQL text.
const indexedRefsSQL = `SELECT r.id, r.version, x.ref_type, x.ref_id
	FROM resources r LEFT JOIN idx_ref x ON x.rid = r.rid AND (?2 = 0 OR x.pid = ?2) AND x.ref_type != '' AND x.ref_id != ''
	WHERE r.type = ?1 AND r.id IN (SELECT value FROM json_each(?3))`

// IndexedRefs implements store.RefIndex from idx_ref, so that _include
// reads the page's references from the index instead of parsing each
// match's JSON. It returns nil when param has no parameter id here (the
// caller then extracts).
func (s *Store) IndexedRefs(ctx context.Context, typ string, ids []string, param string) (map[string]store.IndexedRefs, error) {
	var pid int64
	if param != "*" {
		p, ok := s.pids.get(typ + "." + param)
		if !ok {
			// Not indexed yet, or created by a commit whose ids this
			// cache does not have yet: let the caller extract.
			return nil, nil
		}
		pid = p
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	st, cached, err := s.plan.prepared(ctx, s.rdb, indexedRefsSQL)
	if err != nil {
		return nil, fmt.Errorf("indexed references of %s: %w", typ, err)
	}
	if !cached {
		defer st.Close()
	}
	rows, err := st.QueryContext(ctx, typ, pid, string(list))
	if err != nil {
		return nil, fmt.Errorf("indexed references of %s: %w", typ, err)
	}
	defer rows.Close()
	out := make(map[string]store.IndexedRefs, len(ids))
	for rows.Next() {
		var id string
		var version int64
		var refType, refID *string
		if err := rows.Scan(&id, &version, &refType, &refID); err != nil {
			return nil, fmt.Errorf("indexed references of %s: %w", typ, err)
		}
		got := out[id]
		got.Version = version
		if refType != nil && refID != nil {
			got.Refs = append(got.Refs, search.Ref{Type: *refType, ID: *refID})
		}
		out[id] = got
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("indexed references of %s: %w", typ, err)
	}
	return out, nil
}
