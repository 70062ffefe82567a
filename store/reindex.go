package store

import (
	"context"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Reindexer is an optional capability of a Store, found by type assertion:
// rebuilding the index entries of every stored resource when the way they
// are computed has changed (a release that adds or changes search
// parameters, or changes extraction: search.Registry.Fingerprint), and
// remembering under which version the index was last built.
type Reindexer interface {
	// IndexVersion returns the version recorded by the last Reindex that
	// completed, or "" when none has or when a Reindex to another version
	// has started since (its batches left the index between the two).
	IndexVersion(ctx context.Context) (string, error)
	// Reindex replaces the index entries of every current (non-deleted)
	// resource with those extract gives, in batches of one transaction
	// each, and records version once every resource is done. Writes may
	// go on meanwhile: a resource written during the walk is indexed from
	// its newest version. Deleted resources keep no entries. An
	// interrupted Reindex (an error, a cancelled ctx, a crash) keeps the
	// batches it committed; the next Reindex with the same version resumes
	// after them, one with another version starts again. progress, when
	// not nil, is called before the first batch and after each one with
	// the resources done and the number there were at the start.
	Reindex(ctx context.Context, version string, extract func(*fhir.Resource) ([]search.Entry, error),
		progress func(done, total int)) error
}
