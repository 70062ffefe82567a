package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/bulk"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// importUsage documents the import command.
const importUsage = `usage: signpost import [flags] FILE...

Loads NDJSON files (one resource per line; "-" reads standard input) into
the store in --data. Each resource keeps its id (one is assigned when it has
none) and becomes the next version of that resource. Resources are
validated against the StructureDefinitions (--validate=false skips it),
indexed on all cores, and written in batches of --batch, each batch one
transaction: a failed batch stops the import with nothing of it written.
Import is the domain's bulk path (domain/bulk): the write rules (booking,
referral, waiting times, authorisation) do not run on imported resources,
which it documents rule by rule; it is for loading directory and schedule
data, not for transactions that need them. Give it the same --base-url (or --addr) and --timezone as serve, or
serve reindexes what it imported. A progress bar goes to standard error.

flags:`

// importCmd implements "signpost import".
func importCmd(args []string) error {
	fs := newFlags("import")
	var cfg app.Config
	addStoreFlags(fs, &cfg)
	addAddrFlag(fs, &cfg)
	batch := fs.Int("batch", 5000, "resources per transaction")
	validate := fs.Bool("validate", true, "validate every resource against the StructureDefinitions")
	quiet := fs.Bool("quiet", false, "no progress bar")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the import to this file")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), importUsage)
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err == nil {
		err = parse(fs, nil) // SIGNPOST_* for flags not given
	}
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return errors.New("import: no files given")
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	start := time.Now()
	// The import writes to the store directly, never through the HTTP API:
	// no authorisation server or audit to set up.
	cfg.Open = true
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	var val bulk.Validator
	if *validate {
		if val, err = validation.New(conformance.StructureDefinitions(), conformance.Terminology()); err != nil {
			return err
		}
	}
	loader := bulk.New(a.Writes, a.Search, val)
	defer loader.Close()
	im := &importer{loader: loader, batch: max(1, *batch)}
	var total int64
	for _, f := range files {
		if f != "-" {
			if fi, err := os.Stat(f); err == nil {
				total += fi.Size()
			}
		}
	}
	im.progress = newProgress(os.Stderr, total, *quiet)
	for _, f := range files {
		if err := im.file(f); err != nil {
			im.progress.done()
			return err
		}
	}
	im.progress.done()
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "imported %d resources in %s (%.0f/s); peak resident memory %d MB\n",
		im.count, elapsed.Round(time.Millisecond), float64(im.count)/elapsed.Seconds(), maxRSS()>>20)
	return nil
}

// parseInterspersed parses flags given before, between or after the
// positional arguments, which it returns.
func parseInterspersed(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}

// importer reads NDJSON files into a bulk.Loader.
type importer struct {
	loader   *bulk.Loader
	batch    int
	count    int
	progress *progress
}

// prepared is one batch ready to write, or the first error met.
type prepared struct {
	batch *bulk.Batch
	err   error
}

// file imports one NDJSON file: a reader splits it into batches, workers
// (one per core) prepare them (bulk.Loader.Prepare: validate, stamp and
// index), and this goroutine writes them in order, one transaction each.
func (im *importer) file(name string) error {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	// Batches go to the workers with a result channel each, and the
	// channels go to the writer in file order.
	type job struct {
		lines []bulk.Line
		out   chan prepared
	}
	jobs := make(chan job, workers)
	order := make(chan chan prepared, workers+1)
	var readErr error
	go func() {
		defer close(jobs)
		defer close(order)
		br := bufio.NewReaderSize(r, 1<<20)
		var lines []bulk.Line
		no := 0
		send := func() bool {
			j := job{lines: lines, out: make(chan prepared, 1)}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return false
			}
			select {
			case order <- j.out:
			case <-ctx.Done():
				return false
			}
			lines = nil
			return true
		}
		for {
			b, err := br.ReadBytes('\n')
			im.progress.read(len(b))
			no++
			if t := bytes.TrimSpace(b); len(t) > 0 {
				lines = append(lines, bulk.Line{No: no, Data: t})
			}
			if len(lines) == im.batch && !send() {
				return
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				readErr = err
				return
			}
		}
		if len(lines) > 0 {
			send()
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				b, err := im.loader.Prepare(ctx, name, j.lines)
				j.out <- prepared{batch: b, err: err}
			}
		}()
	}
	defer wg.Wait()
	for out := range order {
		p := <-out
		if p.err != nil {
			cancel()
			return p.err
		}
		if err := im.loader.Write(ctx, p.batch); err != nil {
			cancel()
			return fmt.Errorf("import %s: %w", name, err)
		}
		im.count += p.batch.Len()
		im.progress.wrote(p.batch.Len())
	}
	if readErr != nil {
		return fmt.Errorf("import %s: %w", name, readErr)
	}
	return nil
}

// progress draws a progress bar on a terminal-like writer.
type progress struct {
	mu              sync.Mutex
	w               io.Writer
	total, readN    int64
	written         int
	start, lastDraw time.Time
	quiet           bool
}

func newProgress(w io.Writer, total int64, quiet bool) *progress {
	return &progress{w: w, total: total, start: time.Now(), quiet: quiet}
}

func (p *progress) read(n int) {
	p.mu.Lock()
	p.readN += int64(n)
	p.mu.Unlock()
}

func (p *progress) wrote(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written += n
	if time.Since(p.lastDraw) >= 250*time.Millisecond {
		p.draw()
	}
}

func (p *progress) draw() {
	if p.quiet {
		return
	}
	p.lastDraw = time.Now()
	rate := float64(p.written) / max(time.Since(p.start).Seconds(), 1e-9)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%d resources  %.0f/s ", p.written, rate)
		return
	}
	frac := min(1, float64(p.readN)/float64(p.total))
	const width = 30
	bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
	fmt.Fprintf(p.w, "\r[%s] %3.0f%%  %d resources  %.0f/s ", bar, frac*100, p.written, rate)
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}

// maxRSS is the peak resident memory of this process in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10 // kilobytes on Linux
}
