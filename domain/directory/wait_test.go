package directory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// TestBookingNextFreeSlotMovesWait books the service's next free slot
// through POST Appointment: the wait moves to the slot after it, and back
// when the appointment is cancelled.
func TestBookingNextFreeSlotMovesWait(t *testing.T) {
	c := setup(t)
	_, sched := c.do("POST", "/Schedule", map[string]any{"resourceType": "Schedule",
		"actor": []any{map[string]any{"reference": "HealthcareService/hs-derm-city"}}})
	now := time.Now().UTC()
	var ids []string
	var starts []time.Time
	for _, d := range []int{2, 4, 9} {
		start := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, d)
		status, s := c.do("POST", "/Slot", map[string]any{"resourceType": "Slot", "status": "free",
			"schedule": map[string]any{"reference": "Schedule/" + sched["id"].(string)},
			"start":    start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)})
		if status != 201 {
			t.Fatalf("POST Slot: %d %v", status, s)
		}
		ids = append(ids, s["id"].(string))
		starts = append(starts, start)
	}
	next := func() time.Time {
		t.Helper()
		_, hs := c.do("GET", "/HealthcareService/hs-derm-city", nil)
		w, ok := directory.ReadWait(mustJSON(hs), time.Now())
		if !ok {
			return time.Time{}
		}
		return w.NextSlot
	}
	if got := next(); !got.Equal(starts[0]) {
		t.Fatalf("before booking, next slot = %v, want %v", got, starts[0])
	}
	status, appt := c.do("POST", "/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
		"slot":        []any{map[string]any{"reference": "Slot/" + ids[0]}},
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/pat-1"}, "status": "accepted"}}})
	if status != 201 {
		t.Fatalf("booking the next free slot: %d %v", status, appt)
	}
	if got := next(); !got.Equal(starts[1]) {
		t.Errorf("after booking the next free slot, next slot = %v, want %v", got, starts[1])
	}
	appt["status"] = "cancelled"
	appt["cancelationReason"] = map[string]any{"text": "patient cancelled"}
	if status, out := c.do("PUT", "/Appointment/"+appt["id"].(string), appt); status != 200 {
		t.Fatalf("cancelling: %d %v", status, out)
	}
	if got := next(); !got.Equal(starts[0]) {
		t.Errorf("after cancelling, next slot = %v, want %v", got, starts[0])
	}
}

// modelSlot is a slot as TestWaitMatchesRecompute's model sees it.
type modelSlot struct {
	sched  string
	status string
	start  time.Time
}

// TestWaitMatchesRecompute makes random slot writes (new slots, bookings,
// frees, moves in time and between schedules, deletes, several in one
// transaction) over services with one, two and shared schedules, and after
// every transaction compares each service's stored wait with one computed
// from scratch over a model of all the slots: the incremental upkeep never
// drifts from the truth.
func TestWaitMatchesRecompute(t *testing.T) {
	a, _ := apptest.New(t, app.Config{})
	ctx := context.Background()
	loc := a.Location
	services := []string{"s0", "s1", "s2"}
	// sc0 → s0; sc1, sc2 → s1; sc3 → s1 and s2.
	scheds := map[string][]string{"sc0": {"s0"}, "sc1": {"s1"}, "sc2": {"s1"}, "sc3": {"s1", "s2"}}
	schedNames := []string{"sc0", "sc1", "sc2", "sc3"}
	put := func(ctx context.Context, tx *write.Tx, typ, id string, v map[string]any) {
		t.Helper()
		v["resourceType"], v["id"] = typ, id
		b, _ := json.Marshal(v)
		obj, err := fhir.ParseObject(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tx.Put(ctx, typ, id, obj, 0); err != nil {
			t.Fatalf("%s/%s: %v", typ, id, err)
		}
	}
	err := a.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		for _, s := range services {
			put(ctx, tx, "HealthcareService", s, map[string]any{"name": s})
		}
		for _, sc := range schedNames {
			var actors []any
			for _, s := range scheds[sc] {
				actors = append(actors, map[string]any{"reference": "HealthcareService/" + s})
			}
			put(ctx, tx, "Schedule", sc, map[string]any{"actor": actors})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]*modelSlot{}
	var ids []string
	today := time.Now().In(loc)
	randStart := func() time.Time {
		// Mostly the next three days (so samples share days and the last
		// sampled day is often the bound), else days -1 to 12, at a few
		// hours, so that ties happen.
		d := rng.IntN(3)
		if rng.IntN(3) == 0 {
			d = rng.IntN(14) - 1
		}
		return time.Date(today.Year(), today.Month(), today.Day(), 9+rng.IntN(3)*2, 0, 0, 0, loc).AddDate(0, 0, d)
	}
	writeSlot := func(ctx context.Context, tx *write.Tx, id string, s *modelSlot) {
		put(ctx, tx, "Slot", id, map[string]any{"status": s.status,
			"schedule": map[string]any{"reference": "Schedule/" + s.sched},
			"start":    s.start.Format(time.RFC3339), "end": s.start.Add(20 * time.Minute).Format(time.RFC3339)})
	}
	statuses := []string{"free", "free", "busy", "busy-tentative"}
	for step := range 400 {
		err := a.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
			for range 1 + rng.IntN(3) {
				switch op := rng.IntN(10); {
				case op < 3 || len(ids) == 0: // a new slot
					id := fmt.Sprintf("x%d", len(ids))
					s := &modelSlot{sched: schedNames[rng.IntN(len(schedNames))], status: statuses[rng.IntN(len(statuses))], start: randStart()}
					writeSlot(ctx, tx, id, s)
					model[id] = s
					ids = append(ids, id)
				case op < 8: // book or free
					id := ids[rng.IntN(len(ids))]
					s, ok := model[id]
					if !ok {
						continue
					}
					s.status = statuses[rng.IntN(len(statuses))]
					writeSlot(ctx, tx, id, s)
				case op == 8: // move in time or to another schedule
					id := ids[rng.IntN(len(ids))]
					s, ok := model[id]
					if !ok {
						continue
					}
					if rng.IntN(2) == 0 {
						s.start = randStart()
					} else {
						s.sched = schedNames[rng.IntN(len(schedNames))]
					}
					writeSlot(ctx, tx, id, s)
				default: // delete
					id := ids[rng.IntN(len(ids))]
					if _, err := tx.Delete(ctx, "Slot", id, 0); err != nil {
						return err
					}
					delete(model, id)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		now := time.Now()
		for _, svc := range services {
			var starts []time.Time
			for _, s := range model {
				if s.status == "free" && !s.start.Before(now) && contains(scheds[s.sched], svc) {
					starts = append(starts, s.start)
				}
			}
			want := directory.ComputeWait(now.In(loc), starts, 5)
			res, err := a.Store.Read(ctx, "HealthcareService", svc)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.AddDerived(ctx, a.Store, []*fhir.Resource{res}); err != nil { // as served
				t.Fatal(err)
			}
			got, ok := directory.ReadWait(res.JSON, now.In(loc))
			if !ok {
				got = directory.Wait{}
			}
			if !got.NextSlot.Equal(want.NextSlot) || got.Days != want.Days || got.AverageDays != want.AverageDays || got.Sample != want.Sample {
				t.Fatalf("step %d: %s's wait = %+v, want %+v", step, svc, got, want)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestWaitFindsFarSlot: when a sampled slot is taken and the next free slot
// lies months after the sample, the wait still finds it (past the windows
// that the usual case needs).
func TestWaitFindsFarSlot(t *testing.T) {
	c := setup(t)
	_, sched := c.do("POST", "/Schedule", map[string]any{"resourceType": "Schedule",
		"actor": []any{map[string]any{"reference": "HealthcareService/hs-derm-city"}}})
	loc, _ := time.LoadLocation("Europe/London")
	today := time.Now().In(loc)
	var first map[string]any
	for _, at := range []struct{ day, hour int }{{2, 9}, {2, 10}, {2, 11}, {2, 12}, {2, 13}, {200, 9}} {
		start := time.Date(today.Year(), today.Month(), today.Day(), at.hour, 0, 0, 0, loc).AddDate(0, 0, at.day)
		status, s := c.do("POST", "/Slot", map[string]any{"resourceType": "Slot", "status": "free",
			"schedule": map[string]any{"reference": "Schedule/" + sched["id"].(string)},
			"start":    start.Format(time.RFC3339), "end": start.Add(15 * time.Minute).Format(time.RFC3339)})
		if status != 201 {
			t.Fatalf("POST Slot: %d %v", status, s)
		}
		if first == nil {
			first = s
		}
	}
	wait := func() string {
		t.Helper()
		_, hs := c.do("GET", "/HealthcareService/hs-derm-city", nil)
		w, ok := directory.ReadWait(mustJSON(hs), time.Now().In(loc))
		if !ok {
			return "none"
		}
		return itoa(w.Days) + "/" + ftoa(w.AverageDays) + "/" + itoa(w.Sample)
	}
	if got := wait(); got != "2/2/5" {
		t.Fatalf("wait = %s, want 2/2/5", got)
	}
	first["status"] = "busy"
	if status, out := c.do("PUT", "/Slot/"+first["id"].(string), first); status != 200 {
		t.Fatalf("PUT Slot: %d %v", status, out)
	}
	if got := wait(); got != "2/41.6/5" {
		t.Errorf("after the first slot is taken, wait = %s, want 2/41.6/5 (the day-200 slot joins the sample)", got)
	}
}
