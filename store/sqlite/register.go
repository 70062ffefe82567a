package sqlite

import (
	"context"
	"errors"
	"strings"

	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Scheme is the store URI scheme of this backend: "sqlite" keeps the
// database in the data directory, "sqlite:DIR" in directory DIR.
const Scheme = "sqlite"

func init() { store.Register(Scheme, open) }

// open is the store.Opener of the scheme: the pair index follows the
// registry's pairs (search.Registry.Pairs), or search.DefaultPairs without
// a registry.
func open(_ context.Context, cfg store.Config) (store.Store, error) {
	dir := cfg.Data
	if _, path, ok := strings.Cut(cfg.URI, ":"); ok {
		dir = strings.TrimPrefix(path, "//") // sqlite:///var/db is sqlite:/var/db
		if dir == "" {
			return nil, errors.New("sqlite: no directory after sqlite:")
		}
	}
	o := Options{Pairs: search.DefaultPairs()}
	if cfg.Search != nil {
		o.Pairs = cfg.Search.Pairs()
	}
	return OpenOptions(dir, o)
}
