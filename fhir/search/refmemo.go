package search

import (
	"hash/maphash"
	"sync"
	"unsafe"
)

// refMemo remembers the reference entries Registry.References found in
// recently seen resource bodies, keyed by the resource type, the parameter
// and the body's bytes. The entries are a pure function of those three
// (the registry never changes once built), so a remembered answer is
// exact whatever happened to the resource since: a new version is a new
// body, and nothing needs forgetting. It saves _include from parsing the
// same bodies again (a free-slot page's 50 Slots for their schedule, asked
// for many times a second).
//
// It is bounded like the SQLite store's caches: shards of two generations;
// entries are added to the young one, which, when it holds half the
// shard's budget, becomes the old one as the old one is dropped; a hit in
// the old generation moves the entry back to the young one.
type refMemo struct {
	seed   maphash.Seed
	half   int64 // each generation's budget, per shard
	shards [refMemoShards]refMemoShard
}

const refMemoShards = 32

// refMemoBudget is how many bytes the memo keeps, bodies and entries
// counted: a region's 10,000 Slots take about 9 MB.
const refMemoBudget = 16 << 20

// refMemoMaxBody is the largest body remembered: larger ones are rare and
// would crowd out many small ones.
const refMemoMaxBody = 64 << 10

type refMemoShard struct {
	mu         sync.Mutex
	young, old map[uint64]refMemoEntry
	youngSize  int64
	_          [64]byte // keeps shards' locks off each other's cache lines
}

// refMemoEntry is one remembered answer: the key in full (a hash match is
// confirmed by comparing it) and the entries, whose strings share body.
type refMemoEntry struct {
	typ, param, body string
	entries          []Entry
}

// size is what an entry counts against the budget.
func (e *refMemoEntry) size() int64 {
	return int64(len(e.body)+len(e.typ)+len(e.param)) + int64(len(e.entries))*int64(unsafe.Sizeof(Entry{})) + 96
}

func newRefMemo(budget int64) *refMemo {
	m := &refMemo{seed: maphash.MakeSeed(), half: max(budget/refMemoShards/2, 1)}
	for i := range m.shards {
		m.shards[i].young = map[uint64]refMemoEntry{}
	}
	return m
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
	sh := &m.shards[h%refMemoShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.young[h]; ok {
		if e.is(typ, param, body) {
			return e.entries, true
		}
		return nil, false
	}
	if e, ok := sh.old[h]; ok && e.is(typ, param, body) {
		delete(sh.old, h)
		m.addLocked(sh, h, e)
		return e.entries, true
	}
	return nil, false
}

func (e *refMemoEntry) is(typ, param string, body []byte) bool {
	return e.typ == typ && e.param == param && e.body == string(body)
}

// put remembers entries for the key of hash h (body is the entries'
// backing copy of the body's bytes).
func (m *refMemo) put(h uint64, typ, param, body string, entries []Entry) {
	if len(body) > refMemoMaxBody {
		return
	}
	sh := &m.shards[h%refMemoShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.young[h]; ok {
		return
	}
	delete(sh.old, h)
	m.addLocked(sh, h, refMemoEntry{typ: typ, param: param, body: body, entries: entries})
}

// addLocked adds e to sh's young generation, turning generations over
// when it is full; sh.mu is held.
func (m *refMemo) addLocked(sh *refMemoShard, h uint64, e refMemoEntry) {
	if sh.youngSize >= m.half {
		sh.old, sh.young, sh.youngSize = sh.young, map[uint64]refMemoEntry{}, 0
	}
	sh.young[h] = e
	sh.youngSize += e.size()
}
