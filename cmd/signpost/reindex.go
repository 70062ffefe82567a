package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// reindexUsage documents the reindex command.
const reindexUsage = `usage: signpost reindex [flags]

Rebuilds the search index of every resource in the store in --data with
this release's search parameters and extraction, and records their
fingerprint so that serve does not reindex again. serve reindexes by itself
when it starts on a store indexed under other search parameters (another
release, another --timezone or --base-url); this command does it on
demand, with a progress line on standard error. Give it the same
--base-url (or --addr) and --timezone as serve. Stop the server first: a
running server would keep planning searches with what it knew of the index
before. An interrupted reindex resumes where it stopped.

flags:`

// reindexCmd implements "signpost reindex".
func reindexCmd(args []string) error {
	fs := newFlags("reindex")
	var cfg app.Config
	addStoreFlags(fs, &cfg)
	addAddrFlag(fs, &cfg)
	quiet := fs.Bool("quiet", false, "no progress line")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the reindex to this file")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), reindexUsage)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("reindex: unexpected arguments %q", fs.Args())
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	// Like import, the reindex never serves HTTP; it brings the index up
	// to date itself, with progress.
	cfg.Open, cfg.NoReindex = true, true
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	p := &reindexProgress{w: os.Stderr, quiet: *quiet, start: start}
	err = a.Reindex(ctx, p.update)
	p.end()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "reindexed %d resources in %s (%.0f/s)\n", p.done, elapsed.Round(time.Millisecond),
		float64(p.done)/max(elapsed.Seconds(), 1e-9))
	return nil
}

// reindexProgress draws "done/total" on one line, at most four times a
// second.
type reindexProgress struct {
	w           io.Writer
	quiet       bool
	start, last time.Time
	done, total int
	drawn       bool
}

func (p *reindexProgress) update(done, total int) {
	p.done, p.total = done, total
	if p.quiet || time.Since(p.last) < 250*time.Millisecond {
		return
	}
	p.last, p.drawn = time.Now(), true
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\rreindexing %d/%d resources %3.0f%%  %.0f/s ", done, total, pct, rate)
}

// end ends the progress line, if one was drawn.
func (p *reindexProgress) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
