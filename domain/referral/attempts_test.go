package referral

import (
	"context"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestAttemptsWindow: five failures of a UBRN within the window block it
// until the first of them expires, not another UBRN; the counts live in
// the store, so a second process (another attempts over the same store)
// sees them and adds to them.
func TestAttemptsWindow(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	const window = 2 * time.Second
	procs := [2]attempts{{st: st, max: 5, window: window}, {st: st, max: 5, window: window}}
	start := time.Now()
	for i := range 5 {
		if got, err := procs[i%2].blocked(ctx, "u"); err != nil || got != 0 {
			t.Fatalf("blocked after %d failures: %v, %v", i, got, err)
		}
		if err := procs[i%2].fail(ctx, "u"); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range procs {
		got, err := p.blocked(ctx, "u")
		if err != nil || got <= 0 || got > window {
			t.Errorf("process %d: blocked for %v (%v) after five failures, want (0, %v]", i, got, err, window)
		}
	}
	if err := procs[0].fail(ctx, "u"); err != nil { // a sixth, while blocked: nothing to add
		t.Fatal(err)
	}
	if got, err := procs[1].blocked(ctx, "other"); err != nil || got != 0 {
		t.Errorf("another UBRN is blocked for %v, %v", got, err)
	}
	for {
		got, err := procs[1].blocked(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			break
		}
		if time.Since(start) > window+10*time.Second {
			t.Fatal("still blocked long after the window")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if time.Since(start) < window {
		t.Errorf("unblocked after %v, before the window of %v", time.Since(start), window)
	}
}

func TestAccessCodeHash(t *testing.T) {
	code, stored, err := newAccessCode()
	if err != nil {
		t.Fatal(err)
	}
	if !codeMatches(stored, code) || !codeMatches(stored, " "+code[:4]+code[5:]) {
		t.Errorf("code %q does not match its hash %q", code, stored)
	}
	if codeMatches(stored, "AAAA-AAAA-AAAA") {
		t.Errorf("a wrong code matches")
	}
}
