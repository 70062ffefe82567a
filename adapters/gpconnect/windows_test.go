package gpconnect_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters/gpconnect"
)

// TestWindows: a horizon is searched in windows of at most 14 days (GP
// Connect's limit), covering it from its start to its end, each window
// overlapping the one before by an hour so that a slot crossing a
// window's end is found by the next.
func TestWindows(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	h := time.Hour
	w := func(from, to time.Duration) gpconnect.Window {
		return gpconnect.Window{From: t0.Add(from), To: t0.Add(to)}
	}
	tests := []struct {
		name string
		span time.Duration
		want []gpconnect.Window
	}{
		{"empty", 0, nil},
		{"negative", -day, nil},
		{"one day", day, []gpconnect.Window{w(0, day)}},
		{"exactly 14 days", 14 * day, []gpconnect.Window{w(0, 14*day)}},
		{"14 days and a minute", 14*day + time.Minute, []gpconnect.Window{w(0, 14*day), w(14*day-h, 14*day+time.Minute)}},
		{"28 days (the default)", 28 * day, []gpconnect.Window{w(0, 14*day), w(14*day-h, 28*day-h), w(28*day-2*h, 28*day)}},
		{"27 days", 27 * day, []gpconnect.Window{w(0, 14*day), w(14*day-h, 27*day)}},
		{"60 days", 60 * day, []gpconnect.Window{w(0, 14*day), w(14*day-h, 28*day-h), w(28*day-2*h, 42*day-2*h), w(42*day-3*h, 56*day-3*h), w(56*day-4*h, 60*day)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := gpconnect.Windows(t0, t0.Add(tc.span))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("Windows (-want +got):\n%s", diff)
			}
			for i, g := range got {
				if g.To.Sub(g.From) > gpconnect.MaxWindow || !g.To.After(g.From) {
					t.Errorf("window %d is %v long", i, g.To.Sub(g.From))
				}
				if i > 0 && g.From.After(got[i-1].To) {
					t.Errorf("a gap between windows %d and %d", i-1, i)
				}
			}
			if len(got) > 0 && (!got[0].From.Equal(t0) || !got[len(got)-1].To.Equal(t0.Add(tc.span))) {
				t.Errorf("windows do not cover the horizon: %v", got)
			}
		})
	}
}
