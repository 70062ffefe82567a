package directory_test

import (
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/domain/directory"
)

// TestScheduleActorsMoveWaits: when a schedule's actors change, the waits
// of the services it leaves and joins are recomputed in the same
// transaction, also for a schedule written after its slots and for a
// deleted one.
func TestScheduleActorsMoveWaits(t *testing.T) {
	c := setup(t)
	now := time.Now().UTC()
	day := func(d int) time.Time {
		return time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, d)
	}
	// Slots first, their schedule after (as a bulk load may write them).
	for _, d := range []int{3, 5} {
		if status, out := c.do("POST", "/Slot", map[string]any{"resourceType": "Slot", "status": "free",
			"schedule": map[string]any{"reference": "Schedule/moving"},
			"start":    day(d).Format(time.RFC3339), "end": day(d).Add(15 * time.Minute).Format(time.RFC3339)}); status != 201 {
			t.Fatalf("POST Slot: %d %v", status, out)
		}
	}
	next := func(service string) time.Time {
		t.Helper()
		_, hs := c.do("GET", "/HealthcareService/"+service, nil)
		w, ok := directory.ReadWait(mustJSON(hs), time.Now())
		if !ok {
			return time.Time{}
		}
		return w.NextSlot
	}
	put := func(actors ...string) {
		t.Helper()
		var refs []any
		for _, a := range actors {
			refs = append(refs, map[string]any{"reference": "HealthcareService/" + a})
		}
		if status, out := c.do("PUT", "/Schedule/moving", map[string]any{"resourceType": "Schedule", "id": "moving", "actor": refs}); status != 200 && status != 201 {
			t.Fatalf("PUT Schedule: %d %v", status, out)
		}
	}
	const a, b = "hs-derm-gpwsi", "hs-derm-far"
	for _, tc := range []struct {
		name  string
		write func()
		wantA time.Time
		wantB time.Time
	}{
		{"created for A after its slots", func() { put(a) }, day(3), time.Time{}},
		{"moved to B", func() { put(b) }, time.Time{}, day(3)},
		{"shared by A and B", func() { put(b, a) }, day(3), day(3)},
		{"back to A alone", func() { put(a) }, day(3), time.Time{}},
		{"deleted", func() {
			if status, out := c.do("DELETE", "/Schedule/moving", nil); status != 200 && status != 204 {
				t.Fatalf("DELETE Schedule: %d %v", status, out)
			}
		}, time.Time{}, time.Time{}},
	} {
		tc.write()
		if got := next(a); !got.Equal(tc.wantA) {
			t.Errorf("%s: %s next slot %v, want %v", tc.name, a, got, tc.wantA)
		}
		if got := next(b); !got.Equal(tc.wantB) {
			t.Errorf("%s: %s next slot %v, want %v", tc.name, b, got, tc.wantB)
		}
	}
}
