package sqlite

import (
	"testing"
)

// TestMemoryCountedAndBounded: once a store is open, SQLite counts what
// it holds (the metric signpost_sqlite_memory_bytes reads it) and every
// connection sees the soft heap limit that bounds its page cache.
func TestMemoryCountedAndBounded(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putPatients(t, s, 0, 200)
	m := MemoryUsed()
	if m.Used <= 0 || m.Highwater < m.Used {
		t.Fatalf("MemoryUsed() = %+v: SQLite's memory statistics are off", m)
	}
	for _, c := range []struct {
		name string
		q    func() (int64, error)
	}{
		{"writer", func() (n int64, err error) { return n, s.wdb.QueryRow("PRAGMA soft_heap_limit").Scan(&n) }},
		{"reader", func() (n int64, err error) { return n, s.rdb.QueryRow("PRAGMA soft_heap_limit").Scan(&n) }},
	} {
		n, err := c.q()
		if err != nil {
			t.Fatal(c.name, err)
		}
		if n != SoftHeapLimit {
			t.Errorf("%s connection: soft_heap_limit = %d, want %d", c.name, n, SoftHeapLimit)
		}
	}
}
