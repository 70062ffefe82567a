package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// archiveFixture is a data directory with an audit database holding
// AuditEvents before and after a cut, and copies of some of the older
// ones kept in the main store (as an older release left them).
type archiveFixture struct {
	cfg      app.Config
	cut      time.Time
	old, new []string // ids, sorted
	copies   []string
}

func auditEvent(id string, v int64, at time.Time) *fhir.Resource {
	return &fhir.Resource{Type: audit.Type, ID: id, Version: v, LastUpdated: at,
		JSON: []byte(fmt.Sprintf(`{"resourceType":"AuditEvent","id":%q,"meta":{"versionId":"%d","lastUpdated":%q},"recorded":%q}`,
			id, v, at.Format(fhir.InstantFormat), at.Format(fhir.InstantFormat)))}
}

func putAll(t *testing.T, st store.Store, rs ...*fhir.Resource) {
	t.Helper()
	if err := st.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, r := range rs {
			if err := tx.Put(ctx, &store.Write{Resource: r}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func newArchiveFixture(t *testing.T) *archiveFixture { return newArchiveFixtureN(t, 25) }

// newArchiveFixtureN is newArchiveFixture with n records before the cut.
func newArchiveFixtureN(t *testing.T, n int) *archiveFixture {
	t.Helper()
	f := &archiveFixture{cfg: app.Config{Data: t.TempDir()}}
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	f.cut = t0.Add(time.Hour)
	main, err := app.OpenStore(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	audits, err := app.OpenAudits(f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer audits.Close()
	var rs, copies []*fhir.Resource
	for i := range n {
		id := fmt.Sprintf("old-%05d", i)
		f.old = append(f.old, id)
		at := t0.Add(time.Duration(i) * time.Hour / time.Duration(n))
		rs = append(rs, auditEvent(id, 1, at))
		if i%5 == 0 {
			f.copies = append(f.copies, id)
			copies = append(copies, auditEvent(id, 1, at))
		}
	}
	for i := range 5 {
		id := fmt.Sprintf("new-%02d", i)
		f.new = append(f.new, id)
		rs = append(rs, auditEvent(id, 1, f.cut.Add(time.Duration(i)*time.Minute)))
	}
	putAll(t, audits, rs...)
	putAll(t, main, copies...)
	// The main store went on being written after its last copy (an
	// older release's AuditEvents are never its newest rows).
	putAll(t, main, &fhir.Resource{Type: "Basic", ID: "later", Version: 1, LastUpdated: f.cut,
		JSON: []byte(`{"resourceType":"Basic","id":"later","meta":{"versionId":"1"}}`)})
	return f
}

// held returns the ids of AuditEvents the audit database and the main
// store hold.
func (f *archiveFixture) held(t *testing.T) (inAudit, inMain []string) {
	t.Helper()
	list := func(st store.Store) []string {
		defer st.Close()
		seen := map[string]bool{}
		q := store.HistoryQuery{Type: audit.Type, Count: 1000}
		for {
			page, err := st.History(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Versions {
				seen[r.ID] = true
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		return slices.Sorted(maps.Keys(seen))
	}
	m, err := app.OpenStore(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.OpenAudits(f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return list(a), list(m)
}

// job is the archive of f before its cut into out.
func (f *archiveFixture) job(t *testing.T, out string, batch int, keep bool) (*archiveResult, error) {
	t.Helper()
	trail, copies, closeAll, err := openTrail(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	j := &archiveJob{trail: trail, copies: copies, before: f.cut, out: out, keep: keep, batch: batch}
	return j.run(context.Background())
}

// TestAuditArchiveResumes stops signpost audit archive at each point a
// crash or a failure may stop it (before the archive is complete, once it
// is durable and nothing is removed, after some batches are removed), or
// finds a damaged archive, and runs it again: the archive then holds
// exactly the records before the cut, none of them is left in the audit
// database or (as an older release's copy) in the main store, the records
// after the cut are untouched, and no record was removed that the archive
// does not hold.
func TestAuditArchiveResumes(t *testing.T) {
	errCrash := errors.New("crash")
	tests := []struct {
		name string
		// first is the interrupted run; prepare runs before it.
		prepare    func(t *testing.T, f *archiveFixture, out string)
		stopAt     string // the stage archiveFault stops the first run at
		batch      int
		keep       bool
		firstErr   bool
		afterFirst int // old records left in the audit database after the first run
		between    func(t *testing.T, f *archiveFixture)
		rerunErr   bool
		wantKept   []string // old records kept after the rerun (written again since)
	}{
		{name: "stopped once the archive is durable", stopAt: "written", batch: 10, firstErr: true, afterFirst: 25},
		{name: "stopped after the first batch", stopAt: "batch", batch: 4, firstErr: true, afterFirst: 21},
		{name: "killed while writing the archive", batch: 10, afterFirst: 0,
			prepare: func(t *testing.T, f *archiveFixture, out string) {
				if err := os.WriteFile(out+".partial", []byte(`{"resourceType":"AuditEvent","id":"old-00000","meta":{"versionId":"1"}}`+"\n{\"resour"), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "--keep, then without it", batch: 10, keep: true, afterFirst: 25},
		{name: "a record written again between the archive and the removal", stopAt: "written", batch: 10, firstErr: true, afterFirst: 25,
			between: func(t *testing.T, f *archiveFixture) {
				a, err := app.OpenAudits(f.cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				putAll(t, a, auditEvent("old-00003", 2, f.cut.Add(-time.Second)))
			},
			wantKept: []string{"old-00003"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newArchiveFixture(t)
			out := filepath.Join(t.TempDir(), "old.ndjson.gz")
			if tt.prepare != nil {
				tt.prepare(t, f, out)
			}
			archiveFault = func(stage string) error {
				if stage == tt.stopAt {
					return errCrash
				}
				return nil
			}
			_, err := f.job(t, out, tt.batch, tt.keep)
			archiveFault = nil
			if (err != nil) != tt.firstErr {
				t.Fatalf("the first run: %v, want an error: %v", err, tt.firstErr)
			}
			if diff := cmp.Diff(f.old, archivedIDs(t, out)); diff != "" {
				t.Fatalf("the first run's archive (-want +got):\n%s", diff)
			}
			audit, _ := f.held(t)
			left := 0
			for _, id := range audit {
				if slices.Contains(f.old, id) {
					left++
				}
			}
			if left != tt.afterFirst {
				t.Errorf("after the first run, %d records before the cut are left, want %d", left, tt.afterFirst)
			}
			if _, err := os.Stat(out + ".partial"); err == nil {
				t.Errorf("%s.partial is left", out)
			}
			if tt.between != nil {
				tt.between(t, f)
			}
			res, err := f.job(t, out, tt.batch, false)
			if err != nil {
				t.Fatalf("the rerun: %v", err)
			}
			if !res.resumed || res.records != len(f.old) {
				t.Errorf("the rerun: resumed %v, %d records; want it to complete the archive of %d", res.resumed, res.records, len(f.old))
			}
			if diff := cmp.Diff(f.old, archivedIDs(t, out)); diff != "" {
				t.Errorf("the archive after the rerun (-want +got):\n%s", diff)
			}
			audit, main := f.held(t)
			want := slices.Sorted(slices.Values(append(slices.Clone(tt.wantKept), f.new...)))
			if diff := cmp.Diff(want, audit); diff != "" {
				t.Errorf("the audit database after the rerun (-want +got):\n%s", diff)
			}
			if len(main) != 0 {
				t.Errorf("the main store keeps the copies %v", main)
			}
			if res.kept != len(tt.wantKept) || res.removed+res.gone+res.kept != len(f.old) {
				t.Errorf("the rerun removed %d, found %d removed before and kept %d; want %d kept of %d", res.removed, res.gone, res.kept, len(tt.wantKept), len(f.old))
			}
		})
	}
}

// TestAuditArchiveRefusesDamagedArchive: an archive that cannot be read
// back whole (truncated) removes nothing.
func TestAuditArchiveRefusesDamagedArchive(t *testing.T) {
	f := newArchiveFixture(t)
	out := filepath.Join(t.TempDir(), "old.ndjson.gz")
	if _, err := f.job(t, out, 10, true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b[:len(b)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.job(t, out, 10, false); err == nil {
		t.Fatal("archive with a truncated archive: no error")
	}
	if audit, _ := f.held(t); len(audit) != len(f.old)+len(f.new) {
		t.Errorf("the audit database holds %d records after a refused run, want all %d", len(audit), len(f.old)+len(f.new))
	}
}

// TestParseBefore reads --before's forms.
func TestParseBefore(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "90d", want: now.AddDate(0, 0, -90)},
		{in: "2w", want: now.AddDate(0, 0, -14)},
		{in: "36h", want: now.Add(-36 * time.Hour)},
		{in: "2026-09-01T00:00:00Z", want: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2026-09-01T00:00:00.5+02:00", want: time.Date(2026, 8, 31, 22, 0, 0, 5e8, time.UTC)},
		{in: "2026-07-01", want: time.Date(2026, 6, 30, 23, 0, 0, 0, time.UTC)}, // midnight in London (BST)
		{in: "2026-12-01", want: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{in: "-5h", bad: true},
		{in: "yesterday", bad: true},
		{in: "2026-13-01", bad: true},
	}
	for _, tt := range tests {
		got, err := parseBefore(tt.in, now, london)
		if (err != nil) != tt.bad || !tt.bad && !got.Equal(tt.want) {
			t.Errorf("parseBefore(%q) = %v, %v; want %v (an error: %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// TestAuditArchiveSIGKILL kills signpost audit archive (the process) while
// it writes the archive and while it removes, and runs it again: wherever
// the kill landed, the rerun completes, the archive holds exactly the
// records before the cut and the audit database none of them.
func TestAuditArchiveSIGKILL(t *testing.T) {
	bin := buildSignpost(t)
	for _, tt := range []struct {
		name string
		// when reports whether to kill now.
		when func(f *archiveFixture, out string) bool
	}{
		{"while writing the archive", func(f *archiveFixture, out string) bool {
			_, err := os.Stat(out + ".partial")
			return err == nil
		}},
		{"while removing", func(f *archiveFixture, out string) bool {
			var n int
			db, err := sql.Open("sqlite", "file:"+auditDB(f.cfg.Data)+"?mode=ro")
			if err == nil {
				err = db.QueryRow("SELECT count(*) FROM resources WHERE type = 'AuditEvent'").Scan(&n)
				db.Close()
			}
			return err == nil && n < len(f.old)+len(f.new)-100
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newArchiveFixtureN(t, 3000)
			out := filepath.Join(t.TempDir(), "old.ndjson")
			args := []string{"audit", "archive", "--data", f.cfg.Data, "--before", f.cut.Format(time.RFC3339), "--out", out, "--batch", "20"}
			cmd := signpostCmd(bin, args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			landed := "after it finished: the test did not test a kill"
			for done := false; !done; {
				select {
				case <-exited:
					done = true
				case <-ctx.Done():
					t.Fatal("the archive did not finish")
				case <-time.After(time.Millisecond):
					if tt.when(f, out) {
						cmd.Process.Kill()
						<-exited
						done = true
						landed = "while writing"
						if _, err := os.Stat(out); err == nil {
							audit, _ := f.held(t)
							landed = fmt.Sprintf("while removing (%d of %d left)", len(audit)-len(f.new), len(f.old))
						}
					}
				}
			}
			t.Logf("the kill landed %s", landed)
			if b, err := signpostCmd(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("the rerun: %v\n%s", err, b)
			}
			if diff := cmp.Diff(f.old, archivedIDs(t, out)); diff != "" {
				t.Errorf("the archive after the rerun (-want +got):\n%s", diff)
			}
			if audit, main := f.held(t); !slices.Equal(audit, f.new) || len(main) != 0 {
				t.Errorf("after the rerun the audit database holds %d records (want the %d after the cut) and the main store %d copies", len(audit), len(f.new), len(main))
			}
		})
	}
}

// TestAuditArchiveMongo archives from a MongoDB store (lungo's engine, in
// a file), where the AuditEvents are the main store's own: the archive
// holds exactly the records before the cut, and the store keeps the
// others.
func TestAuditArchiveMongo(t *testing.T) {
	cfg := app.Config{Data: t.TempDir(), Store: "lungo"}
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	cut := t0.Add(time.Hour)
	st, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var old, all []string
	var rs []*fhir.Resource
	for i := range 12 {
		id := fmt.Sprintf("ae-%02d", i)
		at := t0.Add(time.Duration(i) * 10 * time.Minute) // 6 before the cut
		if at.Before(cut) {
			old = append(old, id)
		}
		all = append(all, id)
		rs = append(rs, auditEvent(id, 1, at))
	}
	putAll(t, st, rs...)
	st.Close()
	trail, copies, closeAll, err := openTrail(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if copies != nil {
		t.Error("a MongoDB store has copies elsewhere")
	}
	out := filepath.Join(t.TempDir(), "old.ndjson")
	res, err := (&archiveJob{trail: trail, before: cut, out: out, batch: 4}).run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.records != len(old) || res.removed != len(old) {
		t.Errorf("archived %d and removed %d, want %d", res.records, res.removed, len(old))
	}
	if diff := cmp.Diff(old, archivedIDs(t, out)); diff != "" {
		t.Errorf("the archive (-want +got):\n%s", diff)
	}
	for _, id := range all {
		_, err := trail.(store.Store).Read(context.Background(), audit.Type, id)
		if gone := slices.Contains(old, id); gone != (fhir.KindOf(err) == fhir.NotFound) {
			t.Errorf("Read AuditEvent/%s after the archive: %v (archived: %v)", id, err, gone)
		}
	}
	closeAll()
}
