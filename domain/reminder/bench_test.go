package reminder_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSweepSteady measures the sweep a server runs every minute once
// the reminders due are made: 300 booked appointments within the longest
// lead, each reminded already, so the sweep finds nothing to do.
func BenchmarkSweepSteady(b *testing.B) {
	f := newFixture(b, false)
	f.basics()
	for i := range 300 {
		p := fmt.Sprintf("p%d", i)
		f.patient(p, mobile("07700 900123"))
		f.book(p, "s"+p, f.t0.Add(time.Duration(2+i%100)*time.Hour+time.Duration(i)*time.Minute))
	}
	if q, _ := f.sweep(); q != 300 {
		b.Fatalf("queued %d, want 300", q)
	}
	b.ResetTimer()
	for range b.N {
		if q, _ := f.sweep(); q != 0 {
			b.Fatalf("queued %d", q)
		}
	}
}
