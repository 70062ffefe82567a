package search

import "fmt"

// Pair declares that a reference parameter and a date parameter of one
// resource type are searched together so often, and over so many
// resources, that a store should index them together: the free-slot
// search (Slot?schedule…&start=ge…&start=le…) is then one range scan per
// schedule instead of the intersection of two large sets. A pair is a hint
// to every backend (store/sqlite keeps a compound index of it); results
// never depend on it.
type Pair struct {
	Type string // the resource type
	Ref  string // the reference parameter
	Date string // the date parameter
	// Code, when not "", is a token parameter whose value a backend may
	// keep with the pair (a slot's status), so that the scan tests it in
	// the rows it reads.
	Code string
}

// Key names the pair as one code ("schedule+start"), for backends that key
// its index entries like a parameter's.
func (p Pair) Key() string { return p.Ref + "+" + p.Date }

// defaultPairs are the pairs Signpost declares: the free-slot search and
// a patient's appointments by date.
var defaultPairs = []Pair{
	{Type: "Slot", Ref: "schedule", Date: "start", Code: "status"},
	{Type: "Appointment", Ref: "patient", Date: "date"},
}

// DefaultPairs returns the pairs Signpost declares, for a backend opened
// without a registry. A registry built with Options.Pairs nil declares
// those of them that it supports.
func DefaultPairs() []Pair { return append([]Pair(nil), defaultPairs...) }

// Pairs returns the pairs the registry declares, in declaration order. A
// backend's index of them is built as resources are written: a release
// that changes them must rebuild it (signpost reindex).
func (r *Registry) Pairs() []Pair { return append([]Pair(nil), r.pairs...) }

// PairsOf returns the pairs declared for resourceType.
func (r *Registry) PairsOf(resourceType string) []Pair {
	var out []Pair
	for _, p := range r.pairs {
		if p.Type == resourceType {
			out = append(out, p)
		}
	}
	return out
}

// setPairs keeps the pairs of ps whose type the registry has and whose
// parameters it supports with the right types. A pair that fails the
// check is an error when strict (pairs the caller gave) and is dropped
// otherwise (the defaults, in a registry built without some of their
// definitions).
func (r *Registry) setPairs(ps []Pair, strict bool) error {
pairs:
	for _, p := range ps {
		if r.types[p.Type] == nil {
			continue
		}
		for _, c := range []struct {
			code string
			typ  ParamType
		}{{p.Ref, Reference}, {p.Date, Date}, {p.Code, Token}} {
			if c.code == "" && c.typ == Token {
				continue
			}
			if q := r.Lookup(p.Type, c.code); q == nil || q.Type != c.typ || q.Unsupported != "" {
				if !strict {
					continue pairs
				}
				return fmt.Errorf("search: pair %s %s: %s is not a supported %s parameter of %s", p.Type, p.Key(), c.code, c.typ, p.Type)
			}
		}
		r.pairs = append(r.pairs, p)
	}
	return nil
}
