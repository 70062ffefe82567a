package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/auth/devserver"
)

// auditRows reads the id and lastUpdated (µs) of every AuditEvent of the
// audit database in data, from its file (read only, beside a server).
func auditRows(t *testing.T, data string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+auditDB(data)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, updated FROM resources WHERE type = 'AuditEvent'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		out[id] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// archivedIDs reads the AuditEvent ids of an archive file, checking that
// every line is one.
func archivedIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var in io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		in = gz
	}
	var ids []string
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var ev struct{ ResourceType, ID string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.ResourceType != "AuditEvent" || ev.ID == "" {
			t.Fatalf("%s: a line that is no AuditEvent: %.200s (%v)", path, sc.Bytes(), err)
		}
		ids = append(ids, ev.ID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// searchAudits pages through GET base/fhir/AuditEvent?query as the
// auditor and returns id → lastUpdated.
func searchAudits(t *testing.T, client *http.Client, base, tok, query string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	next := base + "/fhir/AuditEvent?_count=500&" + query
	for next != "" {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Link []struct {
				Relation, URL string
			}
			Entry []struct {
				Resource struct {
					ID   string
					Meta struct{ LastUpdated time.Time }
				}
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", next, resp.StatusCode, err)
		}
		for _, e := range b.Entry {
			out[e.Resource.ID] = e.Resource.Meta.LastUpdated
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return out
}

// TestAuditArchiveWhileServing archives the audit trail of a running
// server: requests are audited before a cut and after it, and go on
// while signpost audit archive runs; the archive holds exactly the
// records before the cut, the server's AuditEvent search then finds
// exactly the others (and no record from before the cut, by search or by
// id), no request failed, and signpost check is clean.
func TestAuditArchiveWhileServing(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data)
	tok, err := devserver.MintToken(data, devserver.TokenOptions{Client: devserver.ClientGPSystem})
	if err != nil {
		t.Fatal(err)
	}
	readTok, err := devserver.MintToken(data, devserver.TokenOptions{Client: devserver.ClientCallCentre})
	if err != nil {
		t.Fatal(err)
	}
	auditor := mintToken(t, bin, data, "--client", "provider", "--org", "RH8", "--role", "auditor", "--scope", "user/AuditEvent.rs")
	client := &http.Client{Timeout: 30 * time.Second}
	search := func(key string) error {
		req, _ := http.NewRequest(http.MethodGet, p.base+"/fhir/Patient?identifier=urn:signpost:test|"+key, nil)
		req.Header.Set("Authorization", "Bearer "+readTok)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("search %s: %d", key, resp.StatusCode)
		}
		return nil
	}
	// Before the cut: creates (records of writes, moved from the main
	// store's queue) and searches (records of reads).
	for i := range 20 {
		if _, err := createPatient(client, p.base, tok, fmt.Sprint("old-", i)); err != nil {
			t.Fatal(err)
		}
		if err := search(fmt.Sprint("old-", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Every record of those stored: an auditor's search (which has the
	// mover copy every queued record of a write first) and a probe search,
	// whose record is flushed after every read's record before it (a
	// read's record is stored, and last updated, at the trail's next
	// flush).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	barrier := func(probe string) {
		t.Helper()
		searchAudits(t, client, p.base, auditor, "_id=none")
		if err := search(probe); err != nil {
			t.Fatal(err)
		}
		if err := waitFor(ctx, func() bool { return auditRecords(t, data).searched(probe) }); err != nil {
			t.Fatalf("the %s search's record: %v", probe, err)
		}
	}
	barrier("probe-old")
	cut := time.Now().Truncate(time.Second).Add(time.Second)
	if err := waitFor(ctx, func() bool { return time.Now().After(cut) }); err != nil {
		t.Fatal(err)
	}
	barrier("probe-new")
	// Requests go on while the archive runs.
	var (
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		errc   = make(chan error, 2)
		during int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := createPatient(client, p.base, tok, fmt.Sprint("during-", i)); err != nil {
				errc <- err
				return
			}
			if err := search(fmt.Sprint("during-", i)); err != nil {
				errc <- err
				return
			}
			during++
		}
	}()
	before := auditRows(t, data)
	var wantOld, wantNew []string
	for id, at := range before {
		if at < cut.UnixMicro() {
			wantOld = append(wantOld, id)
		} else {
			wantNew = append(wantNew, id)
		}
	}
	slices.Sort(wantOld)
	if len(wantOld) < 40 || len(wantNew) == 0 {
		t.Fatalf("%d records before the cut and %d after: want at least 40 and 1", len(wantOld), len(wantNew))
	}
	for range 2 { // the second from the server's memory
		if code := readAudit(t, client, p.base, auditor, wantOld[0]); code != http.StatusOK {
			t.Fatalf("GET AuditEvent/%s before the archive: %d", wantOld[0], code)
		}
	}
	archive := filepath.Join(t.TempDir(), "audit-old.ndjson.gz")
	out, err := signpostCmd(bin, "audit", "archive", "--data", data, "--before", cut.Format(time.RFC3339), "--out", archive, "--batch", "7").CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("signpost audit archive: %v\n%s", err, out)
	}
	select {
	case err := <-errc:
		t.Fatalf("a request while the archive ran: %v", err)
	default:
	}
	t.Logf("%d creates and searches while the archive ran; it said:\n%s", during, out)
	if want := fmt.Sprintf("archived %d AuditEvents", len(wantOld)); !strings.Contains(string(out), want) ||
		!strings.Contains(string(out), fmt.Sprintf("removed %d of them", len(wantOld))) {
		t.Errorf("the report does not say %q and removed %d", want, len(wantOld))
	}
	if diff := cmp.Diff(wantOld, archivedIDs(t, archive)); diff != "" {
		t.Errorf("the archive holds other than the records before the cut (-want +got):\n%s", diff)
	}
	// The server: no record from before the cut, every one after it.
	got := searchAudits(t, client, p.base, auditor, "")
	for _, id := range wantOld {
		if _, ok := got[id]; ok {
			t.Errorf("AuditEvent/%s, archived, is still found", id)
		}
	}
	for _, id := range wantNew {
		if _, ok := got[id]; !ok {
			t.Errorf("AuditEvent/%s, recorded after the cut, is not found", id)
		}
	}
	for id, at := range got {
		if at.Before(cut) {
			t.Errorf("AuditEvent/%s, recorded %s, before the cut, is found", id, at)
		}
	}
	if old := searchAudits(t, client, p.base, auditor, "_lastUpdated=lt"+cut.Format(time.RFC3339)); len(old) != 0 {
		t.Errorf("AuditEvent?_lastUpdated=lt(the cut) finds %d after the archive", len(old))
	}
	// A record read by id before the archive (so the server may serve it
	// from memory) is gone too, once the server has seen the purge.
	if err := waitFor(ctx, func() bool { return readAudit(t, client, p.base, auditor, wantOld[0]) == http.StatusNotFound }); err != nil {
		t.Errorf("GET AuditEvent/%s (archived): still not 404: %v", wantOld[0], err)
	}
	// Run again: the archive exists, so it only confirms the removal.
	again, err := signpostCmd(bin, "audit", "archive", "--data", data, "--before", cut.Format(time.RFC3339), "--out", archive).CombinedOutput()
	if err != nil || !strings.Contains(string(again), "removed 0 of them") || !strings.Contains(string(again), fmt.Sprintf("%d had been removed by an earlier run", len(wantOld))) {
		t.Errorf("the same command again: %v\n%s", err, again)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("signpost serve exited %d", code)
	}
	checkIntegrity(t, data)
	if out, err := signpostCmd(bin, "check", "--data", data).CombinedOutput(); err != nil {
		t.Errorf("signpost check: %v\n%s", err, out)
	}
}

// readAudit GETs AuditEvent/id as the auditor and returns the status.
func readAudit(t *testing.T, client *http.Client, base, tok, id string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/fhir/AuditEvent/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
