package main

// signpost audit archive: retention of the audit trail. The AuditEvents
// recorded before a time are written to an NDJSON file (gzip when it ends
// .gz), synced, and only then removed from the audit database, exactly
// those the file holds (docs/audit.md § Retention).

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// auditCmd dispatches signpost audit's subcommands.
func auditCmd(args []string) error {
	if len(args) == 0 || args[0] != "archive" {
		return errors.New("usage: signpost audit archive --data DIR --before TIME --out FILE [--keep] [--dry-run]")
	}
	return auditArchiveCmd(args[1:])
}

// auditArchiveCmd is signpost audit archive.
func auditArchiveCmd(args []string) error {
	fs := newFlags("audit archive")
	var cfg app.Config
	addStoreFlags(fs, &cfg)
	before := fs.String("before", "", "archive the AuditEvents recorded before this: an instant (2026-09-01T00:00:00Z), a date (2026-09-01: its midnight in --timezone), or an age (90d, 12h: older than that)")
	out := fs.String("out", "", "the archive to write: NDJSON, gzip when it ends .gz; if it exists (an earlier run's), only the removal of what it holds is completed")
	keep := fs.Bool("keep", false, "write the archive but remove nothing (a later run without --keep, with the same --out, removes what it holds)")
	dryRun := fs.Bool("dry-run", false, "count what would be archived; write and remove nothing")
	batch := fs.Int("batch", store.PurgeBatch, "records removed per transaction")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *before == "" || (*out == "" && !*dryRun) {
		return errors.New("audit archive: --before TIME and --out FILE are required")
	}
	if *batch < 1 || *batch > 10000 {
		return fmt.Errorf("audit archive: --batch %d: want 1 to 10000", *batch)
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return fmt.Errorf("audit archive: --timezone %q: %w", cfg.Timezone, err)
	}
	now := time.Now()
	cut, err := parseBefore(*before, now, loc)
	if err != nil {
		return fmt.Errorf("audit archive: --before %q: %w", *before, err)
	}
	if cut.After(now.Add(time.Minute)) {
		return fmt.Errorf("audit archive: --before %q is %s, in the future: give a time up to now", *before, cut.Format(time.RFC3339))
	}
	trail, copies, closeAll, err := openTrail(cfg)
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	defer closeAll()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	job := &archiveJob{trail: trail, copies: copies, before: cut, out: *out, keep: *keep, dryRun: *dryRun, batch: *batch}
	res, err := job.run(ctx)
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	fmt.Print(res.report(job))
	return nil
}

// age is an --before given as an age: a number of days or weeks, or a Go
// duration (12h, 90m).
var age = regexp.MustCompile(`^(\d+)([dw])$`)

// parseBefore reads --before: an instant, a date (its midnight in loc), or
// an age before now.
func parseBefore(s string, now time.Time, loc *time.Location) (time.Time, error) {
	if m := age.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100*366 {
			return time.Time{}, errors.New("an age of at most 100 years, please")
		}
		days := n
		if m[2] == "w" {
			days = 7 * n
		}
		return now.AddDate(0, 0, -days).UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("an age is not negative")
		}
		return now.Add(-d).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		var t time.Time
		var err error
		if strings.Contains(layout, "Z07") {
			t, err = time.Parse(layout, s)
		} else {
			t, err = time.ParseInLocation(layout, s, loc)
		}
		if err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not an instant (2026-09-01T00:00:00Z), a date (2026-09-01) or an age (90d, 2w, 36h)")
}

// openTrail opens the store that keeps the AuditEvents (the audit
// database beside an embedded store, the store itself otherwise) and,
// when that is the audit database, the main store too: AuditEvents an
// older release kept there are copies of the audit database's (docs/audit.md),
// removed with them.
func openTrail(cfg app.Config) (trail, copies store.Purger, closeAll func(), err error) {
	if fi, err := os.Stat(cfg.Data); err != nil || !fi.IsDir() {
		return nil, nil, nil, fmt.Errorf("--data %q is not a data directory", cfg.Data)
	}
	st, err := app.OpenStore(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	main, ok := st.(store.Purger)
	if !ok {
		st.Close()
		return nil, nil, nil, fmt.Errorf("the %s store cannot remove records (it has no store.Purger): keep its AuditEvents with the database's own tools (docs/audit.md § Retention)", store.Scheme(cfg.Store))
	}
	_, embedded := st.(*sqlite.Store)
	if _, err := os.Stat(filepath.Join(cfg.Data, app.AuditDir)); err != nil || !embedded {
		return main, nil, func() { st.Close() }, nil
	}
	audits, err := app.OpenAudits(cfg, nil)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	a, ok := audits.(store.Purger)
	if !ok { // the audit database is always SQLite
		audits.Close()
		st.Close()
		return nil, nil, nil, errors.New("the audit database cannot remove records")
	}
	return a, main, func() { audits.Close(); st.Close() }, nil
}

// archiveJob is one run of signpost audit archive.
type archiveJob struct {
	trail  store.Purger // where the AuditEvents are read and served from
	copies store.Purger // the main store's copies (an older release's), or nil
	before time.Time
	out    string
	keep   bool
	dryRun bool
	batch  int
}

// archiveFault, when set (by tests), is called at each stage of a run
// ("written": the archive is durable, nothing removed yet; "batch": a
// batch was removed) and stops the run with its error, as a crash there
// would.
var archiveFault func(stage string) error

func fault(stage string) error {
	if archiveFault != nil {
		return archiveFault(stage)
	}
	return nil
}

// archiveResult is what a run did.
type archiveResult struct {
	resumed        bool      // the archive existed: only its removal was completed
	records        int       // AuditEvents in the archive
	versions       int       // lines: versions of them (more than records when one has several)
	oldest, newest time.Time // their lastUpdated range
	ndjson, file   int64     // bytes of NDJSON, and of the file
	removed        int       // removed from the trail by this run
	gone           int       // in the archive, removed by an earlier run
	kept           int       // in the archive, kept: written again since it was listed
	copies         int       // an older release's copies removed from the main store
	tombstones     int       // deleted AuditEvents before the cut: neither archived nor removed
	left           int       // recorded before the cut and still in the database, not in the archive
	batches        int
	took           time.Duration
}

// report is the summary the command prints.
func (r *archiveResult) report(j *archiveJob) string {
	var b strings.Builder
	span := "none"
	if r.records > 0 {
		span = r.oldest.Format(time.RFC3339Nano) + " … " + r.newest.Format(time.RFC3339Nano)
	}
	switch {
	case j.dryRun:
		fmt.Fprintf(&b, "dry run: %d AuditEvents recorded before %s would be archived (%d versions, %d bytes of NDJSON), recorded %s; nothing written or removed\n",
			r.records, j.before.Format(time.RFC3339Nano), r.versions, r.ndjson, span)
	case r.resumed:
		fmt.Fprintf(&b, "%s exists (an earlier run's): it holds %d AuditEvents (%d versions, %d bytes of NDJSON), recorded %s\n",
			j.out, r.records, r.versions, r.ndjson, span)
	default:
		fmt.Fprintf(&b, "archived %d AuditEvents recorded before %s into %s: %d versions, recorded %s; %d bytes of NDJSON, %d bytes on disk (synced)\n",
			r.records, j.before.Format(time.RFC3339Nano), j.out, r.versions, span, r.ndjson, r.file)
	}
	if !j.dryRun && !j.keep {
		fmt.Fprintf(&b, "removed %d of them from the audit trail in %d transactions (%s)", r.removed, r.batches, r.took.Round(time.Millisecond))
		if r.gone > 0 {
			fmt.Fprintf(&b, "; %d had been removed by an earlier run", r.gone)
		}
		if r.kept > 0 {
			fmt.Fprintf(&b, "; %d kept: written again since they were archived", r.kept)
		}
		if r.copies > 0 {
			fmt.Fprintf(&b, "; %d copies an older release kept in the main store removed too", r.copies)
		}
		b.WriteString("\n")
	} else if j.keep {
		b.WriteString("--keep: nothing removed; run again without --keep and with the same --out to remove what the archive holds\n")
	}
	if r.tombstones > 0 {
		fmt.Fprintf(&b, "%d deleted AuditEvents recorded before the cut were neither archived nor removed\n", r.tombstones)
	}
	if r.left > 0 {
		fmt.Fprintf(&b, "%d AuditEvents recorded before %s are in the audit trail but not in %s (recorded since it was written, or the newest record of the database): archive them with another --out\n",
			r.left, j.before.Format(time.RFC3339Nano), j.out)
	}
	return b.String()
}

// run archives, then removes what the archive holds. The archive is
// written beside out as out.partial, synced and renamed to out, so that
// out only ever exists complete; what is removed is read back from out.
// A run that finds out already there writes nothing and completes the
// removal of what it holds (an earlier run stopped after writing it, or
// ran with --keep): so running the same command again after a crash or a
// kill finishes the job, and an archive is never overwritten.
func (j *archiveJob) run(ctx context.Context) (*archiveResult, error) {
	r := &archiveResult{}
	if j.dryRun {
		return r, j.list(ctx, io.Discard, r)
	}
	if _, err := os.Lstat(j.out); err == nil {
		// An earlier run's archive: durable before anything is removed
		// on its account (a run that failed to sync its directory, or a
		// file put there by hand).
		r.resumed = true
		if err := syncFile(j.out); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else if err := j.write(ctx, r); err != nil {
		return nil, err
	}
	if err := fault("written"); err != nil {
		return nil, err
	}
	if j.keep && r.resumed {
		return r, j.scan(ctx, r, nil)
	}
	if !j.keep {
		if err := j.remove(ctx, r); err != nil {
			return nil, err
		}
		// What is left before the cut: recorded since the archive was
		// written (a mover that lagged), or held back.
		var left archiveResult
		if err := j.list(ctx, io.Discard, &left); err != nil {
			return nil, err
		}
		r.left = left.records
	}
	return r, nil
}

// write writes the archive to out through out.partial.
func (j *archiveJob) write(ctx context.Context, r *archiveResult) (err error) {
	dir := filepath.Dir(j.out)
	partial := j.out + ".partial"
	os.Remove(partial) // an earlier run's, killed while writing: nothing was removed on its account
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(partial)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	var gz *gzip.Writer
	if strings.HasSuffix(j.out, ".gz") {
		gz = gzip.NewWriter(bw)
		w = gz
	}
	if err := j.list(ctx, w, r); err != nil {
		return err
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", partial, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r.file = fi.Size()
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(partial, j.out); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncFile fsyncs the file at path and its directory.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs directory dir, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// list writes every AuditEvent recorded before the cut to w, one version
// a line (a resource's versions oldest first), counting into r.
func (j *archiveJob) list(ctx context.Context, w io.Writer, r *archiveResult) error {
	var buf bytes.Buffer
	for cursor := ""; ; {
		page, next, err := j.trail.PurgeList(ctx, audit.Type, j.before, cursor, j.batch)
		if err != nil {
			return err
		}
		for _, res := range page {
			if res.Deleted {
				r.tombstones++
				continue
			}
			versions := []*fhir.Resource{res}
			if res.Version > 1 {
				if versions, err = allVersions(ctx, j.trail.(store.Reader), res); err != nil {
					return err
				}
			}
			for _, v := range versions {
				buf.Reset()
				if err := archiveLine(&buf, v); err != nil {
					return err
				}
				if _, err := w.Write(buf.Bytes()); err != nil {
					return err
				}
				r.ndjson += int64(buf.Len())
				r.versions++
			}
			r.count(res)
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// count adds res, a current version, to r's records and time range.
func (r *archiveResult) count(res *fhir.Resource) {
	if r.records == 0 || res.LastUpdated.Before(r.oldest) {
		r.oldest = res.LastUpdated
	}
	if r.records == 0 || res.LastUpdated.After(r.newest) {
		r.newest = res.LastUpdated
	}
	r.records++
}

// allVersions returns every stored version of res with a body, oldest
// first, ending with res (its current version).
func allVersions(ctx context.Context, rd store.Reader, res *fhir.Resource) ([]*fhir.Resource, error) {
	var out []*fhir.Resource
	q := store.HistoryQuery{Type: res.Type, ID: res.ID, Count: 100}
	for {
		page, err := rd.History(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			if !v.Deleted && v.Version <= res.Version {
				out = append(out, v)
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	for i, k := 0, len(out)-1; i < k; i, k = i+1, k-1 {
		out[i], out[k] = out[k], out[i]
	}
	if len(out) == 0 || out[len(out)-1].Version != res.Version {
		return nil, fmt.Errorf("%s: its history does not end with its current version %d", res.Reference(), res.Version)
	}
	return out, nil
}

// lineHead is what the removal reads of an archived line.
type lineHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
}

// archiveLine writes v as one NDJSON line: its JSON as stored (as the
// server serves it), on one line, with its id and meta.versionId those
// of the store's version, which the removal reads back.
func archiveLine(buf *bytes.Buffer, v *fhir.Resource) error {
	body := v.JSON
	var h lineHead
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("%s version %d: stored JSON: %w", v.Reference(), v.Version, err)
	}
	if h.ResourceType != v.Type || h.ID != v.ID || h.Meta.VersionID != strconv.FormatInt(v.Version, 10) {
		obj, err := fhir.ParseObject(body)
		if err == nil {
			body, err = fhir.Stamp(obj, v.ID, v.Version, v.LastUpdated)
		}
		if err != nil {
			return fmt.Errorf("%s version %d: %w", v.Reference(), v.Version, err)
		}
	}
	if err := json.Compact(buf, body); err != nil {
		return fmt.Errorf("%s version %d: stored JSON: %w", v.Reference(), v.Version, err)
	}
	buf.WriteByte('\n')
	return nil
}

// remove reads the archive at out back, whole and checked (a damaged or
// truncated file removes nothing), and then again, removing the
// AuditEvents it holds batch by batch: each at the last version the
// archive holds of it, so one written again since is kept. The main
// store's copies go first, so that the server's mover, which copies into
// the audit database what that lacks, never finds a copy whose record is
// gone.
func (j *archiveJob) remove(ctx context.Context, r *archiveResult) error {
	var seen archiveResult
	if err := j.scan(ctx, &seen, nil); err != nil {
		return err
	}
	if r.resumed {
		r.records, r.versions, r.ndjson, r.oldest, r.newest = seen.records, seen.versions, seen.ndjson, seen.oldest, seen.newest
	} else if seen.records != r.records || seen.versions != r.versions {
		return fmt.Errorf("%s holds %d AuditEvents (%d versions), %d (%d) were written: nothing removed", j.out, seen.records, seen.versions, r.records, r.versions)
	}
	if fi, err := os.Stat(j.out); err == nil {
		r.file = fi.Size()
	}
	began := time.Now()
	refs := make([]store.PurgeRef, 0, j.batch)
	flush := func() error {
		if len(refs) == 0 {
			return nil
		}
		if j.copies != nil {
			c, err := j.copies.Purge(ctx, audit.Type, refs)
			if err != nil {
				return fmt.Errorf("removing copies from the main store: %w", err)
			}
			r.copies += c
		}
		removed, err := j.trail.Purge(ctx, audit.Type, refs)
		if err != nil {
			return fmt.Errorf("removing archived records (%d removed so far; run the same command again to finish): %w", r.removed, err)
		}
		r.removed += removed
		r.batches++
		if removed < len(refs) {
			// Removed by an earlier run, or written again since.
			for _, ref := range refs {
				_, err := j.trail.(store.Reader).Read(ctx, audit.Type, ref.ID)
				switch {
				case err == nil || fhir.KindOf(err) == fhir.Gone:
					r.kept++
				case fhir.KindOf(err) != fhir.NotFound:
					return err
				}
			}
		}
		refs = refs[:0]
		return fault("batch")
	}
	if err := j.scan(ctx, &archiveResult{}, func(ref store.PurgeRef) error {
		refs = append(refs, ref)
		if len(refs) == j.batch {
			return flush()
		}
		return nil
	}); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	r.gone = r.records - r.removed - r.kept
	r.took = time.Since(began)
	return nil
}

// scan reads the archive at out, counting into r: every line must be an
// AuditEvent with an id and a version, a resource's versions on
// consecutive lines. fn, when not nil, gets each resource's last version
// in file order, once its lines are read.
func (j *archiveJob) scan(ctx context.Context, r *archiveResult, fn func(store.PurgeRef) error) error {
	f, err := os.Open(j.out)
	if err != nil {
		return err
	}
	defer f.Close()
	var in io.Reader = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(j.out, ".gz") {
		gz, err := gzip.NewReader(in)
		if err != nil {
			return fmt.Errorf("%s: %w: nothing removed", j.out, err)
		}
		defer gz.Close()
		in = gz
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var cur store.PurgeRef
	var lu time.Time
	done := func() error {
		if cur.ID == "" {
			return nil
		}
		r.count(&fhir.Resource{LastUpdated: lu})
		if fn != nil {
			return fn(cur)
		}
		return nil
	}
	for n := 1; sc.Scan(); n++ {
		if n%10000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line := sc.Bytes()
		var h lineHead
		if err := json.Unmarshal(line, &h); err != nil {
			return fmt.Errorf("%s line %d: %w: nothing removed", j.out, n, err)
		}
		v, err := strconv.ParseInt(h.Meta.VersionID, 10, 64)
		if h.ResourceType != audit.Type || h.ID == "" || err != nil || v < 1 {
			return fmt.Errorf("%s line %d: not an AuditEvent with an id and a meta.versionId: nothing removed", j.out, n)
		}
		r.ndjson += int64(len(line)) + 1
		r.versions++
		if h.ID == cur.ID {
			cur.Version = max(cur.Version, v)
		} else {
			if err := done(); err != nil {
				return err
			}
			cur = store.PurgeRef{ID: h.ID, Version: v}
		}
		if t, err := time.Parse(time.RFC3339Nano, h.Meta.LastUpdated); err == nil {
			lu = t.UTC()
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w: nothing removed", j.out, err)
	}
	return done()
}
