package sqlite

import (
	"sync"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
)

// SQLite's memory lives outside the Go heap (the driver's own allocator),
// so the Go runtime neither counts nor bounds it. Each connection's page
// cache grows to its cache_size, and a page of 4 KiB takes an 8 KiB slot
// of the allocator, which keeps what it once mapped: in the soak the
// process grew for as long as it ran. Two of SQLite's own settings bound
// it instead: memory statistics (off in the driver's build, on here) let
// SQLite count what it holds, and the soft heap limit makes every page
// cache reuse its pages rather than allocate once SQLite holds
// SoftHeapLimit bytes in all (https://sqlite.org/c3ref/hard_heap_limit64.html).

// SoftHeapLimit is the bytes SQLite may hold in the process, over every
// store and connection, before its page caches stop growing: room for
// both writers' caches (cacheKiB each: the main and the audit database)
// and the read connections' working pages.
const SoftHeapLimit = 256 << 20

var memoryOnce sync.Once

// configureMemory turns SQLite's memory statistics on and sets its soft
// heap limit, once per process, before the first connection opens (SQLite
// refuses the statistics setting afterwards; then MemoryUsed reads 0 and
// only each connection's cache_size bounds its cache). Whatever opens a
// connection calls it first: OpenOptions and SnapshotFile.
func configureMemory() {
	memoryOnce.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		va := libc.NewVaList(int32(1))
		defer libc.Xfree(tls, va)
		if lib.Xsqlite3_config(tls, lib.SQLITE_CONFIG_MEMSTATUS, va) == lib.SQLITE_OK {
			lib.Xsqlite3_soft_heap_limit64(tls, SoftHeapLimit)
		}
	})
}

// Memory is what SQLite holds allocated in this process, over every
// store and connection: page caches, prepared statements, schemas.
type Memory struct {
	Used      int64 // bytes allocated now (sqlite3_memory_used)
	Highwater int64 // the most allocated at once since the process started
}

// MemoryUsed returns SQLite's allocations in this process.
func MemoryUsed() Memory {
	tls := libc.NewTLS()
	defer tls.Close()
	return Memory{Used: int64(lib.Xsqlite3_memory_used(tls)), Highwater: int64(lib.Xsqlite3_memory_highwater(tls, 0))}
}
