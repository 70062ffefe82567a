package directory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

// BenchmarkSlotWrite measures a slot write through the repo (marking a
// free slot busy) with the waiting-time upkeep
// the directory's Slot rule does, over 2,000 ten-minute slots from
// tomorrow: spread over 40 services (50 each) or all in one service's
// schedule; booking random slots or always the earliest free one (each
// such write changes the service's wait). "no-upkeep" is the same write
// with the upkeep switched off, the floor.
func BenchmarkSlotWrite(b *testing.B) {
	for _, bc := range []struct {
		name     string
		services int
		earliest bool
		upkeep   bool
	}{
		{"40x50/random", 40, false, true},
		{"40x50/earliest", 40, true, true},
		{"1x2000/random", 1, false, true},
		{"1x2000/earliest", 1, true, true},
		{"1x2000/no-upkeep", 1, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, _ := apptest.New(b, app.Config{})
			const n = 2000
			seedSlots(b, a, n, bc.services)
			ctx := context.Background()
			opts := write.TxOptions{DeferDerived: !bc.upkeep}
			// The order of the writes: slot i is the (i/services)-th of
			// service i%services, so ascending i books each service's
			// earliest free slot. The writes go 50 to a transaction, so
			// that the figure is the writer's work, not the disk's fsync.
			i := 0
			b.ResetTimer()
			for left := b.N; left > 0; {
				if i == n {
					b.StopTimer()
					i = 0
					setAll(b, a, n, "free")
					b.StartTimer()
				}
				m := min(left, 50, n-i)
				if err := a.Writes.UpdateWith(ctx, opts, func(ctx context.Context, tx *write.Tx) error {
					for j := range m {
						k := i + j
						if !bc.earliest {
							k = (k * 7919) % n
						}
						if err := setStatus(ctx, tx, fmt.Sprintf("x%d", k), "busy"); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				i += m
				left -= m
			}
		})
	}
}

// seedSlots writes services HealthcareService/hs<k> with Schedule/sc<k>,
// and n ten-minute free slots x<i> from tomorrow 09:00 UTC, slot i in
// schedule i mod services; then computes each service's wait.
func seedSlots(b *testing.B, a *app.App, n, services int) {
	b.Helper()
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(33 * time.Hour)
	ctx := context.Background()
	err := a.Writes.UpdateWith(ctx, write.TxOptions{DeferDerived: true}, func(ctx context.Context, tx *write.Tx) error {
		var raws []string
		for k := range services {
			raws = append(raws, fmt.Sprintf(`{"resourceType":"HealthcareService","id":"hs%d"}`, k),
				fmt.Sprintf(`{"resourceType":"Schedule","id":"sc%d","actor":[{"reference":"HealthcareService/hs%d"}]}`, k, k))
		}
		for i := range n {
			st := t0.Add(time.Duration(i/services) * 10 * time.Minute)
			raws = append(raws, fmt.Sprintf(`{"resourceType":"Slot","id":"x%d","schedule":{"reference":"Schedule/sc%d"},"status":"free","start":"%s","end":"%s"}`,
				i, i%services, st.Format(time.RFC3339), st.Add(10*time.Minute).Format(time.RFC3339)))
		}
		for _, raw := range raws {
			obj, err := fhir.ParseObject([]byte(raw))
			if err != nil {
				return err
			}
			typ, _ := obj.String("resourceType")
			id, _ := obj.String("id")
			if _, _, err := tx.Put(ctx, typ, id, obj, 0); err != nil {
				return err
			}
		}
		for k := range services {
			if err := a.Directory.Refresh(ctx, tx, fmt.Sprintf("hs%d", k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// setAll sets the status of slots x0 … x<n-1>, in one transaction.
func setAll(b *testing.B, a *app.App, n int, status string) {
	b.Helper()
	err := a.Writes.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
		for i := range n {
			if err := setStatus(ctx, tx, fmt.Sprintf("x%d", i), status); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func setStatus(ctx context.Context, tx *write.Tx, id, status string) error {
	res, err := tx.Read(ctx, "Slot", id)
	if err != nil {
		return err
	}
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	obj.Set("status", status)
	_, _, err = tx.Put(ctx, "Slot", id, obj, res.Version)
	return err
}
