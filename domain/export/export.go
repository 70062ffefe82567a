// Package export is FHIR Bulk Data Access's $export for Signpost: the
// asynchronous request pattern (Prefer: respond-async, a status endpoint
// polled until a manifest of NDJSON files is ready, DELETE to cancel) at
// system level (/fhir/$export) and for the patients (/fhir/Patient/$export),
// with _type, _since and _outputFormat.
//
// An export reads what its requester may read, nothing more. At kick-off the
// types are narrowed to those the access token grants read on (at system
// level through a system/ scope, as backend services hold; the Patient
// export through any scope, a patient's reaching their own compartment); a
// type asked for and not granted is reported in the manifest's error file.
// While it runs, every resource is checked against the same read rules as a
// search or a read (write.Path.ReadAs with the requester's principal), so
// organisation, compartment and granular-scope restrictions all apply.
// Only the requester (the same client and subject) may poll, download or
// cancel.
//
// Jobs are durable: each is a directory under Config.Dir holding its state
// (job.json, written atomically) and its files. A job that was running when
// the server stopped is started again from the beginning when it starts (its
// partial files are discarded); a finished job's files stay until its
// retention ends, then the job and its files are removed.
package export

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Config configures the export service.
type Config struct {
	Dir     string // where jobs keep their state and files (e.g. <data>/export)
	BaseURL string // the public FHIR base, for the status and file URLs
	// Types are the resource types a system-level export may include (the
	// server's writable types).
	Types []string
	// Open: the server runs without authorisation, so the manifest says no
	// access token is needed.
	Open      bool
	Retention time.Duration    // how long a finished job's files are kept; default 24 hours
	FileBytes int              // a file is closed once it reaches this size; default 8 MB
	PageSize  int              // resources read from the store at a time; default 500
	Now       func() time.Time // default time.Now
	Logger    *slog.Logger
}

// Service runs export jobs.
type Service struct {
	cfg  Config
	repo *write.Path
	reg  *search.Registry

	mu      sync.Mutex
	jobs    map[string]*job
	cancels map[string]context.CancelFunc // the running job's, by id
	wake    chan struct{}
}

// Job states, as job.json records them.
const (
	stateAccepted  = "accepted"    // waiting to run (again, after a restart)
	stateRunning   = "in-progress" // being written
	stateComplete  = "completed"
	stateFailed    = "failed"
	stateCancelled = "cancelled"
)

// job is one export, as job.json keeps it.
type job struct {
	ID      string          `json:"id"`
	Owner   *auth.Principal `json:"owner,omitempty"` // nil when the server is open
	Level   string          `json:"level"`           // "system" or "patient"
	Types   []string        `json:"types"`
	Refused []string        `json:"refused,omitempty"` // types asked for that the token does not grant
	Since   time.Time       `json:"since,omitzero"`
	// Patients, for a Patient export, confine it to these patients'
	// compartments (the patient parameter, or the token's patient).
	Patients []string  `json:"patients,omitempty"`
	Request  string    `json:"request"`
	State    string    `json:"state"`
	Message  string    `json:"message,omitempty"` // why it failed
	Created  time.Time `json:"created"`
	// TransactionTime is when the run began: nothing updated after it is
	// exported.
	TransactionTime time.Time `json:"transactionTime,omitzero"`
	Finished        time.Time `json:"finished,omitzero"`
	Output          []file    `json:"output,omitempty"`
	Errors          []file    `json:"errors,omitempty"`
	Done            int       `json:"done"`     // types finished
	Exported        int       `json:"exported"` // resources written so far
}

// file is one NDJSON file of a job.
type file struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// New returns the service, loading the jobs kept in cfg.Dir: a job that was
// running when the server stopped waits to run again. Call Run to run them.
func New(cfg Config, repo *write.Path, reg *search.Registry) (*Service, error) {
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.FileBytes <= 0 {
		cfg.FileBytes = 8 << 20
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	s := &Service{cfg: cfg, repo: repo, reg: reg, jobs: map[string]*job{}, cancels: map[string]context.CancelFunc{},
		wake: make(chan struct{}, 1)}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(cfg.Dir, e.Name(), "job.json"))
		if err != nil {
			cfg.Logger.Warn("export: a job directory without its state is removed", "job", e.Name(), "error", err)
			os.RemoveAll(filepath.Join(cfg.Dir, e.Name()))
			continue
		}
		var j job
		if err := json.Unmarshal(raw, &j); err != nil || j.ID != e.Name() {
			cfg.Logger.Warn("export: an unreadable job is removed", "job", e.Name(), "error", err)
			os.RemoveAll(filepath.Join(cfg.Dir, e.Name()))
			continue
		}
		if j.State == stateRunning {
			cfg.Logger.Info("export: a job interrupted by the restart runs again", "job", j.ID)
			j.State = stateAccepted
			s.discardFiles(&j)
		}
		if j.State == stateCancelled {
			os.RemoveAll(filepath.Join(cfg.Dir, j.ID))
			continue
		}
		s.jobs[j.ID] = &j
	}
	return s, nil
}

// Run runs the jobs waiting, one at a time, and removes those past their
// retention, until ctx ends. ctx must not carry a principal: each job runs
// as its requester.
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		s.prune()
		for {
			j, jctx := s.next(ctx)
			if j == nil {
				break
			}
			s.run(ctx, jctx, j)
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// next claims the oldest waiting job, returning it with the context it runs
// in, which cancelling it ends.
func (s *Service) next(ctx context.Context) (*job, context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first *job
	for _, j := range s.jobs {
		if j.State == stateAccepted && (first == nil || j.Created.Before(first.Created) ||
			j.Created.Equal(first.Created) && j.ID < first.ID) {
			first = j
		}
	}
	if first == nil {
		return nil, nil
	}
	jctx, cancel := context.WithCancel(ctx)
	s.cancels[first.ID] = cancel
	first.State = stateRunning
	first.TransactionTime = s.cfg.Now().UTC().Truncate(time.Millisecond)
	first.Output, first.Errors, first.Done, first.Exported = nil, nil, 0, 0
	if err := s.saveLocked(first); err != nil {
		s.cfg.Logger.Error("export: saving a job", "job", first.ID, "error", err)
	}
	return first, jctx
}

// prune removes the jobs whose retention has ended.
func (s *Service) prune() {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, j := range s.jobs {
		if !j.Finished.IsZero() && now.After(j.Finished.Add(s.cfg.Retention)) {
			os.RemoveAll(filepath.Join(s.cfg.Dir, id))
			delete(s.jobs, id)
		}
	}
}

// run writes one job's files in jctx (ctx's child, ended by a cancel). It
// stops early, keeping the job waiting, when
// ctx ends (the server is stopping), and discards what it wrote when the
// job is cancelled.
func (s *Service) run(ctx, jctx context.Context, j *job) {
	defer func() {
		s.mu.Lock()
		if cancel := s.cancels[j.ID]; cancel != nil {
			cancel()
			delete(s.cancels, j.ID)
		}
		s.mu.Unlock()
	}()
	as := jctx
	if j.Owner != nil {
		as = auth.NewContext(jctx, j.Owner)
	}
	err := s.write(as, j)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case j.State == stateCancelled:
		os.RemoveAll(filepath.Join(s.cfg.Dir, j.ID))
		delete(s.jobs, j.ID)
		return
	case ctx.Err() != nil:
		return // the server stops: the job stays in progress and runs again on start
	case err != nil:
		s.cfg.Logger.Error("export: a job failed", "job", j.ID, "error", err)
		j.State, j.Message = stateFailed, "the export failed: "+err.Error()
	default:
		j.State = stateComplete
	}
	j.Finished = s.cfg.Now().UTC()
	if err := s.saveLocked(j); err != nil {
		s.cfg.Logger.Error("export: saving a job", "job", j.ID, "error", err)
	}
}

// write exports each of j's types in turn.
func (s *Service) write(ctx context.Context, j *job) error {
	dir := filepath.Join(s.cfg.Dir, j.ID)
	if len(j.Refused) > 0 {
		var buf bytes.Buffer
		for _, typ := range j.Refused {
			buf.Write(fhir.OperationOutcome(fhir.Issue{Code: "forbidden", Expression: []string{"_type"},
				Diagnostics: fmt.Sprintf("%s is not exported: the access token does not allow reading %s resources", typ, typ)}))
			buf.WriteByte('\n')
		}
		name := "OperationOutcome-errors.ndjson"
		if err := writeFileAtomic(filepath.Join(dir, name), buf.Bytes()); err != nil {
			return err
		}
		s.mu.Lock()
		j.Errors = append(j.Errors, file{Type: "OperationOutcome", Name: name, Count: len(j.Refused)})
		s.mu.Unlock()
	}
	for _, typ := range j.Types {
		if err := s.writeType(ctx, j, dir, typ); err != nil {
			return err
		}
		s.mu.Lock()
		j.Done++
		err := s.saveLocked(j)
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// writeType exports the resources of typ the requester may read, in the
// store's order (last updated, then id), into files of at most FileBytes.
func (s *Service) writeType(ctx context.Context, j *job, dir, typ string) error {
	q := &search.Query{Type: typ, Count: s.cfg.PageSize}
	if !j.Since.IsZero() {
		q.Filter = append(q.Filter, search.DateMatch{Param: "_lastUpdated", Prefix: search.Ge,
			Low: j.Since.UnixMicro(), High: j.Since.UnixMicro() + 1})
	}
	patientLevel := j.Level == "patient"
	if patientLevel && len(j.Patients) > 0 {
		q.Filter = append(q.Filter, search.CompartmentFilter(typ, j.Patients...))
	}
	var (
		buf   bytes.Buffer
		count int
		n     int
	)
	flush := func() error {
		if count == 0 {
			return nil
		}
		n++
		name := fmt.Sprintf("%s-%d.ndjson", typ, n)
		if err := writeFileAtomic(filepath.Join(dir, name), buf.Bytes()); err != nil {
			return err
		}
		s.mu.Lock()
		j.Output = append(j.Output, file{Type: typ, Name: name, Count: count})
		err := s.saveLocked(j)
		s.mu.Unlock()
		buf.Reset()
		count = 0
		return err
	}
	st := s.repo.Store()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := st.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, res := range page.Resources {
			if res.Deleted || res.LastUpdated.After(j.TransactionTime) {
				continue
			}
			if patientLevel && len(j.Patients) == 0 && len(search.CompartmentPatients(s.reg, res.Type, res.ID, res.JSON)) == 0 {
				continue
			}
			if j.Owner == nil {
				// the server is open: everything is readable
			} else if _, err := s.repo.ReadAs(ctx, st, typ, res.ID); err != nil {
				if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
					continue // not the requester's to read
				}
				return err
			}
			if err := json.Compact(&buf, res.JSON); err != nil {
				return fmt.Errorf("%s/%s: %w", typ, res.ID, err)
			}
			buf.WriteByte('\n')
			count++
			s.mu.Lock()
			j.Exported++
			s.mu.Unlock()
			if buf.Len() >= s.cfg.FileBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	return flush()
}

// cancel cancels a job; its files are removed (at once, or when its run
// notices).
func (s *Service) cancel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return
	}
	if stop, running := s.cancels[id]; running {
		j.State = stateCancelled
		_ = s.saveLocked(j)
		stop()
		return
	}
	os.RemoveAll(filepath.Join(s.cfg.Dir, id))
	delete(s.jobs, id)
}

// discardFiles removes a job's NDJSON files (before it runs again).
func (s *Service) discardFiles(j *job) {
	entries, _ := os.ReadDir(filepath.Join(s.cfg.Dir, j.ID))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ndjson") || strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(s.cfg.Dir, j.ID, e.Name()))
		}
	}
	j.Output, j.Errors, j.Done, j.Exported = nil, nil, 0, 0
}

// saveLocked writes j's state; s.mu must be held.
func (s *Service) saveLocked(j *job) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.cfg.Dir, j.ID, "job.json"), raw)
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so that a reader (or a restart) sees the old content or the new, never a
// part.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// newID returns a random job id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sameRequester reports whether p is the principal that started j: the same
// issuer, client and subject (and, open, anyone).
func sameRequester(j *job, p *auth.Principal) bool {
	if j.Owner == nil {
		return true
	}
	return p != nil && p.Issuer == j.Owner.Issuer && p.ClientID == j.Owner.ClientID && p.Subject == j.Owner.Subject
}

// lookup returns the job id as p may see it: another requester's job is not
// found, exactly as one that does not exist.
func (s *Service) lookup(id string, p *auth.Principal) (*job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil || j.State == stateCancelled || !sameRequester(j, p) {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "job", "export job %q is not known (it may have been cancelled, or its files have expired)", id)
	}
	c := *j
	c.Output = slices.Clone(j.Output)
	c.Errors = slices.Clone(j.Errors)
	return &c, nil
}
