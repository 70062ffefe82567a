package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDiskFull runs `signpost serve`, authorisation and audit on, and takes
// away its room to write: the process's file-size limit (RLIMIT_FSIZE,
// through prlimit(2) on the running child) drops to 0, so that every write
// to a file fails with EFBIG, as every write to a full disk fails with
// ENOSPC (stricter, even: a full disk may still overwrite a page in
// place). The server ignores SIGXFSZ, the signal that comes with EFBIG,
// whose default action would kill it.
//
// While it cannot write: creates, updates and bookings answer 503 with
// Retry-After and an OperationOutcome that says why, and nothing of them is
// stored; reads and searches keep working, and their audit records, which
// cannot be stored either, wait in memory (never dropped). When the limit
// is lifted, the same writes succeed, the waiting audit records are stored
// (each read done during the outage is found in the trail by its request
// id), and after a clean stop `signpost check` and SQLite's
// integrity_check find nothing.
//
// The limit is lowered after the server has started and been seeded,
// rather than given at exec: the server must write its keys and schema
// first. The kernel applies it the same way to a process it was given to
// at start.
func TestDiskFull(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data)
	u := &upgradeClient{t: t, base: p.base + "/fhir"}
	for _, who := range [][]string{
		{"--client", "provider", "--org", "RH8", "--role", "provider", "--scope", "system/*.cruds"},
		{"--client", "provider", "--org", "RH8", "--role", "auditor", "--scope", "user/AuditEvent.rs"},
	} {
		out, err := exec.Command(bin, append([]string{"token", "--data", data}, who...)...).Output()
		if err != nil {
			t.Fatalf("signpost token %q: %v", who, err)
		}
		u.tokens = append(u.tokens, strings.TrimSpace(string(out)))
	}
	start := time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	seed := []string{
		`{"resourceType":"Organization","id":"org-1","name":"Harbour Hospitals","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RH8"}]}`,
		`{"resourceType":"HealthcareService","id":"hs-1","name":"Cardiology","providedBy":{"reference":"Organization/org-1"}}`,
		`{"resourceType":"Schedule","id":"sched-1","actor":[{"reference":"HealthcareService/hs-1"}]}`,
		`{"resourceType":"Patient","id":"pat-1","name":[{"family":"Jones"}],"birthDate":"1960-01-01","managingOrganization":{"reference":"Organization/org-1"}}`,
	}
	for i := range 3 {
		s := start.Add(time.Duration(i) * 15 * time.Minute)
		seed = append(seed, fmt.Sprintf(`{"resourceType":"Slot","id":"slot-%d","status":"free","schedule":{"reference":"Schedule/sched-1"},"start":%q,"end":%q}`,
			i, s.Format(time.RFC3339), s.Add(15*time.Minute).Format(time.RFC3339)))
	}
	for _, r := range seed {
		var head struct{ ResourceType, ID string }
		json.Unmarshal([]byte(r), &head)
		if st, body, _ := u.as(0, "PUT", head.ResourceType+"/"+head.ID, r, nil); st != 201 {
			t.Fatalf("seeding %s/%s: %d %s", head.ResourceType, head.ID, st, body)
		}
	}
	writes := []struct {
		name, method, path, body string
		status                   int // once writes resume
	}{
		{"create", "POST", "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"while-full"}],"name":[{"family":"Full"}],"managingOrganization":{"reference":"Organization/org-1"}}`, 201},
		{"update", "PUT", "Patient/pat-1", `{"resourceType":"Patient","id":"pat-1","name":[{"family":"Jones-Full"}],"birthDate":"1960-01-01","managingOrganization":{"reference":"Organization/org-1"}}`, 200},
		{"booking", "POST", "Appointment", `{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/slot-0"}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}`, 201},
		{"transaction", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","name":[{"family":"InBundle"}],"managingOrganization":{"reference":"Organization/org-1"}},"request":{"method":"POST","url":"Patient"}}]}`, 200},
	}

	var old unix.Rlimit
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 0, Max: unix.RLIM_INFINITY}, &old); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	for _, w := range writes {
		st, body, h := u.as(0, w.method, w.path, w.body, nil)
		if st != 503 || h.Get("Retry-After") == "" || !bytes.Contains(body, []byte(`"resourceType":"OperationOutcome"`)) ||
			!bytes.Contains(body, []byte("full or not writable")) {
			t.Errorf("%s with no room to write: %d Retry-After %q: %s", w.name, st, h.Get("Retry-After"), body)
		}
	}
	// Reads and searches go on; their audit records wait.
	var readIDs []string
	for i, path := range []string{"Patient/pat-1", "Slot?schedule=Schedule/sched-1&status=free", "Patient?name=Full", "HealthcareService/hs-1"} {
		id := fmt.Sprintf("diskfull-read-%d-%d", i, time.Now().UnixNano())
		readIDs = append(readIDs, id)
		st, body, _ := u.as(0, "GET", path, "", map[string]string{"X-Request-Id": id})
		if st != 200 {
			t.Errorf("GET %s with no room to write: %d %s", path, st, body)
		}
		if path == "Patient/pat-1" && !bytes.Contains(body, []byte(`"family":"Jones"`)) {
			t.Errorf("GET %s: %s", path, body)
		}
		if strings.HasPrefix(path, "Slot?") && bytes.Count(body, []byte(`"resourceType":"Slot"`)) != 3 {
			t.Errorf("GET %s: want 3 free slots: %s", path, body)
		}
		if strings.HasPrefix(path, "Patient?") && bytes.Contains(body, []byte(`"resourceType":"Patient"`)) {
			t.Errorf("GET %s: a create answered 503 was stored: %s", path, body)
		}
	}
	waitLog(t, p, "audit: storing records failed; kept in memory", 10*time.Second)

	// Room again: the same writes succeed, the audit records are stored.
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &old, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	for _, w := range writes {
		if st, body, _ := u.as(0, w.method, w.path, w.body, nil); st != w.status {
			t.Errorf("%s once there is room again: %d %s", w.name, st, body)
		}
	}
	if st, body, _ := u.as(0, "GET", "Slot/slot-0", "", nil); st != 200 || !bytes.Contains(body, []byte(`"status":"busy"`)) {
		t.Errorf("slot-0 after the booking: %d %s", st, body)
	}
	waitAudited(t, u, readIDs, 20*time.Second)

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("signpost exited with %d after SIGTERM", code)
	}
	if out, err := exec.Command(bin, "check", "--data", data).CombinedOutput(); err != nil {
		t.Errorf("signpost check: %v\n%s", err, out)
	}
	checkIntegrity(t, data)
}

// TestReadOnlyDataDirectory: a data directory on a read-only mount. A
// mount cannot be made read-only under a running server by an operator
// (the kernel refuses while files are open for writing: EBUSY); the kernel
// itself does it after I/O errors, and then the store's writes fail with
// EROFS or SQLITE_IOERR/READONLY, which the store answers 503 like a full
// disk (store/sqlite: TestStorageFailuresAreUnavailable). What an operator
// can meet is a server started on a read-only directory: it must refuse
// to start, saying so, rather than serve half; and once the directory is
// writable again it starts with everything intact. Needs mount(2) (root
// with CAP_SYS_ADMIN): skipped otherwise.
func TestReadOnlyDataDirectory(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	mnt := t.TempDir()
	p := startSignpost(t, bin, data, "--open")
	if st, body := call(t, "PUT", p.base+"/fhir/Patient/pat-1", map[string]any{"resourceType": "Patient", "id": "pat-1", "name": []any{map[string]any{"family": "Jones"}}}); st != 201 {
		t.Fatalf("seeding: %d %s", st, body)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("signpost exited with %d after SIGTERM", code)
	}
	if err := unix.Mount(data, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount (needs CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, 0) })
	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot remount read-only: %v", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "probe"), nil, 0o600); err == nil {
		t.Fatal("the read-only mount took a write")
	}
	cmd := exec.Command(bin, "serve", "--open", "--addr", freeAddr(t), "--data", mnt)
	cmd.Env = withoutSignpostEnv(os.Environ())
	out, err := runWithin(cmd, 30*time.Second)
	if err == nil || !bytes.Contains(out, []byte("cannot be written")) || !bytes.Contains(out, []byte(mnt)) {
		t.Errorf("serve on a read-only data directory: %v\n%s", err, out)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	p = startSignpost(t, bin, data, "--open")
	if st, body := call(t, "GET", p.base+"/fhir/Patient/pat-1", nil); st != 200 || !bytes.Contains(body, []byte("Jones")) {
		t.Errorf("pat-1 once writable again: %d %s", st, body)
	}
}

// runWithin runs cmd, killing it after d, and returns its output.
func runWithin(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(out.String()), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return []byte(out.String()), fmt.Errorf("still running after %v: it served", d)
	}
}

// waitLog waits until the server's log holds s.
func waitLog(t *testing.T, p *process, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log %q within %v", s, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAudited waits until the audit trail names every request id.
func waitAudited(t *testing.T, u *upgradeClient, ids []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, body, _ := u.as(1, "GET", "AuditEvent?_count=1000", "", nil)
		missing := 0
		for _, id := range ids {
			if !bytes.Contains(body, []byte("request "+id)) {
				missing++
			}
		}
		if st == 200 && missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d of %d reads done while the disk was full are not in the audit trail (status %d)", d, missing, len(ids), st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
