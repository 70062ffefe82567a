package search

import (
	"testing"
	"time"
)

func TestDateRange(t *testing.T) {
	loc := london(t)
	us := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	tests := []struct {
		in        string
		low, high string
	}{
		{"2026", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},         // winter: London is UTC
		{"2026-03", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00+01:00"}, // ends in summer time
		{"2026-07-01", "2026-07-01T00:00:00+01:00", "2026-07-02T00:00:00+01:00"},
		// Clock changes: the last Sunday of March has 23 hours, of October 25.
		{"2026-03-29", "2026-03-29T00:00:00Z", "2026-03-30T00:00:00+01:00"},
		{"2026-10-25", "2026-10-25T00:00:00+01:00", "2026-10-26T00:00:00Z"},
		{"2026-03-29T10:00", "2026-03-29T10:00:00+01:00", "2026-03-29T10:01:00+01:00"},
		{"2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z"},
		{"2026-03-01T10:00:00+01:00", "2026-03-01T09:00:00Z", "2026-03-01T09:00:01Z"},
		{"2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.6Z"},
		{"2026-03-01T10:00:00.123456789Z", "2026-03-01T10:00:00.123456Z", "2026-03-01T10:00:00.123457Z"},
	}
	for _, tt := range tests {
		lo, hi, err := DateRange(tt.in, loc)
		if err != nil {
			t.Errorf("DateRange(%q): %v", tt.in, err)
			continue
		}
		if lo != us(tt.low) || hi != us(tt.high) {
			t.Errorf("DateRange(%q) = [%v, %v), want [%s, %s)", tt.in,
				time.UnixMicro(lo).UTC(), time.UnixMicro(hi).UTC(), tt.low, tt.high)
		}
	}
	for _, bad := range []string{"", "26", "2026-13", "2026-02-30", "2026-03-01T25:00", "2026-03-01T10:00+1", "2026-03-01 10:00", "2026-03-01T10"} {
		if _, _, err := DateRange(bad, loc); err == nil {
			t.Errorf("DateRange(%q) succeeded, want an error", bad)
		}
	}
}

func TestNumberRange(t *testing.T) {
	tests := []struct {
		in        string
		low, high float64
	}{
		{"100", 99.5, 100.5},
		{"1.50", 1.495, 1.505},
		{"1e2", 50, 150},
		{"-3", -3.5, -2.5},
	}
	for _, tt := range tests {
		lo, hi, err := NumberRange(tt.in)
		if err != nil || !near(lo, tt.low) || !near(hi, tt.high) {
			t.Errorf("NumberRange(%q) = %v, %v, %v; want %v, %v", tt.in, lo, hi, err, tt.low, tt.high)
		}
	}
	if _, _, err := NumberRange("ten"); err == nil {
		t.Error(`NumberRange("ten") succeeded`)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"smith", "smith"},
		{"Smith", "smith"},
		{"Zoë  O'Brien ", "zoe o'brien"},
		{"ÉLODIE", "elodie"},
		{"Ångström", "angstrom"},
		{"ﬁnch", "finch"}, // compatibility ligature
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func BenchmarkNormalizeASCII(b *testing.B) {
	for b.Loop() {
		Normalize("general practice")
	}
}
