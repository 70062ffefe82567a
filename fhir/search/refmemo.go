package search

import (
	"hash/maphash"
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
	h.SetSeed(m.seed)
	h.WriteString(typ)
	h.WriteByte(0)
	h.WriteString(param)
	h.WriteByte(0)
	h.Write(body)
	return h.Sum64()
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
