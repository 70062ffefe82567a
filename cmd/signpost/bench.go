package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/signpost-fhir/signpost/bench"
)

// benchCmd runs the mixed-workload benchmark (package bench) against a FHIR
// server: it seeds a synthetic region, runs the clients, prints the figures
// and exits non-zero when a slot ended up with two live appointments.
//
//	signpost bench --url http://127.0.0.1:8080/fhir --token "$(signpost token …)" --server-pid $PID
func benchCmd(args []string) error {
	fs := newFlags("bench")
	cfg := bench.Issue15()
	var jsonOut bool
	fs.StringVar(&cfg.BaseURL, "url", "http://127.0.0.1:8080/fhir", "FHIR base URL of the server")
	fs.StringVar(&cfg.Token, "token", "", "bearer token of the clients (none: an open server); pass it as SIGNPOST_TOKEN to keep it off the command line")
	fs.StringVar(&cfg.SeedToken, "seed-token", "", "bearer token that seeds the region and verifies it (default --token)")
	fs.StringVar(&cfg.Org, "org", cfg.Org, "ODS code of the region's provider organisation (the token's organisation, where the server lets a token write only its own directory)")
	fs.IntVar(&cfg.Services, "services", cfg.Services, "HealthcareServices seeded")
	fs.IntVar(&cfg.Schedules, "schedules", cfg.Schedules, "Schedules seeded")
	fs.IntVar(&cfg.Slots, "slots", cfg.Slots, "free Slots seeded")
	fs.IntVar(&cfg.Patients, "patients", cfg.Patients, "Patients seeded")
	fs.IntVar(&cfg.HotSlots, "hot-slots", cfg.HotSlots, "slots the bookings aim at, so that clients collide")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the clients run")
	fs.IntVar(&cfg.Mix.SlotSearch, "mix-slot-search", cfg.Mix.SlotSearch, "share of free-slot searches (percent)")
	fs.IntVar(&cfg.Mix.ServiceSearch, "mix-service-search", cfg.Mix.ServiceSearch, "share of service searches by specialty")
	fs.IntVar(&cfg.Mix.Read, "mix-read", cfg.Mix.Read, "share of reads by id")
	fs.IntVar(&cfg.Mix.Book, "mix-book", cfg.Mix.Book, "share of bookings (POST Appointment) of the hot slots")
	fs.IntVar(&cfg.Mix.Referral, "mix-referral", cfg.Mix.Referral, "share of referrals (POST ServiceRequest)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "process id of the server when it runs on this machine: its CPU per operation is reported")
	fs.Float64Var(&cfg.Rate, "rate", 0, "operations a second in all, on a fixed schedule (0: as fast as the clients go); a soak runs at half the peak")
	fs.DurationVar(&cfg.Every, "every", 0, "print a sample at this interval: throughput, p50/p99 and, with --server-pid, the server's memory, threads and open files (e.g. 1m for a soak)")
	fs.StringVar(&cfg.MetricsURL, "metrics-url", "", "the server's Prometheus metrics (serve --metrics-addr), read for its goroutines at each sample, e.g. http://127.0.0.1:9090/metrics")
	fs.Uint64Var(&cfg.RandomSeed, "seed", cfg.RandomSeed, "seed of the clients' random choices")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	region, err := bench.Seed(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	res, err := bench.Run(ctx, cfg, region)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		res.Write(os.Stdout)
	}
	if n := len(res.DoubleBookings); n > 0 {
		return fmt.Errorf("bench: %d slots have two or more live appointments", n)
	}
	if res.Errors > 0 && res.Total == 0 {
		return errors.New("bench: every operation failed")
	}
	return nil
}
