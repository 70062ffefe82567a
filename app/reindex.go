package app

import (
	"context"
	"fmt"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// updateIndex brings the store's index up to date with the registry: when
// the store's index version is not the registry's fingerprint (another
// release's search parameters or extraction, another time zone or base
// URL), every resource is reindexed before the server starts, logged with
// the counts and the time it took. A new, empty store only records the
// fingerprint. A store without the capability is left as it is.
func (a *App) updateIndex(ctx context.Context) error {
	for _, st := range a.stores() {
		if err := a.updateIndexOf(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// stores are the main store and the audit database, if any.
func (a *App) stores() []store.Store {
	if a.Audits != nil {
		return []store.Store{a.Store, a.Audits}
	}
	return []store.Store{a.Store}
}

func (a *App) updateIndexOf(ctx context.Context, st store.Store) error {
	rx, ok := st.(store.Reindexer)
	if !ok {
		return nil
	}
	have, err := rx.IndexVersion(ctx)
	if err != nil {
		return err
	}
	want := a.Search.Fingerprint()
	if have == want {
		return nil
	}
	log := a.Config.Logger
	start := time.Now()
	var total int
	err = rx.Reindex(ctx, want, a.extract, func(done, n int) {
		if total == 0 && n > 0 {
			log.Info("reindexing: search parameters changed", "from", have, "to", want, "resources", n, "done", done)
		}
		total = n
	})
	if err != nil {
		return fmt.Errorf("reindexing: %w", err)
	}
	if total > 0 {
		log.Info("reindexed", "resources", total, "duration", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

// Reindex rebuilds the index entries of every resource in the store with
// the server's extraction and records the registry's fingerprint, even
// when the store's index is already up to date (signpost reindex). Like
// the reindex on opening, it resumes one of the same fingerprint that was
// interrupted. progress is called as store.Reindexer describes.
func (a *App) Reindex(ctx context.Context, progress func(done, total int)) error {
	rx, ok := a.Store.(store.Reindexer)
	if !ok {
		return fmt.Errorf("reindex: the %s store cannot reindex", a.Config.Store)
	}
	if err := rx.Reindex(ctx, a.Search.Fingerprint(), a.extract, progress); err != nil {
		return err
	}
	if ax, ok := a.Audits.(store.Reindexer); ok {
		return ax.Reindex(ctx, a.Search.Fingerprint(), a.extract, progress)
	}
	return nil
}

// extract returns the entries the server's writes store for res. A type
// this release does not serve has no parameters to search it by: it gets
// none, rather than stopping the server.
func (a *App) extract(res *fhir.Resource) ([]search.Entry, error) {
	if len(a.Search.Params(res.Type)) == 0 {
		return nil, nil
	}
	return a.API.Index(res.Type, res.JSON)
}
