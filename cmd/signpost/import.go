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
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/validation"
	"github.com/signpost-fhir/signpost/store"
)

// importUsage documents the import command.
const importUsage = `usage: signpost import [flags] FILE...

Loads NDJSON files (one resource per line; "-" reads standard input) into
the store in --data. Each resource keeps its id (one is assigned when it has
none) and becomes the next version of that resource. Resources are
validated against the StructureDefinitions (--validate=false skips it),
indexed on all cores, and written in batches of --batch, each batch one
transaction: a failed batch stops the import with nothing of it written.
Domain rules (booking, referral) do not run on imported resources: import
is for loading directory and schedule data, not for transactions that need
them. Give it the same --base-url (or --addr) and --timezone as serve, or
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
	// The import process ends with the load, so it is never turned off.
	if b, ok := a.Store.(store.BulkLoader); ok {
		b.SetBulkLoad(true)
	}
	var val *validation.Validator
	if *validate {
		if val, err = validation.New(conformance.StructureDefinitions(), conformance.Terminology()); err != nil {
			return err
		}
	}
	im := &importer{st: a.Store, reg: a.Search, val: val, batch: max(1, *batch), now: time.Now().UTC().Truncate(time.Millisecond)}
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

// importer loads resources.
type importer struct {
	st       store.Store
	reg      *search.Registry
	val      *validation.Validator
	batch    int
	now      time.Time
	count    int
	progress *progress
}

// line is one NDJSON line and where it came from.
type line struct {
	no   int
	data []byte
}

// prepared is one batch ready to write, or the first error met.
type prepared struct {
	writes []*store.Write
	err    error
}

// file imports one NDJSON file: a reader splits it into batches, workers
// (one per core) validate, stamp and index them, and this goroutine writes
// them in order, one transaction each.
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
		lines []line
		out   chan prepared
	}
	jobs := make(chan job, workers)
	order := make(chan chan prepared, workers+1)
	var readErr error
	go func() {
		defer close(jobs)
		defer close(order)
		br := bufio.NewReaderSize(r, 1<<20)
		var lines []line
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
				lines = append(lines, line{no: no, data: t})
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
				ws, err := im.prepare(ctx, name, j.lines)
				j.out <- prepared{writes: ws, err: err}
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
		if err := im.write(ctx, p.writes); err != nil {
			cancel()
			return fmt.Errorf("import %s: %w", name, err)
		}
		im.count += len(p.writes)
		im.progress.wrote(len(p.writes))
	}
	if readErr != nil {
		return fmt.Errorf("import %s: %w", name, readErr)
	}
	return nil
}

// prepare validates, stamps and indexes one batch. A resource that exists
// already becomes its next version.
func (im *importer) prepare(ctx context.Context, name string, lines []line) ([]*store.Write, error) {
	ws := make([]*store.Write, 0, len(lines))
	ids := map[string][]string{}
	objs := make([]*fhir.Object, len(lines))
	fast := make([]int, len(lines)) // where meta goes in the line; 0: use objs
	for i, l := range lines {
		where := fmt.Sprintf("%s:%d", name, l.no)
		typ, id, at := fastHead(l.data)
		if at > 0 && fhir.ValidID(id) && im.reg.Lookup(typ, "_id") != nil {
			if err := im.validate(where, typ, l.data); err != nil {
				return nil, err
			}
			fast[i] = at
			ids[typ] = append(ids[typ], id)
			ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: im.now}})
			continue
		}
		obj, err := fhir.ParseObject(l.data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		typ, _ = obj.String("resourceType")
		if typ == "" || im.reg.Lookup(typ, "_id") == nil {
			return nil, fmt.Errorf("%s: resourceType %q cannot be stored", where, typ)
		}
		if err := im.validate(where, typ, l.data); err != nil {
			return nil, err
		}
		id, _ = obj.String("id")
		if id == "" {
			id = write.NewID()
		} else if !fhir.ValidID(id) {
			return nil, fmt.Errorf("%s: %q is not a valid id", where, id)
		}
		objs[i] = obj
		ids[typ] = append(ids[typ], id)
		ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: im.now}})
	}
	// Resources already stored become their next version.
	current := map[string]int64{}
	for typ, list := range ids {
		page, err := im.st.Search(ctx, &search.Query{Type: typ, Filter: []search.Expr{search.IDIn{IDs: list}}, Count: len(list)})
		if err != nil {
			return nil, err
		}
		for _, r := range page.Resources {
			current[r.Reference()] = r.Version
		}
	}
	for i, w := range ws {
		res := w.Resource
		res.Version = current[res.Reference()] + 1
		current[res.Reference()] = res.Version // a resource repeated in the batch
		var body []byte
		var err error
		if at := fast[i]; at > 0 {
			line := lines[i].data
			body = make([]byte, 0, len(line)+80)
			body = append(body, line[:at]...)
			body = fmt.Appendf(body, `,"meta":{"versionId":"%d","lastUpdated":"%s"}`, res.Version, res.LastUpdated.Format(fhir.InstantFormat))
			body = append(body, line[at:]...)
		} else if body, err = fhir.Stamp(objs[i], res.ID, res.Version, res.LastUpdated); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, lines[i].no, err)
		}
		res.JSON = body
		if w.Index, err = im.reg.Extract(res.Type, body); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, lines[i].no, err)
		}
	}
	return ws, nil
}

// validate reports the errors the validator finds in a resource, if
// validation is on.
func (im *importer) validate(where, typ string, data []byte) error {
	if im.val == nil {
		return nil
	}
	var problems []string
	for _, is := range im.val.Validate(data) {
		if is.Severity == "error" || is.Severity == "fatal" {
			problems = append(problems, strings.Join(is.Expression, ",")+": "+is.Diagnostics)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s is not valid: %s", where, typ, strings.Join(problems, "; "))
	}
	return nil
}

// fastHead recognises the common shape of a line that needs no
// re-encoding: an object whose first members are resourceType and id (plain
// strings) and that has no meta. It returns them and the offset after the
// id value, where meta can be spliced in; at is 0 for any other shape,
// which takes the general path (fhir.ParseObject and fhir.Stamp).
func fastHead(line []byte) (typ, id string, at int) {
	ms, ok := topMembers(line)
	if !ok || len(ms) < 2 || ms[0].key != "resourceType" || ms[1].key != "id" {
		return "", "", 0
	}
	for _, m := range ms[2:] {
		if m.key == "meta" || m.key == "id" || m.key == "resourceType" {
			return "", "", 0
		}
	}
	str := func(m member) (string, bool) {
		v := line[m.valStart:m.valEnd]
		if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v[1:len(v)-1], '\\') >= 0 {
			return "", false
		}
		return string(v[1 : len(v)-1]), true
	}
	typ, ok1 := str(ms[0])
	id, ok2 := str(ms[1])
	if !ok1 || !ok2 {
		return "", "", 0
	}
	return typ, id, ms[1].valEnd
}

// write stores one batch in one transaction, through the store's bulk
// path when it has one.
func (im *importer) write(ctx context.Context, ws []*store.Write) error {
	return im.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return store.PutAll(ctx, tx, ws)
	})
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

// member is a top-level member of a JSON object: the key and where its
// value ends.
type member struct {
	key      string
	valStart int
	valEnd   int
}

// topMembers lists the top-level members of the JSON object in b without
// decoding the values, or ok false when b is not an object it can scan.
func topMembers(b []byte) (ms []member, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, true
	}
	for i < len(b) {
		if b[i] != '"' {
			return nil, false
		}
		end := skipString(b, i)
		if end < 0 {
			return nil, false
		}
		key := string(b[i+1 : end-1])
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		vs := i
		if i = skipValue(b, i); i < 0 {
			return nil, false
		}
		ms = append(ms, member{key: key, valStart: vs, valEnd: i})
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return ms, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = skipString(b, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
