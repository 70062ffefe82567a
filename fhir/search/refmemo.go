package search

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"unsafe"

	"github.com/signpost-fhir/signpost/internal/gens"
)

// refMemo remembers the reference entries Registry.References found in
// recently seen resource bodies, keyed by the resource type, the parameter
// and the body's bytes. The entries are a pure function of those three
// (the registry never changes once built), so a remembered answer is
// exact whatever happened to the resource since: a new version is a new
// body, and nothing needs forgetting. It saves _include from parsing the
// same bodies again (a free-slot page's 50 Slots for their schedule, asked
// for many times a second). It is a gens.Cache keyed by the key's hash;
// an entry keeps the key in full, and a hash match is confirmed on it.
type refMemo struct {
	seed  maphash.Seed
	cache *gens.Cache[uint64, refMemoEntry]
}

const refMemoShards = 32

// refMemoBudget is how many bytes the memo keeps, bodies and entries
// counted: a region's 10,000 Slots take about 9 MB.
const refMemoBudget = 16 << 20

// refMemoMaxBody is the largest body remembered: larger ones are rare and
// would crowd out many small ones.
const refMemoMaxBody = 64 << 10

// refMemoEntry is one remembered answer: the key in full and the
// entries, whose strings share body.
type refMemoEntry struct {
	typ, param, body string
	entries          []Entry
}

// size is what an entry counts against the budget.
func (e refMemoEntry) size() int64 {
	return int64(len(e.body)+len(e.typ)+len(e.param)) + int64(len(e.entries))*int64(unsafe.Sizeof(Entry{})) + 96
}

func (e refMemoEntry) is(typ, param string, body []byte) bool {
	return e.typ == typ && e.param == param && e.body == string(body)
}

func newRefMemo(budget int64) *refMemo {
	return &refMemo{seed: maphash.MakeSeed(),
		cache: gens.New[uint64, refMemoEntry](refMemoShards, budget, refMemoEntry.size, func(h uint64) uint64 { return h })}
}

// hash is the key's hash.
func (m *refMemo) hash(typ, param string, body []byte) uint64 {
	var h maphash.Hash
	startKey(&h, m.seed, typ, param)
	h.WriteByte(0)
	h.Write(body)
	return h.Sum64()
}

// startKey seeds h and writes a memo key's strings into it, each after
// the first preceded by a 0 byte.
func startKey(h *maphash.Hash, seed maphash.Seed, parts ...string) {
	h.SetSeed(seed)
	for i, p := range parts {
		if i > 0 {
			h.WriteByte(0)
		}
		h.WriteString(p)
	}
}

// get returns the entries remembered for the key of hash h.
func (m *refMemo) get(h uint64, typ, param string, body []byte) ([]Entry, bool) {
	if len(body) > refMemoMaxBody {
		return nil, false
	}
	if e, ok := m.cache.Get(h); ok && e.is(typ, param, body) {
		return e.entries, true
	}
	return nil, false
}

// put remembers entries for the key of hash h (body is the entries'
// backing copy of the body's bytes).
func (m *refMemo) put(h uint64, typ, param, body string, entries []Entry) {
	if len(body) <= refMemoMaxBody {
		m.cache.Put(h, refMemoEntry{typ: typ, param: param, body: body, entries: entries})
	}
}

// Targets returns the distinct resources that bodies (each a resource of
// resourceType) point at through param ("*": any reference parameter),
// restricted to resources of type target unless it is "": what _include
// follows from a page of matches. Each target comes once, in the order
// first found; a reference without a type and id (a URL, a logical
// identifier) is not a target.
//
// A page asked again with the very same bodies is answered from the page
// memo (pageMemo) in one lookup; otherwise each body's entries come from
// References.
func (r *Registry) Targets(resourceType string, bodies [][]byte, param, target string) ([]Ref, error) {
	h := r.pages.hash(resourceType, param, target, bodies)
	if refs, ok := r.pages.get(h, resourceType, param, target, bodies); ok {
		return refs, nil
	}
	var refs []Ref
	seen := map[Ref]bool{}
	for _, body := range bodies {
		entries, err := r.References(resourceType, body, param)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type != Reference || e.RefType == "" || e.RefID == "" {
				continue
			}
			if (param != "*" && e.Param != param) || (target != "" && e.RefType != target) {
				continue
			}
			if ref := (Ref{Type: e.RefType, ID: e.RefID}); !seen[ref] {
				seen[ref] = true
				refs = append(refs, ref)
			}
		}
	}
	refs = refs[:len(refs):len(refs)]
	r.pages.put(h, pageMemoEntry{typ: resourceType, param: param, target: target, bodies: slices.Clone(bodies), refs: refs})
	return refs, nil
}

// pageMemo remembers Targets' answers for whole pages, keyed by the
// bodies' identity (where each one's bytes start in memory, and its
// length), not by their bytes: a page read again from a store that
// caches bodies (the SQLite store's body cache hands out the same slices
// while it keeps them) costs one hash of a few pointers and one lookup,
// where the reference memo costs a hash of every body and a lookup each
// (in the mixed workload, cold in the processor's caches, 50 µs a page of
// 50 Slots).
//
// The identity is as good as the bytes: an entry holds the slices it was
// computed from, so their memory cannot be freed and reused while it is
// remembered, and a resource's body is never changed in place once read
// (fhir.Resource). A page whose bodies were read afresh never hits: it
// costs one entry, which ages out.
type pageMemo struct {
	seed  maphash.Seed
	cache *gens.Cache[uint64, pageMemoEntry]
}

// pageMemoBudget is how many bytes the page memo counts, the bodies it
// holds included (most are held by the store's body cache as well).
const pageMemoBudget = 16 << 20

type pageMemoEntry struct {
	typ, param, target string
	bodies             [][]byte
	refs               []Ref
}

func (e pageMemoEntry) size() int64 {
	n := int64(len(e.typ)+len(e.param)+len(e.target)) + int64(len(e.bodies))*int64(unsafe.Sizeof([]byte(nil))) + 128
	for _, b := range e.bodies {
		n += int64(len(b))
	}
	for _, r := range e.refs {
		n += int64(len(r.Type)+len(r.ID)) + int64(unsafe.Sizeof(r))
	}
	return n
}

// is reports whether e was computed from the very same bodies.
func (e pageMemoEntry) is(typ, param, target string, bodies [][]byte) bool {
	if e.typ != typ || e.param != param || e.target != target || len(e.bodies) != len(bodies) {
		return false
	}
	for i, b := range bodies {
		if len(b) != len(e.bodies[i]) || unsafe.SliceData(b) != unsafe.SliceData(e.bodies[i]) {
			return false
		}
	}
	return true
}

func newPageMemo(budget int64) *pageMemo {
	return &pageMemo{seed: maphash.MakeSeed(),
		cache: gens.New[uint64, pageMemoEntry](refMemoShards, budget, pageMemoEntry.size, func(h uint64) uint64 { return h })}
}

// hash is the hash of a page's key: the strings and each body's identity.
func (m *pageMemo) hash(typ, param, target string, bodies [][]byte) uint64 {
	var h maphash.Hash
	startKey(&h, m.seed, typ, param, target)
	var buf [16]byte
	for _, b := range bodies {
		binary.LittleEndian.PutUint64(buf[:8], uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))))
		binary.LittleEndian.PutUint64(buf[8:], uint64(len(b)))
		h.Write(buf[:])
	}
	return h.Sum64()
}

func (m *pageMemo) get(h uint64, typ, param, target string, bodies [][]byte) ([]Ref, bool) {
	if e, ok := m.cache.Get(h); ok && e.is(typ, param, target, bodies) {
		return e.refs, true
	}
	return nil, false
}

func (m *pageMemo) put(h uint64, e pageMemoEntry) { m.cache.Put(h, e) }
