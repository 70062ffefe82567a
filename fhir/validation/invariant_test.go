package validation

import "testing"

func TestDefinitelyAfter(t *testing.T) {
	tests := []struct {
		start, end any
		orEqual    bool
		want       bool
	}{
		{"2026-03-02T09:00:00Z", "2026-03-02T09:15:00Z", false, false},
		{"2026-03-02T09:15:00Z", "2026-03-02T09:00:00Z", false, true},
		{"2026-03-02T09:00:00Z", "2026-03-02T09:00:00Z", false, false}, // per-1 allows start = end
		{"2026-03-02T09:00:00Z", "2026-03-02T09:00:00Z", true, true},   // a slot does not
		{"2026-03-02T10:00:00+01:00", "2026-03-02T09:30:00Z", true, false},
		{"2026-03-02T10:00:00-01:00", "2026-03-02T09:30:00Z", false, true},
		{"2026-03-02T09:00:00.5Z", "2026-03-02T09:00:00.25Z", false, true},
		{"2020-02-01", "2020-01-31", false, true},
		{"2020-01-31", "2020-01-31", false, false},
		{"2020-02", "2020-01-31", false, true},
		{"2020", "2020-06-01", false, false}, // 2020 may be before June
		{"2021", "2020-12-31", false, true},
		// A date has no zone: against an instant it could be anywhere from -12:00 to +14:00.
		{"2020-01-02", "2020-01-01T23:00:00Z", false, false},
		{"2020-01-03", "2020-01-01T23:00:00Z", false, true},
		// Absent or unparsable values never violate.
		{nil, "2020-01-01", false, false},
		{"2020-01-01", 42, false, false},
		{"garbage", "2020-01-01", false, false},
	}
	for _, tt := range tests {
		if got := definitelyAfter(tt.start, tt.end, tt.orEqual); got != tt.want {
			t.Errorf("definitelyAfter(%v, %v, orEqual=%t) = %t, want %t", tt.start, tt.end, tt.orEqual, got, tt.want)
		}
	}
}
