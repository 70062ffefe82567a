package export

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// TestInterruptedJobRunsAgain: a job the server stopped in the middle of is
// waiting to run again after a restart, its partial files discarded; a
// cancelled one is removed.
func TestInterruptedJobRunsAgain(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	running := &job{ID: "j1", Owner: &auth.Principal{Subject: "a", ClientID: "c"}, Level: "system", Types: []string{"Patient"},
		State: stateRunning, Created: time.Now(), Output: []file{{Type: "Patient", Name: "Patient-1.ndjson", Count: 3}}, Done: 1}
	cancelled := &job{ID: "j2", Level: "system", Types: []string{"Patient"}, State: stateCancelled, Created: time.Now()}
	for _, j := range []*job{running, cancelled} {
		if err := s.saveLocked(j); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "j1", "Patient-1.ndjson"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = New(Config{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := s.jobs["j1"]
	if j == nil || j.State != stateAccepted || len(j.Output) != 0 || j.Done != 0 || j.Owner.Subject != "a" {
		t.Fatalf("the interrupted job after a restart: %+v", j)
	}
	if _, err := os.Stat(filepath.Join(dir, "j1", "Patient-1.ndjson")); !os.IsNotExist(err) {
		t.Errorf("its partial file is still there: %v", err)
	}
	if s.jobs["j2"] != nil {
		t.Error("the cancelled job was kept")
	}
	if _, err := os.Stat(filepath.Join(dir, "j2")); !os.IsNotExist(err) {
		t.Errorf("the cancelled job's directory is still there: %v", err)
	}
}

// TestRetention: a finished job and its files are removed once its
// retention has passed, not before.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	s, err := New(Config{Dir: dir, Retention: time.Hour, Now: func() time.Time { return now }}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := &job{ID: "j1", Level: "system", State: stateComplete, Created: now, Finished: now}
	s.jobs[j.ID] = j
	if err := s.saveLocked(j); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Minute)
	s.prune()
	if s.jobs["j1"] == nil {
		t.Fatal("removed before its retention ended")
	}
	now = now.Add(2 * time.Minute)
	s.prune()
	if s.jobs["j1"] != nil {
		t.Fatal("kept after its retention ended")
	}
	if _, err := os.Stat(filepath.Join(dir, "j1")); !os.IsNotExist(err) {
		t.Errorf("its files are still there: %v", err)
	}
}

// TestUnfinishedLimit: a requester with MaxUnfinished exports waiting or
// running is told to wait (429), and nothing is written; another requester
// is not held up.
func TestUnfinishedLimit(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Types: []string{"Patient"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	scopes, _ := auth.ParseScopes("system/*.read")
	busy := &auth.Principal{Issuer: "i", ClientID: "busy", Subject: "busy", Scopes: scopes}
	other := &auth.Principal{Issuer: "i", ClientID: "other", Subject: "other", Scopes: scopes}
	for i := range MaxUnfinished {
		s.jobs[string(rune('a'+i))] = &job{ID: string(rune('a' + i)), Owner: busy, State: stateAccepted}
	}
	req := &operation.Request{Method: "GET", Header: http.Header{"Prefer": {"respond-async"}}, Query: url.Values{}, BaseURL: "http://x/fhir"}
	_, err = s.kickOff(auth.NewContext(context.Background(), busy), req)
	if fhir.KindOf(err) != fhir.TooManyRequests {
		t.Fatalf("the busy requester: %v, want too many requests", err)
	}
	if len(s.jobs) != MaxUnfinished {
		t.Errorf("%d jobs, want %d", len(s.jobs), MaxUnfinished)
	}
	if _, err := s.kickOff(auth.NewContext(context.Background(), other), req); err != nil {
		t.Errorf("another requester: %v", err)
	}
}
