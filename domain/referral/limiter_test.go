package referral

import (
	"testing"
	"time"
)

func TestLimiterWindow(t *testing.T) {
	l := newLimiter(5, 15*time.Minute)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		if got := l.blocked("u", t0.Add(time.Duration(i)*time.Minute)); got != 0 {
			t.Fatalf("blocked after %d failures: %v", i, got)
		}
		l.fail("u", t0.Add(time.Duration(i)*time.Minute))
	}
	for _, tc := range []struct {
		at   time.Duration
		want time.Duration
	}{
		{5 * time.Minute, 10 * time.Minute}, // blocked until the first failure is 15 minutes old
		{14 * time.Minute, 1 * time.Minute},
		{15 * time.Minute, 0}, // the window has passed for the first failure
	} {
		if got := l.blocked("u", t0.Add(tc.at)); got != tc.want {
			t.Errorf("at +%v: blocked for %v, want %v", tc.at, got, tc.want)
		}
	}
	if got := l.blocked("other", t0.Add(5*time.Minute)); got != 0 {
		t.Errorf("another UBRN is blocked for %v", got)
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
