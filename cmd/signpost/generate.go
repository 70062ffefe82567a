package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/signpost-fhir/signpost/fhir/search/synth"
)

// generate implements "signpost generate": a synthetic region as NDJSON,
// ready for "signpost import".
func generate(args []string) error {
	fs := newFlags("generate")
	var cfg synth.Config
	fs.IntVar(&cfg.Slots, "slots", 1000000, "slots over the weeks")
	fs.IntVar(&cfg.Patients, "patients", 100000, "patients, with valid NHS numbers")
	fs.IntVar(&cfg.Appointments, "appointments", 0, "appointments booking busy slots")
	fs.IntVar(&cfg.Weeks, "weeks", 12, "weeks of weekday slots, from Monday 2 March 2026")
	fs.IntVar(&cfg.SlotsPerSchedule, "slots-per-schedule", 500, "slots per schedule (sets the number of schedules)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed: the same seed gives the same region")
	out := fs.String("out", "-", "output NDJSON file; - for standard output")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("generate: unexpected arguments (use --out FILE)")
	}
	f := os.Stdout
	if *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Now()
	n := 0
	err := synth.Generate(cfg, func(r synth.Resource) error {
		n++
		w.Write(r.JSON)
		return w.WriteByte('\n')
	})
	if err == nil {
		err = w.Flush()
	}
	if f != os.Stdout {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	c := synth.Plan(cfg)
	fmt.Fprintf(os.Stderr, "generated %d resources in %s: %d organisations, %d locations, %d services, %d practitioners, %d schedules, %d slots, %d patients, %d appointments\n",
		n, time.Since(start).Round(time.Millisecond), c.Organizations, c.Locations, c.Services, c.Practitioners, c.Schedules, c.Slots, c.Patients, c.Appointments)
	return nil
}
