package gens

import "testing"

// TestPutIf: a value read before a key was forgotten is not added
// after it, nor after everything was forgotten; one read after is.
func TestPutIf(t *testing.T) {
	g := New[string, int](4, 1<<20, func(int) int64 { return 1 }, func(k string) uint64 { return uint64(len(k)) })
	for _, forget := range []func(){func() { g.Forget([]string{"k"}) }, g.ForgetAll} {
		since := g.Epoch("k")
		forget()
		g.PutIf("k", 1, &since)
		if _, ok := g.Get("k"); ok {
			t.Fatalf("a value read before the key was forgotten was added")
		}
		since = g.Epoch("k")
		g.PutIf("k", 2, &since)
		if v, ok := g.Get("k"); !ok || v != 2 {
			t.Fatalf("a value read after: %d, %v", v, ok)
		}
		g.Forget([]string{"k"})
	}
}
