package booking

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Finding is one inconsistency between slots and appointments.
type Finding struct {
	Slot         string   // "Slot/id"
	Appointments []string // the appointments involved, "Appointment/id"
	Problem      string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s %v", f.Slot, f.Problem, f.Appointments)
}

// Summary counts what Check saw.
type Summary struct {
	Slots, BusySlots, Appointments, LiveAppointments int
}

// Check reads every Schedule, Slot and Appointment from one consistent
// snapshot of st (a read-only transaction, so it can run beside a live
// server) and reports: a slot held by more than one live appointment; a
// live appointment whose slot is missing or not in the status it should
// hold it in (busy, or busy-tentative for a hold); a busy or
// busy-tentative slot that no live appointment holds, unless tagged
// externally-busy; a free slot that has not ended and lies outside its
// schedule's planning horizon (the write path refuses one; signpost import
// does not run it). Date-only horizons are read in loc.
func Check(ctx context.Context, st store.Store, loc *time.Location) ([]Finding, Summary, error) {
	var findings []Finding
	var sum Summary
	errDone := fmt.Errorf("read-only")
	now := time.Now()
	err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		schedules := map[string]*schedule{}
		err := scan(ctx, tx, "Schedule", func(res *fhir.Resource) error {
			sc, err := decode[schedule](res.JSON)
			if err != nil {
				return fmt.Errorf("Schedule/%s: %w", res.ID, err)
			}
			schedules[res.ID] = sc
			return nil
		})
		if err != nil {
			return err
		}
		slots := map[string]*slot{}
		err = scan(ctx, tx, "Slot", func(res *fhir.Resource) error {
			s, err := decode[slot](res.JSON)
			if err != nil {
				return fmt.Errorf("Slot/%s: %w", res.ID, err)
			}
			slots[res.ID] = s
			return nil
		})
		if err != nil {
			return err
		}
		holders := map[string][]string{}
		want := map[string]string{}
		err = scan(ctx, tx, "Appointment", func(res *fhir.Resource) error {
			sum.Appointments++
			a, err := decode[appointment](res.JSON)
			if err != nil {
				return fmt.Errorf("Appointment/%s: %w", res.ID, err)
			}
			if !a.live() {
				return nil
			}
			sum.LiveAppointments++
			ids, err := a.slotIDs()
			if err != nil {
				return nil
			}
			for _, id := range ids {
				holders[id] = append(holders[id], "Appointment/"+res.ID)
				want[id+" "+res.ID] = slotStatus(a.Status)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id, hs := range holders {
			s := slots[id]
			if len(hs) > 1 {
				findings = append(findings, Finding{"Slot/" + id, hs, "held by more than one live appointment"})
			}
			for _, h := range hs {
				status := want[id+" "+h[len("Appointment/"):]]
				switch {
				case s == nil:
					findings = append(findings, Finding{"Slot/" + id, []string{h}, "a live appointment's slot does not exist"})
				case s.Status != status:
					findings = append(findings, Finding{"Slot/" + id, []string{h},
						fmt.Sprintf("is %s but a live appointment holds it (want %s)", s.Status, status)})
				}
			}
		}
		for id, s := range slots {
			sum.Slots++
			if s.Status == "free" {
				start, err1 := time.Parse(time.RFC3339, s.Start)
				end, err2 := time.Parse(time.RFC3339, s.End)
				scID, ok := refID(elem.Str(s.Schedule.Reference), "Schedule")
				if sc := schedules[scID]; ok && sc != nil && err1 == nil && err2 == nil && end.After(now) && !inHorizon(sc, start, end, loc) {
					findings = append(findings, Finding{"Slot/" + id, nil, "is free outside the planning horizon of Schedule/" + scID})
				}
			}
			if s.Status != "busy" && s.Status != "busy-tentative" {
				continue
			}
			sum.BusySlots++
			if len(holders[id]) == 0 && !s.externallyBusy() {
				findings = append(findings, Finding{"Slot/" + id, nil, "is " + s.Status + " but no live appointment holds it"})
			}
		}
		return errDone // read only: nothing to commit
	})
	if err != nil && err != errDone {
		return nil, sum, err
	}
	sort.Slice(findings, func(i, j int) bool {
		if findings[i].Slot != findings[j].Slot {
			return findings[i].Slot < findings[j].Slot
		}
		return findings[i].Problem < findings[j].Problem
	})
	return findings, sum, nil
}

// scan calls fn for every current resource of typ, page by page.
func scan(ctx context.Context, r store.Reader, typ string, fn func(*fhir.Resource) error) error {
	q := &search.Query{Type: typ, Count: 1000}
	for {
		page, err := r.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, res := range page.Resources {
			if err := fn(res); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}
