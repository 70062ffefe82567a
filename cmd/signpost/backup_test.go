package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/booking"
)

// ack is a write the server acknowledged, and when the client saw it.
type ack struct {
	id string
	at time.Time
}

// TestBackupWhileServing runs signpost serve (authorisation on) with
// clients creating Patients through HTTP, takes `signpost backup` from a
// second process in the middle of the load, restores it with `signpost
// restore` into a fresh directory and opens that with app.New: every
// create acknowledged before the backup began is there, `signpost check`
// passes on it, the keys came along (a token the original server's
// development issuer signed is accepted by the restored server), and
// restore refuses a directory that is not empty.
func TestBackupWhileServing(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data)
	tok, err := devserver.MintToken(data, devserver.TokenOptions{Client: devserver.ClientGPSystem})
	if err != nil {
		t.Fatal(err)
	}
	// A token that reads every Patient, signed by the original server's
	// key before the backup.
	readTok, err := devserver.MintToken(data, devserver.TokenOptions{Client: devserver.ClientCallCentre})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acks  []ack
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		errc  = make(chan error, 4)
		count = func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := createPatient(client, p.base, tok, fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				acks = append(acks, ack{id, time.Now()})
				mu.Unlock()
			}
		}()
	}
	finish := func() {
		close(stop)
		wg.Wait()
		select {
		case err := <-errc:
			t.Fatal(err)
		default:
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitFor(ctx, func() bool { return count() >= 100 }); err != nil {
		finish()
		t.Fatalf("the clients' creates: %v", err)
	}
	// A search whose audit record is stored (by the audit database's
	// writer) before the backup begins.
	probe := "backup-probe"
	req, _ := http.NewRequest(http.MethodGet, p.base+"/fhir/Patient?identifier=urn:signpost:test|"+probe, nil)
	req.Header.Set("Authorization", "Bearer "+readTok)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		finish()
		t.Fatalf("the probe search: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := waitFor(ctx, func() bool { return auditRecords(t, data).searched(probe) }); err != nil {
		finish()
		t.Fatalf("the probe search's record: %v", err)
	}
	out := filepath.Join(t.TempDir(), "backup.tar.gz")
	began := time.Now()
	bout, berr := signpostCmd(bin, "backup", "--data", data, "--out", out).CombinedOutput()
	after := count()
	finish()
	if berr != nil {
		t.Fatalf("signpost backup: %v\n%s", berr, bout)
	}
	var before []string
	for _, a := range acks {
		if a.at.Before(began) {
			before = append(before, a.id)
		}
	}
	t.Logf("%d creates acknowledged before the backup began, %d when it ended, %d in all", len(before), after, len(acks))

	// restore refuses a directory with anything in it.
	if out, err := signpostCmd(bin, "restore", "--in", out, "--data", data).CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
		t.Errorf("restore into the live data directory: err %v, output %s; want a refusal", err, out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := signpostCmd(bin, "restore", "--in", out, "--data", restored).CombinedOutput(); err != nil {
		t.Fatalf("signpost restore: %v\n%s", err, out)
	}
	// The keys and state of the data directory are the original's.
	for _, f := range []string{booking.KeyFile, filepath.Join(filepath.Base(auth.DevDir("")), "signing-key.pem"),
		filepath.Join(filepath.Base(auth.DevDir("")), "issuer.json"), filepath.Join(filepath.Base(auth.DevDir("")), "clients.json")} {
		want, err := os.ReadFile(filepath.Join(data, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(restored, f))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: restored %d bytes (%v), want the original's %d", f, len(got), err, len(want))
		}
	}
	checkIntegrity(t, restored)
	if out, err := signpostCmd(bin, "check", "--data", restored).CombinedOutput(); err != nil {
		t.Errorf("signpost check on the restored directory: %v\n%s", err, out)
	}
	// The restored directory serves, as the original server did (same
	// address, so the same issuer and audience): the original's token is
	// accepted, and every create acknowledged before the backup is there.
	a, err := app.New(app.Config{Data: restored, Addr: strings.TrimPrefix(p.base, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The audit trail came along: the search's record, stored before the
	// backup began, and the record of every create acknowledged before it
	// (in the main store's copy, moved into the audit database when the
	// restored server opened), each once.
	recs := auditRecords(t, restored)
	if !recs.searched(probe) {
		t.Errorf("the record of a search stored before the backup began is not in the restored audit database")
	}
	for _, id := range before {
		if n := recs.creates["Patient/"+id]; n != 1 {
			t.Errorf("the create of Patient/%s, acknowledged before the backup began, has %d records in the restored audit database, want 1", id, n)
		}
	}
	h := a.Handler()
	for _, id := range before {
		req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+readTok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET Patient/%s on the restored server: %d %s", id, rec.Code, rec.Body)
		}
	}
}

// signpostCmd is the command bin args, without the SIGNPOST_* settings of
// the environment.
func signpostCmd(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = withoutSignpostEnv(os.Environ())
	return cmd
}

// createPatient POSTs a Patient and returns the id the server gave it.
func createPatient(client *http.Client, base, tok, marker string) (string, error) {
	body := `{"resourceType":"Patient","name":[{"family":"Backup","given":["` + marker + `"]}],"gender":"unknown"}`
	req, err := http.NewRequest(http.MethodPost, base+"/fhir/Patient", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST Patient %s: status %d", marker, resp.StatusCode)
	}
	loc := resp.Header.Get("Location") // …/fhir/Patient/ID/_history/1
	parts := strings.Split(loc, "/")
	for i := range parts {
		if parts[i] == "Patient" && i+1 < len(parts) {
			return parts[i+1], nil
		}
	}
	return "", fmt.Errorf("POST Patient %s: no id in Location %q", marker, loc)
}

// TestBackupDataDirectory backs up a data directory in-process: the
// store, its keys, a second SQLite database with rows still in its WAL
// (copied through SQLite, so they are in the copy), and a plain file;
// restore gives the same files back.
func TestBackupDataDirectory(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	a, err := app.New(app.Config{Data: data, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := os.WriteFile(filepath.Join(data, "notes.txt"), []byte("kept\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", "file:"+filepath.Join(data, "other.db")+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA wal_autocheckpoint=0", "CREATE TABLE t(v)", "INSERT INTO t VALUES ('in the wal')"} {
		if _, err := other.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	m, err := backup(ctx, app.Config{Data: data, Store: "sqlite"}, out, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range m.Files {
		got = append(got, f.Path)
	}
	// Open: no development server, so no auth directory.
	want := []string{booking.KeyFile, "notes.txt", "other.db", "signpost.db", "subscriptions/notification-signing-key.pem"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	restored := filepath.Join(t.TempDir(), "r")
	if _, err := restore(out, restored); err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if f.Path == "signpost.db" || f.Path == "other.db" {
			continue
		}
		w, _ := os.ReadFile(filepath.Join(data, f.Path))
		g, err := os.ReadFile(filepath.Join(restored, f.Path))
		if err != nil || string(g) != string(w) {
			t.Errorf("%s restored as %q (%v), want %q", f.Path, g, err, w)
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(restored, "other.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT v FROM t").Scan(&v); err != nil || v != "in the wal" {
		t.Errorf("other.db restored: %q, %v; want the row from its WAL", v, err)
	}
	if _, err := backup(ctx, app.Config{Data: data, Store: "sqlite"}, out, false); err == nil {
		t.Error("a backup overwrote an existing file")
	}
}

// TestRestoreRefuses: restore checks the archive against its manifest and
// writes nothing into the target unless all of it is sound.
func TestRestoreRefuses(t *testing.T) {
	good := manifest{Format: backupFormat, Files: []backupFile{{Path: "a.key", Mode: 0o600, Size: 3,
		SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}} // sha256("abc")
	type entry struct{ name, body string }
	tests := []struct {
		name    string
		m       *manifest // nil: no manifest entry
		entries []entry
		want    string
	}{
		{"sound", &good, []entry{{"data/a.key", "abc"}}, ""},
		{"no manifest", nil, []entry{{"data/a.key", "abc"}}, "not a signpost backup"},
		{"changed content", &good, []entry{{"data/a.key", "abd"}}, "damaged"},
		{"missing file", &good, nil, "missing"},
		{"unlisted file", &good, []entry{{"data/a.key", "abc"}, {"data/b.key", "x"}}, "unexpected entry"},
		{"path out of the directory", &good, []entry{{"data/../a.key", "abc"}}, "unexpected entry"},
		{"format from the future", &manifest{Format: backupFormat + 1}, nil, "format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "b.tar.gz")
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			tw := tar.NewWriter(zw)
			add := func(name string, body []byte) {
				if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
					t.Fatal(err)
				}
				tw.Write(body)
			}
			if tc.m != nil {
				mj, _ := json.Marshal(tc.m)
				add(manifestName, mj)
			}
			for _, e := range tc.entries {
				add(e.name, []byte(e.body))
			}
			tw.Close()
			zw.Close()
			if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "restored")
			_, err := restore(in, target)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(target, "a.key")); err != nil || string(b) != "abc" {
					t.Errorf("a.key = %q, %v", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if _, err := os.Stat(target); err == nil {
				t.Error("the target was written")
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".signpost-restore-*")); len(left) > 0 {
				t.Errorf("staging left behind: %v", left)
			}
		})
	}
}
