package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
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
	size, err := bodyCacheEnv()
	if err != nil {
		return nil, err
	}
	o.BodyCache = size
	return OpenOptions(dir, o)
}

// BodyCacheEnv is the environment variable that sizes the body cache of a
// store opened by scheme, in MiB: unset means DefaultBodyCache, 0 none
// (and no heads cache either: heads.go).
const BodyCacheEnv = "SIGNPOST_SQLITE_BODY_CACHE_MB"

// bodyCacheEnv returns Options.BodyCache as BodyCacheEnv sets it.
func bodyCacheEnv() (int64, error) {
	v, ok := os.LookupEnv(BodyCacheEnv)
	if !ok || v == "" {
		return 0, nil
	}
	mb, err := strconv.ParseInt(v, 10, 64)
	if err != nil || mb < 0 || mb > 1<<20 {
		return 0, fmt.Errorf("sqlite: %s=%q: want a number of MiB from 0 (no cache) to 1048576", BodyCacheEnv, v)
	}
	if mb == 0 {
		return -1, nil
	}
	return mb << 20, nil
}
