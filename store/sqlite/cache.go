package sqlite

import "github.com/signpost-fhir/signpost/internal/gens"

// CacheStats are a cache's counters (gens.Stats).
type CacheStats = gens.Stats

// Caches reports the store's caches by name: "bodies" (bodycache.go),
// "heads" and "derived" (heads.go) and "pages" (pagecache.go); a cache
// that is off reports zeros.
func (s *Store) Caches() map[string]CacheStats {
	out := map[string]CacheStats{"bodies": s.bodies.stats(), "heads": s.heads.stats(), "pages": s.pages.stats(), "derived": {}}
	if s.heads != nil {
		out["derived"] = s.heads.derived.Stats()
	}
	return out
}
