package search

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"slices"
	"sort"
)

// ExtractionVersion names the meaning of the extraction code. Bump it in
// the same commit as any change to how entries are computed from a
// resource's JSON that would give an already stored resource different
// entries under the same registry: string normalisation, date and number
// ranges, how references, identifiers, codings or quantities become
// entries, composite tuples, a new kind of entry, the walker's reading of
// an expression (extract.go, composite.go, values.go, path.go, jsontree.go).
// A bump makes every store reindex on its next start (Fingerprint), which
// costs about a minute and a half per million resources
// (docs/PERFORMANCE.md), so do not bump it for changes that only make
// extraction faster, or only change parsing or searching. Changes to the
// registry's data (parameters, expressions, targets, components,
// StructureDefinitions, time zone, base URL) need no bump: Fingerprint
// covers them.
const ExtractionVersion = 1

// Fingerprint returns a stable digest (32 hexadecimal digits) of everything
// that decides the entries Extract gives: ExtractionVersion; the time zone
// zone-less dates are read in and the server base; the element model of
// the StructureDefinitions that expressions compile against; and every
// indexed parameter (supported, not a named chain) of every type with its
// resource type, code, type, expression, derived extension, targets and
// components. Two
// registries with the same fingerprint index every resource alike, so a
// store whose index was built under another fingerprint must be reindexed
// (store.Reindexer). It is the same across runs and platforms: everything
// is hashed in sorted order, never in map order.
func (r *Registry) Fingerprint() string {
	h := sha256.New()
	f := fingerprinter{h: h}
	f.num(ExtractionVersion)
	f.text(r.loc.String())
	f.text(r.base)
	paths := make([]string, 0, len(r.model))
	for p := range r.model {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	f.num(len(paths))
	for _, p := range paths {
		el := r.model[p]
		f.text(p)
		f.texts(el.types)
		f.flag(el.choice)
		f.text(el.ref)
	}
	types := make([]string, 0, len(r.ordered))
	for t := range r.ordered {
		types = append(types, t)
	}
	sort.Strings(types)
	f.num(len(types))
	for _, t := range types {
		ps := r.ordered[t] // in code order
		f.text(t)
		f.num(len(ps))
		for _, p := range ps {
			f.text(p.Resource)
			f.text(p.Code)
			f.text(string(p.Type))
			f.text(p.Expression)
			f.text(p.Derived) // over a derived value: entries from it, not the resource
			f.texts(sortedCopy(p.Targets))
			f.num(len(p.Components))
			for _, c := range p.Components {
				f.text(c.Definition)
				f.text(c.Expression)
				f.text(c.Code)
				f.text(string(c.Type))
				f.texts(sortedCopy(c.Targets))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// fingerprinter feeds values to a hash unambiguously: every string is
// preceded by its length and every list by its count.
type fingerprinter struct {
	h   hash.Hash
	buf []byte
}

func (f *fingerprinter) num(n int) {
	f.buf = binary.AppendUvarint(f.buf[:0], uint64(n))
	f.h.Write(f.buf)
}

func (f *fingerprinter) text(s string) {
	f.num(len(s))
	f.h.Write([]byte(s))
}

func (f *fingerprinter) texts(ss []string) {
	f.num(len(ss))
	for _, s := range ss {
		f.text(s)
	}
}

func (f *fingerprinter) flag(b bool) {
	if b {
		f.num(1)
	} else {
		f.num(0)
	}
}

// sortedCopy returns a sorted copy of ss: target lists are sets.
func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}
