package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/store"
)

// check runs the booking consistency checker over the data directory: it
// prints each finding on stdout, a summary on stderr, and fails when
// there is any finding. It reads one consistent snapshot, so it may run
// beside a live server.
func check(args []string) error {
	fs := newFlags("check")
	var cfg app.Config
	addStoreFlags(fs, &cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fi, err := os.Stat(cfg.Data); err != nil || !fi.IsDir() {
		return fmt.Errorf("check: --data %q is not a data directory", cfg.Data)
	}
	st, err := app.OpenStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return fmt.Errorf("check: --timezone: %w", err)
	}
	findings, sum, err := booking.Check(ctx, st, loc)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	for _, f := range findings {
		fmt.Println(f)
	}
	fmt.Fprintf(os.Stderr, "checked %d slots (%d busy) and %d appointments (%d live): %d findings\n",
		sum.Slots, sum.BusySlots, sum.Appointments, sum.LiveAppointments, len(findings))
	if len(findings) > 0 {
		return fmt.Errorf("check: %d inconsistencies between slots and appointments", len(findings))
	}
	return checkAudits(ctx, cfg, st)
}

// checkAudits reads the audit database, when the data directory has one
// (docs/audit.md), and reports the records of writes the mover has still
// to copy into it from the main store: they are safe there, and copied at
// the server's next flush or start. It fails only when the audit database
// cannot be read.
func checkAudits(ctx context.Context, cfg app.Config, main store.Store) error {
	if _, err := os.Stat(filepath.Join(cfg.Data, app.AuditDir)); err != nil {
		return nil
	}
	audits, err := app.OpenAudits(cfg, nil)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	defer audits.Close()
	total, missing, err := audit.Uncopied(ctx, main, audits)
	if err != nil {
		return fmt.Errorf("check: the audit database: %w", err)
	}
	fmt.Fprintf(os.Stderr, "audit database: %d records of writes in the main store, %d of them still to be copied (at the server's next flush or start)\n", total, missing)
	return nil
}
