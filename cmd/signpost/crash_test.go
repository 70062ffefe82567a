package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // for the integrity check of the data file

	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestCrashKeepsAcknowledgedWrites kills the server with SIGKILL in the
// middle of a stream of concurrent creates and updates, several times over
// one data directory, and checks after each restart that every write the
// server acknowledged (2xx) is there with the version and content it
// acknowledged, that a write in flight at the kill is either wholly there
// or wholly absent, and that nothing is torn: every stored version parses,
// carries its own id and versionId, and every resource's history runs
// 1..n without a gap, its current version being n.
//
// SIGKILL loses what the process had not handed to the kernel; it cannot
// show that the kernel's page cache reached the disk (power loss). That is
// the store's fsync setting, checked in store/sqlite.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	const (
		workers = 8
		rounds  = 3
	)
	st := newCrashState(workers)
	for round := 1; round <= rounds; round++ {
		p := startSignpost(t, bin, data, "--open")
		st.verify(t, p.base, round)
		acked := st.stream(t, p, round)
		if acked == 0 {
			t.Fatalf("round %d: no write was acknowledged before the kill", round)
		}
		if code := p.wait(t, 10*time.Second); code != -1 {
			t.Fatalf("round %d: signpost exited with %d after SIGKILL, want to be killed", round, code)
		}
	}
	p := startSignpost(t, bin, data, "--open")
	st.verify(t, p.base, rounds+1)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("signpost exited with %d after SIGTERM, want 0", code)
	}
	checkIntegrity(t, data)
	t.Logf("%d resources, %d acknowledged versions, %d in-flight writes found stored after a kill",
		st.resources(), st.versions(), st.inflightFound)
}

// crashState is what the client knows about the store across restarts.
// Worker w owns owned[w]: only it writes them, so versions are predictable.
type crashState struct {
	mu            sync.Mutex
	owned         [][]*tracked
	pendingCreate []*attempt // per worker: a create sent but not answered
	inflightFound int
}

// tracked is one Patient and its acknowledged versions.
type tracked struct {
	id      string
	bodies  [][]byte // bodies[v-1] is what the client sent for version v
	pending *attempt // an update sent but not answered
}

// attempt is a write whose outcome the client never learned.
type attempt struct {
	version int64
	body    []byte
}

func newCrashState(workers int) *crashState {
	return &crashState{owned: make([][]*tracked, workers), pendingCreate: make([]*attempt, workers)}
}

func (st *crashState) resources() int {
	n := 0
	for _, o := range st.owned {
		n += len(o)
	}
	return n
}

func (st *crashState) versions() int {
	n := 0
	for _, o := range st.owned {
		for _, r := range o {
			n += len(r.bodies)
		}
	}
	return n
}

// stream runs the workers until the server is killed, partway through a
// stream of writes, and returns how many writes this round acknowledged.
func (st *crashState) stream(t *testing.T, p *process, round int) int64 {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: len(st.owned)}}
	defer client.CloseIdleConnections()
	var acked atomic.Int64
	var killed atomic.Bool
	var wg sync.WaitGroup
	for w := range st.owned {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			for seq := 0; ; seq++ {
				err := st.writeOnce(client, p.base, w, round, seq, rng)
				if err != nil {
					if !killed.Load() {
						t.Errorf("worker %d before the kill: %v", w, err)
					}
					return
				}
				acked.Add(1)
			}
		}()
	}
	// Kill at a random moment once writes are flowing.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	target := int64(100 + rand.IntN(300))
	waitFor(ctx, func() bool { return acked.Load() >= target })
	time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
	killed.Store(true)
	p.signal(t, syscall.SIGKILL)
	wg.Wait()
	t.Logf("round %d: %d writes acknowledged before SIGKILL", round, acked.Load())
	return acked.Load()
}

// writeOnce creates a Patient or updates one of worker w's, recording the
// attempt before sending and the acknowledgement after. It returns an
// error for a failed request or an unexpected answer.
func (st *crashState) writeOnce(client *http.Client, base string, w, round, seq int, rng *rand.Rand) error {
	st.mu.Lock()
	mine := st.owned[w]
	st.mu.Unlock()
	marker := fmt.Sprintf("r%d-w%d-s%d", round, w, seq)
	if len(mine) < 3 || rng.IntN(10) < 4 {
		body := patientBody("", marker, rng)
		st.mu.Lock()
		st.pendingCreate[w] = &attempt{version: 1, body: body}
		st.mu.Unlock()
		id, version, err := send(client, http.MethodPost, base+"/fhir/Patient", body, "")
		if err != nil {
			return err
		}
		if version != 1 {
			return fmt.Errorf("create %s: ETag version %d, want 1", marker, version)
		}
		st.mu.Lock()
		st.pendingCreate[w] = nil
		st.owned[w] = append(st.owned[w], &tracked{id: id, bodies: [][]byte{body}})
		st.mu.Unlock()
		return nil
	}
	r := mine[rng.IntN(len(mine))]
	body := patientBody(r.id, marker, rng)
	st.mu.Lock()
	next := int64(len(r.bodies)) + 1
	r.pending = &attempt{version: next, body: body}
	st.mu.Unlock()
	id, version, err := send(client, http.MethodPut, base+"/fhir/Patient/"+r.id, body, fmt.Sprintf(`W/"%d"`, next-1))
	if err != nil {
		return err
	}
	if id != r.id || version != next {
		return fmt.Errorf("update Patient/%s: answered %s version %d, want version %d", r.id, id, version, next)
	}
	st.mu.Lock()
	r.pending = nil
	r.bodies = append(r.bodies, body)
	st.mu.Unlock()
	return nil
}

// send performs one write and returns the id and version the server
// acknowledged.
func send(client *http.Client, method, u string, body []byte, ifMatch string) (string, int64, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return "", 0, fmt.Errorf("%s %s: status %d: %s", method, u, resp.StatusCode, got)
	}
	version, err := etagVersion(resp.Header.Get("ETag"))
	if err != nil {
		return "", 0, fmt.Errorf("%s %s: %v", method, u, err)
	}
	var res struct{ ID string }
	if err := json.Unmarshal(got, &res); err != nil || res.ID == "" {
		return "", 0, fmt.Errorf("%s %s: answer has no id: %s", method, u, got)
	}
	return res.ID, version, nil
}

func etagVersion(etag string) (int64, error) {
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(etag, "W/"), `"`), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ETag %q is not W/\"n\"", etag)
	}
	return v, nil
}

// patientBody returns a valid Patient whose identifier names the attempt
// and whose size varies, so writes span different numbers of pages.
func patientBody(id, marker string, rng *rand.Rand) []byte {
	m := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": "urn:signpost:crash-test", "value": marker}},
		"active":       rng.IntN(2) == 0,
		"name":         []any{map[string]any{"family": "Crash" + marker, "given": []any{strings.Repeat("x", 1+rng.IntN(40))}}},
		"birthDate":    fmt.Sprintf("19%02d-%02d-%02d", rng.IntN(100), 1+rng.IntN(12), 1+rng.IntN(28)),
		"address":      []any{map[string]any{"line": []any{strings.Repeat("Long Lane ", 1+rng.IntN(300))}, "postalCode": "LS1 4AP"}},
	}
	if id != "" {
		m["id"] = id
	}
	b, _ := json.Marshal(m)
	return b
}

// verify reads everything the server holds and checks it against what was
// acknowledged; an in-flight write found stored becomes acknowledged, one
// not found is forgotten.
func (st *crashState) verify(t *testing.T, base string, round int) {
	t.Helper()
	stored := typeHistory(t, base, "Patient")
	// Nothing torn: contiguous versions, each well formed.
	for id, versions := range stored {
		for v := int64(1); v <= int64(len(versions)); v++ {
			body, ok := versions[v]
			if !ok {
				t.Fatalf("restart %d: Patient/%s has %d versions but no version %d: history is not contiguous", round, id, len(versions), v)
			}
			checkStamp(t, body, id, v)
		}
		current := readCurrent(t, base, id)
		if want := int64(len(versions)); current.version != want {
			t.Fatalf("restart %d: Patient/%s reads as version %d, its history ends at %d", round, id, current.version, want)
		}
		if !sameContent(current.body, versions[current.version]) {
			t.Fatalf("restart %d: Patient/%s current body differs from history version %d", round, id, current.version)
		}
	}
	// Every acknowledged write present, as acknowledged.
	seen := map[string]bool{}
	for w, owned := range st.owned {
		for _, r := range owned {
			seen[r.id] = true
			versions := stored[r.id]
			n := int64(len(versions))
			acked := int64(len(r.bodies))
			switch {
			case n == acked:
			case n == acked+1 && r.pending != nil && r.pending.version == n:
				if !sameContent(versions[n], r.pending.body) {
					t.Fatalf("restart %d: Patient/%s version %d is not the update that was in flight", round, r.id, n)
				}
				r.bodies = append(r.bodies, r.pending.body)
				st.inflightFound++
			default:
				t.Fatalf("restart %d: worker %d's Patient/%s has %d stored versions, %d acknowledged", round, w, r.id, n, acked)
			}
			r.pending = nil
			for v, sent := range r.bodies {
				if !sameContent(versions[int64(v+1)], sent) {
					t.Fatalf("restart %d: Patient/%s version %d differs from the acknowledged write:\nstored %s\nsent   %s",
						round, r.id, v+1, versions[int64(v+1)], sent)
				}
			}
		}
	}
	// Anything else must be a create that was in flight at the kill.
	for id, versions := range stored {
		if seen[id] {
			continue
		}
		owner := -1
		for w, a := range st.pendingCreate {
			if a != nil && len(versions) == 1 && sameContent(versions[1], a.body) {
				owner = w
			}
		}
		if owner < 0 {
			t.Fatalf("restart %d: Patient/%s (%d versions) was never acknowledged nor in flight: %s", round, id, len(versions), versions[1])
		}
		st.owned[owner] = append(st.owned[owner], &tracked{id: id, bodies: [][]byte{st.pendingCreate[owner].body}})
		st.pendingCreate[owner] = nil
		st.inflightFound++
	}
	for w := range st.pendingCreate {
		st.pendingCreate[w] = nil
	}
	if got, want := len(stored), st.resources(); got != want {
		t.Fatalf("restart %d: server holds %d Patients, the client knows %d", round, got, want)
	}
}

// typeHistory pages through GET /fhir/{typ}/_history and returns every
// version's body by id and version.
func typeHistory(t *testing.T, base, typ string) map[string]map[int64][]byte {
	t.Helper()
	out := map[string]map[int64][]byte{}
	next := base + "/fhir/" + typ + "/_history?_count=1000"
	for next != "" {
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
			}
		}
		getJSON(t, next, &b)
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				u, err := url.Parse(l.URL)
				if err != nil {
					t.Fatalf("history next link %q: %v", l.URL, err)
				}
				next = base + u.RequestURI()
			}
		}
		for _, e := range b.Entry {
			if e.Resource == nil {
				t.Fatalf("history entry %s has no resource; the test never deletes", e.FullURL)
			}
			var head struct {
				ID   string
				Meta struct{ VersionID string }
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil {
				t.Fatalf("history entry %s does not parse: %v: %s", e.FullURL, err, e.Resource)
			}
			v, err := strconv.ParseInt(head.Meta.VersionID, 10, 64)
			if err != nil {
				t.Fatalf("history entry %s: meta.versionId %q", e.FullURL, head.Meta.VersionID)
			}
			if out[head.ID] == nil {
				out[head.ID] = map[int64][]byte{}
			}
			if _, dup := out[head.ID][v]; dup {
				t.Fatalf("history holds %s/%s version %d twice", typ, head.ID, v)
			}
			out[head.ID][v] = e.Resource
		}
	}
	return out
}

type current struct {
	version int64
	body    []byte
}

func readCurrent(t *testing.T, base, id string) current {
	t.Helper()
	resp, err := http.Get(base + "/fhir/Patient/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET Patient/%s: status %d, %v: %s", id, resp.StatusCode, err, body)
	}
	v, err := etagVersion(resp.Header.Get("ETag"))
	if err != nil {
		t.Fatalf("GET Patient/%s: %v", id, err)
	}
	checkStamp(t, body, id, v)
	return current{version: v, body: body}
}

func getJSON(t *testing.T, u string, into any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v: %s", u, resp.StatusCode, err, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// checkStamp fails unless body is a Patient stamped with id and version.
func checkStamp(t *testing.T, body []byte, id string, version int64) {
	t.Helper()
	var head struct {
		ResourceType string
		ID           string
		Meta         struct{ VersionID, LastUpdated string }
	}
	if err := json.Unmarshal(body, &head); err != nil {
		t.Fatalf("Patient/%s version %d does not parse: %v: %s", id, version, err, body)
	}
	if head.ResourceType != "Patient" || head.ID != id || head.Meta.VersionID != strconv.FormatInt(version, 10) || head.Meta.LastUpdated == "" {
		t.Fatalf("Patient/%s version %d is stamped %s/%s version %q lastUpdated %q", id, version,
			head.ResourceType, head.ID, head.Meta.VersionID, head.Meta.LastUpdated)
	}
}

// sameContent reports whether two resources are equal as JSON, ignoring
// the server-owned id and meta.
func sameContent(a, b []byte) bool {
	decode := func(raw []byte) map[string]any {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&m) != nil {
			return nil
		}
		delete(m, "id")
		delete(m, "meta")
		return m
	}
	ma, mb := decode(a), decode(b)
	return ma != nil && reflect.DeepEqual(ma, mb)
}

// checkIntegrity runs SQLite's own consistency check over the data file,
// and over the audit database's when there is one.
func checkIntegrity(t *testing.T, data string) {
	t.Helper()
	files := []string{filepath.Join(data, sqlite.FileName)}
	if _, err := os.Stat(auditDB(data)); err == nil {
		files = append(files, auditDB(data))
	}
	for _, f := range files {
		db, err := sql.Open("sqlite", "file:"+f+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = db.QueryRow("PRAGMA integrity_check").Scan(&got)
		db.Close()
		if err != nil {
			t.Fatalf("integrity_check of %s: %v", filepath.Base(f), err)
		}
		if got != "ok" {
			t.Fatalf("integrity_check of %s = %q, want ok", filepath.Base(f), got)
		}
	}
}
