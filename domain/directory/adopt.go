package directory

import (
	"context"
	"net/url"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The store record (store.Records) that says Adopt has run.
const (
	adoptKind = "migration"
	adoptKey  = "directory.derived-waiting-times"
)

// adoptBatch is how many services one Adopt transaction refreshes.
const adoptBatch = 50

// Adopt gives every service that has no kept waiting time one, computed
// from its slots, and returns how many it gave one. It is for a data
// directory written by a release that kept waiting times inside the
// services: their stored versions still carry those copies, which are
// never indexed (the search parameters over the waiting time are derived:
// search.Param.Derived) nor served (the API drops them), so each service
// gets its wait again, as a derived value. It runs once per store, which a
// store record marks (with a store without store.Records, on every call);
// services created later get their wait from their first slot or schedule
// write. A store without derived values has nothing to adopt.
func (d *Directory) Adopt(ctx context.Context) (int, error) {
	st := d.repo.Store()
	dv, ok := st.(store.Deriver)
	if !ok {
		return 0, nil
	}
	recs, hasRecords := st.(store.Records)
	if hasRecords {
		_, err := recs.GetRecord(ctx, adoptKind, adoptKey)
		switch fhir.KindOf(err) {
		case fhir.NotFound:
		default:
			return 0, err // nil: done before
		}
	}
	q, err := d.reg.Parse("HealthcareService", url.Values{"_count": {"500"}}, search.ParseOptions{Strict: true})
	if err != nil {
		return 0, err
	}
	var missing []string
	for {
		page, err := st.Search(ctx, q)
		if err != nil {
			return 0, err
		}
		ids := make([]string, 0, len(page.Resources))
		for _, r := range page.Resources {
			ids = append(ids, r.ID)
		}
		vals, err := dv.Derived(ctx, "HealthcareService", ids)
		if err != nil {
			return 0, err
		}
	next:
		for _, id := range ids {
			for _, v := range vals[id] {
				if v.Name == WaitingTime {
					continue next
				}
			}
			missing = append(missing, id)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	adopted := len(missing)
	for len(missing) > 0 || hasRecords {
		n := min(len(missing), adoptBatch)
		batch := missing[:n]
		missing = missing[n:]
		last := len(missing) == 0
		err := d.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
			for _, id := range batch {
				if err := d.Refresh(ctx, tx, id); err != nil {
					return err
				}
			}
			if last && hasRecords {
				if rtx, ok := tx.Tx.(store.RecordTx); ok {
					return rtx.PutRecord(ctx, adoptKind, adoptKey, []byte(time.Now().UTC().Format(time.RFC3339)), forever)
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if last {
			break
		}
	}
	return adopted, nil
}

// forever is the expiry of a record that never expires.
var forever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
