package referral_test

import (
	"context"
	"encoding/json"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// tookPlace moves the appointment ref ("Appointment/id") and its slots
// back in time, straight in the store, as time passing would: afterwards
// the appointment started startedAgo ago (two hours when 0), so that it
// can be recorded as arrived, fulfilled or (once ended) a no-show.
func tookPlace(c *client, ref string, startedAgo ...time.Duration) {
	c.t.Helper()
	ago := 2 * time.Hour
	if len(startedAgo) > 0 {
		ago = startedAgo[0]
	}
	ctx := context.Background()
	err := c.a.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, id, _ := fhir.SplitReference(ref)
		res, err := tx.Read(ctx, "Appointment", id)
		if err != nil {
			return err
		}
		var a struct {
			Start string `json:"start"`
			Slot  []struct {
				Reference string `json:"reference"`
			} `json:"slot"`
		}
		if err := json.Unmarshal(res.JSON, &a); err != nil {
			return err
		}
		start, err := time.Parse(time.RFC3339, a.Start)
		if err != nil {
			return err
		}
		shift := time.Now().Add(-ago).Sub(start).Truncate(time.Second)
		move := func(res *fhir.Resource) error {
			obj, err := fhir.ParseObject(res.JSON)
			if err != nil {
				return err
			}
			for _, k := range []string{"start", "end"} {
				if s, ok := obj.String(k); ok {
					t, err := time.Parse(time.RFC3339, s)
					if err != nil {
						return err
					}
					obj.Set(k, t.Add(shift).UTC().Format(time.RFC3339))
				}
			}
			idx, err := c.a.Search.Extract(res.Type, obj.Bytes())
			if err != nil {
				return err
			}
			next := &fhir.Resource{Type: res.Type, ID: res.ID, Version: res.Version + 1, LastUpdated: time.Now().UTC(), JSON: obj.Bytes()}
			return tx.Put(ctx, &store.Write{Resource: next, Index: idx})
		}
		for _, s := range a.Slot {
			_, sid, _ := fhir.SplitReference(s.Reference)
			slot, err := tx.Read(ctx, "Slot", sid)
			if err != nil {
				return err
			}
			if err := move(slot); err != nil {
				return err
			}
		}
		return move(res)
	})
	if err != nil {
		c.t.Fatalf("moving %s into the past: %v", ref, err)
	}
}
