package directory

import (
	"testing"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// TestLastSampledDay: the bound on the last sampled slot's day is never
// below the true day (else a relevant slot write would be skipped), and is
// exact when every sampled slot but the last shares the first one's day.
func TestLastSampledDay(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		days  []int
		exact bool
	}{
		{[]int{0, 0, 0, 0, 0}, true},
		{[]int{1, 1, 1, 1, 9}, true},
		{[]int{2, 2, 2, 2, 3}, true},
		{[]int{0, 1, 2, 3, 4}, false},
		{[]int{3, 3, 4, 4, 4}, false},
		{[]int{0, 0, 0, 0, 1}, true},
		{[]int{5, 6, 7}, false},
		{[]int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, true}, // a sample of 12: the mean no longer pins the sum
		{[]int{10, 40, 41, 77, 100, 100, 100}, false},
	} {
		var starts []time.Time
		for _, d := range tc.days {
			starts = append(starts, now.AddDate(0, 0, d))
		}
		w := ComputeWait(now, starts, len(tc.days))
		got, ok := lastSampledDay(w)
		want := tc.days[len(tc.days)-1]
		if !ok || got < want || (tc.exact && got != want) {
			t.Errorf("days %v (mean %v): lastSampledDay = %d, %v; want %d or more (exactly, %v)", tc.days, w.AverageDays, got, ok, want, tc.exact)
		}
	}
}

// TestSameWait: two waiting-time extensions are the same wait when they
// differ only in when they were computed.
func TestSameWait(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	w := ComputeWait(now, []time.Time{now.AddDate(0, 0, 1), now.AddDate(0, 0, 3)}, 5)
	base := waitExtension(w, now)
	later := waitExtension(w, now.Add(time.Hour))
	other := w
	other.AverageDays += 0.1
	noComputed := r4.Extension{Url: WaitingTime, Extension: base.Extension[:len(base.Extension)-1]}
	computedFirst := r4.Extension{Url: WaitingTime, Extension: append([]r4.Extension{base.Extension[len(base.Extension)-1]}, noComputed.Extension...)}
	noAverage := r4.Extension{Url: WaitingTime}
	for _, s := range base.Extension {
		if s.Url == "average-days" {
			s.ValueDecimal = nil
		}
		noAverage.Extension = append(noAverage.Extension, s)
	}
	for _, tc := range []struct {
		name string
		a, b r4.Extension
		want bool
	}{
		{"computed later", base, later, true},
		{"without computed", base, noComputed, true},
		{"computed first", base, computedFirst, true},
		{"another average", base, waitExtension(other, now), false},
		{"no average", base, noAverage, false},
		{"no slot", base, waitExtension(Wait{}, now), false},
		{"both without slots", waitExtension(Wait{}, now), waitExtension(Wait{}, now.Add(time.Hour)), true},
	} {
		if got := sameWait(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: sameWait = %v, want %v", tc.name, got, tc.want)
		}
		if got := sameWait(tc.b, tc.a); got != tc.want {
			t.Errorf("%s, swapped: sameWait = %v, want %v", tc.name, got, tc.want)
		}
	}
}
