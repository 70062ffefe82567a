package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/store/sqlite"
)

// upgradeFixtures are data directories written by earlier releases
// (testdata/upgrade, README.md there): each must open and serve under this
// one. A change to the stored format ships a migration and a fixture
// written before it (docs/operations.md, "Upgrades").
var upgradeFixtures = []string{"data-75fbda3.tar.gz"}

// upgradeManifest holds the ids the server assigned while the fixture was
// made (make-fixture.sh).
type upgradeManifest struct {
	ServiceRequest, UBRN, Task                                   string
	ReferralAppointment, CancelledAppointment, BookedAppointment string
	Practitioner                                                 string
}

// TestUpgradeFromEarlierRelease opens each upgrade fixture (a copy) under
// this release, with authorisation on as the fixture was written, and
// checks that every version of every resource the old release stored
// reads back as stored (vread; a deleted version is gone, 410), each
// resource's _history is as long as before, a list of searches finds the
// ids it found, the audit trail is there, an Idempotency-Key stored by the
// old release still replays its answer, the old release's keys still sign
// tokens, `signpost check` and SQLite's integrity_check are clean, and
// writes work afterwards: an update continues the version numbers, a new
// referral gets a UBRN and a Task, bookings make their slots busy.
func TestUpgradeFromEarlierRelease(t *testing.T) {
	bin := buildSignpost(t)
	for _, name := range upgradeFixtures {
		t.Run(strings.TrimSuffix(name, ".tar.gz"), func(t *testing.T) {
			dir := t.TempDir()
			untarGz(t, filepath.Join("testdata", "upgrade", name), dir)
			data := filepath.Join(dir, "data")
			var m upgradeManifest
			raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &m); err != nil || m.ServiceRequest == "" || m.UBRN == "" || m.Task == "" {
				t.Fatalf("manifest %s: %v", raw, err)
			}
			stored, audits := storedVersions(t, data)
			oldAudits := fixtureAuditIDs(t, data)
			// Idempotency-Keys are kept for 24 hours from their write; the
			// fixture's are older. Move their expiry on, as if the test ran
			// within a day of the fixture, so that their replay is checked.
			n := execSQL(t, data, "UPDATE records SET expires = ? WHERE kind = 'idempotency'", time.Now().Add(time.Hour).UnixMicro())
			if n != 2 {
				t.Fatalf("the fixture holds %d idempotency records, want 2", n)
			}

			p := startSignpost(t, bin, data)
			u := &upgradeClient{t: t, base: p.base + "/fhir"}
			for _, who := range [][]string{
				{"--client", "provider", "--org", "RH8", "--role", "provider", "--scope", "system/*.cruds"},
				{"--client", "gp-system", "--org", "B81001", "--role", "referrer", "--scope", "system/*.cruds"},
				{"--client", "provider", "--org", "RH8", "--role", "auditor", "--scope", "user/AuditEvent.rs"},
				{"--client", "call-centre", "--role", "call-centre", "--scope", "user/*.rs"},
			} {
				out, err := exec.Command(bin, append([]string{"token", "--data", data}, who...)...).Output()
				if err != nil {
					t.Fatalf("signpost token %q on the upgraded data: %v", who, err)
				}
				u.tokens = append(u.tokens, strings.TrimSpace(string(out)))
			}
			checkUpgradedVersions(t, u, stored)
			found := u.ids("AuditEvent?_count=1000", 2)
			if got := len(found); got < audits {
				t.Errorf("the audit trail holds %d AuditEvents, the old release stored %d", got, audits)
			}
			// Every one of them, copied into the audit database at the
			// first start (docs/audit.md), and found there by search.
			for _, id := range oldAudits {
				if !slices.Contains(found, id) {
					t.Errorf("AuditEvent/%s of the old release is not found by a search of the audit trail", id)
				}
			}
			checkUpgradedSearches(t, u, m)
			checkUpgradedWrites(t, u, m)
			p.signal(t, syscall.SIGTERM)
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("signpost exited with %d after SIGTERM", code)
			}
			if out, err := exec.Command(bin, "check", "--data", data).CombinedOutput(); err != nil {
				t.Errorf("signpost check after the upgrade: %v\n%s", err, out)
			}
			checkIntegrity(t, data)
			checkPairRows(t, data)
			// Each of the old release's AuditEvents is in the audit
			// database once (the mover's copy), and still in the main store.
			copies := auditVersions(t, auditDB(data))
			for _, id := range oldAudits {
				if copies[id] != 1 {
					t.Errorf("AuditEvent/%s has %d versions in the audit database, want 1", id, copies[id])
				}
			}
			if left := auditVersions(t, filepath.Join(data, sqlite.FileName)); len(left) < len(oldAudits) {
				t.Errorf("%d AuditEvents left in the main store, want the old release's %d kept", len(left), len(oldAudits))
			}
		})
	}
}

// checkPairRows checks that every pair index row (store/sqlite idx_pair)
// of the upgraded data repeats its resource's current version and
// history row, which searches answered from those rows alone return.
func checkPairRows(t *testing.T, data string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, stale int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE r.rid IS NULL OR r.deleted OR p.version != r.version OR p.seq != r.seq)
		FROM idx_pair p LEFT JOIN resources r ON r.rid = p.rid`).Scan(&rows, &stale); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || stale > 0 {
		t.Errorf("after the upgrade, %d of %d pair index rows are not their resource's current version", stale, rows)
	}
}

// fixtureAuditIDs returns the ids of the fixture's AuditEvents.
func fixtureAuditIDs(t *testing.T, data string) []string {
	t.Helper()
	var out []string
	for id := range auditVersions(t, filepath.Join(data, sqlite.FileName)) {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// auditVersions counts the versions of each AuditEvent in the SQLite
// database file db.
func auditVersions(t *testing.T, db string) map[string]int {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query("SELECT id, count(*) FROM history WHERE type = 'AuditEvent' GROUP BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedVersion is one version of a resource as the old release stored it.
type storedVersion struct {
	typ, id string
	version int64
	deleted bool
	body    []byte
}

// storedVersions reads, from the fixture's file before this release opens
// it, every version of every resource but the audit trail's, and counts
// the AuditEvents. It reads the fixture's own (old) tables: the fixture
// never changes.
func storedVersions(t *testing.T, data string) ([]storedVersion, int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT type, id, version, deleted, coalesce(body, '') FROM history ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedVersion
	audits := 0
	for rows.Next() {
		var v storedVersion
		if err := rows.Scan(&v.typ, &v.id, &v.version, &v.deleted, &v.body); err != nil {
			t.Fatal(err)
		}
		if v.typ == "AuditEvent" {
			audits++
			continue
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 40 || audits == 0 {
		t.Fatalf("the fixture holds %d versions and %d AuditEvents: not the dataset make-fixture.sh writes", len(out), audits)
	}
	return out, audits
}

// upgradeClient calls the upgraded server with the first of its tokens
// that may see what it asks for (the provider, then the referring GP
// practice, then the auditor): each sees its own organisation's records.
type upgradeClient struct {
	t      *testing.T
	base   string
	tokens []string
}

// do makes a request with each token in turn until one is answered other
// than 403 or 404 (or, for a write, with the first only: use as).
func (u *upgradeClient) do(method, path, body string, headers map[string]string) (int, []byte, http.Header) {
	u.t.Helper()
	var st int
	var out []byte
	var h http.Header
	for _, tok := range u.tokens {
		hs := map[string]string{"Authorization": "Bearer " + tok}
		for k, v := range headers {
			hs[k] = v
		}
		st, out, h = request(u.t, method, u.base+"/"+path, body, hs)
		if method != "GET" || (st != 403 && st != 404) {
			break
		}
	}
	return st, out, h
}

// as makes a request with token i only.
func (u *upgradeClient) as(i int, method, path, body string, headers map[string]string) (int, []byte, http.Header) {
	u.t.Helper()
	hs := map[string]string{"Authorization": "Bearer " + u.tokens[i]}
	for k, v := range headers {
		hs[k] = v
	}
	return request(u.t, method, u.base+"/"+path, body, hs)
}

// ids returns the ids of a search's or history's entries (a delete's
// entry counts as ""), following next links, with token i (-1: the first
// token answered 200).
func (u *upgradeClient) ids(path string, i int) []string {
	u.t.Helper()
	var ids []string
	for path != "" {
		var st int
		var body []byte
		if i < 0 {
			st, body, _ = u.do("GET", path, "", nil)
		} else {
			st, body, _ = u.as(i, "GET", path, "", nil)
		}
		if st != 200 {
			u.t.Fatalf("GET %s: %d %s", path, st, body)
		}
		var bundle struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct{ ID string }
				Search   struct{ Mode string }
			}
		}
		if err := json.Unmarshal(body, &bundle); err != nil {
			u.t.Fatalf("GET %s: %v", path, err)
		}
		path = ""
		for _, l := range bundle.Link {
			if l.Relation == "next" {
				nu, err := url.Parse(l.URL)
				if err != nil {
					u.t.Fatal(err)
				}
				path = strings.TrimPrefix(nu.RequestURI(), "/fhir/")
			}
		}
		for _, e := range bundle.Entry {
			if e.Search.Mode != "include" {
				ids = append(ids, e.Resource.ID)
			}
		}
	}
	return ids
}

func checkUpgradedVersions(t *testing.T, u *upgradeClient, stored []storedVersion) {
	t.Helper()
	latest := map[string]storedVersion{}
	for _, v := range stored {
		key := v.typ + "/" + v.id
		path := fmt.Sprintf("%s/_history/%d", key, v.version)
		st, body, _ := u.do("GET", path, "", nil)
		switch {
		case v.deleted && st != 410:
			t.Errorf("GET %s (a delete): status %d, want 410: %s", path, st, body)
		case !v.deleted && st != 200:
			t.Errorf("GET %s: status %d, want 200: %s", path, st, body)
		case !v.deleted && !sameContent(withoutWaitingTime(body), withoutWaitingTime(v.body)):
			t.Errorf("GET %s: reads\n%s\nthe old release stored\n%s", path, body, v.body)
		}
		if l, ok := latest[key]; !ok || v.version > l.version {
			latest[key] = v
		}
	}
	for key, v := range latest {
		st, body, _ := u.do("GET", key, "", nil)
		if v.deleted && st != 410 || !v.deleted && (st != 200 || !sameContent(withoutWaitingTime(body), withoutWaitingTime(v.body))) {
			t.Errorf("GET %s: status %d %s; the old release's last version %d (deleted %v)", key, st, body, v.version, v.deleted)
		}
		// The old release kept each service's waiting time inside it; this
		// one keeps it as a derived value, served with the current version
		// only, which directory.Adopt computes once for a store written
		// before (the old copies are never served).
		if v.typ == "HealthcareService" && !bytes.Contains(body, []byte(`"url":"https://signpost.example/fhir/StructureDefinition/waiting-time"`)) {
			t.Errorf("GET %s: no waiting time adopted: %s", key, body)
		}
		if got := len(u.ids(key+"/_history", -1)); got != int(v.version) {
			t.Errorf("GET %s/_history: %d entries, want %d", key, got, v.version)
		}
	}
}

// withoutWaitingTime drops a service's waiting-time extension.
func withoutWaitingTime(body []byte) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	exts, _ := m["extension"].([]any)
	exts = slices.DeleteFunc(exts, func(e any) bool {
		x, _ := e.(map[string]any)
		return x["url"] == "https://signpost.example/fhir/StructureDefinition/waiting-time"
	})
	if len(exts) == 0 {
		delete(m, "extension")
	} else {
		m["extension"] = exts
	}
	out, _ := json.Marshal(m)
	return out
}

func checkUpgradedSearches(t *testing.T, u *upgradeClient, m upgradeManifest) {
	t.Helper()
	for _, s := range []struct {
		query string
		token int // 0 the provider, 1 the GP practice
		ids   []string
	}{
		{"Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018", 0, []string{"pat-1"}},
		{"Patient?family=Jones-Smyth", 0, []string{"pat-1"}},
		{"Patient?family=Jones", 0, []string{"pat-1"}},
		{"Patient?family=Gone", 0, nil},
		{"Patient?name=Patel", 0, []string{"pat-2"}},
		{"Patient?birthdate=lt1960", 0, []string{"pat-1"}},
		{"Organization?identifier=https://fhir.nhs.uk/Id/ods-organization-code|RH8", 0, []string{"org-1"}},
		{"HealthcareService?specialty=http://snomed.info/sct|394579002", 0, []string{"hs-1"}},
		{"HealthcareService?name=Dermatology", 0, []string{"hs-2"}},
		{"HealthcareService?organization=Organization/org-1", 0, []string{"hs-1", "hs-2"}},
		{"Slot?schedule=Schedule/sched-1&status=free", 0, []string{"slot-2", "slot-3"}},
		{"Slot?status=busy", 0, []string{"slot-1", "slot-5"}},
		{"Slot?schedule=Schedule/sched-1&start=ge2027-03-01T09:25:00Z", 0, []string{"slot-3"}},
		// The free-slot search as the mixed workload sends it, answered
		// from the pair rows alone (their version and seq columns, which
		// the fixture's lack, are added and filled when it opens), a page
		// of one at a time.
		{"Slot?schedule=Schedule/sched-1&status=free&start=ge2027-01-01&_include=Slot:schedule&_count=1", 0, []string{"slot-2", "slot-3"}},
		{"Slot?schedule=Schedule/sched-2&status=busy&start=ge2027-01-01", 0, []string{"slot-5"}},
		{"Appointment?status=booked", 0, []string{m.ReferralAppointment, m.BookedAppointment}},
		{"Appointment?slot=Slot/slot-2", 0, []string{m.CancelledAppointment}},
		{"Appointment?patient=Patient/pat-1", 0, []string{m.ReferralAppointment}},
		{"ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|" + m.UBRN, 1, []string{m.ServiceRequest}},
		{"Task?focus=ServiceRequest/" + m.ServiceRequest, 1, []string{m.Task}},
		{"Practitioner?identifier=C1234567", 0, []string{m.Practitioner}},
		{"PractitionerRole?practitioner=Practitioner/prac-1", 0, []string{"role-1"}},
	} {
		got := u.ids(s.query, s.token)
		slices.Sort(got)
		want := slices.Clone(s.ids)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("GET %s: ids %q, want %q", s.query, got, want)
		}
	}
}

func checkUpgradedWrites(t *testing.T, u *upgradeClient, m upgradeManifest) {
	t.Helper()
	// The old release's Idempotency-Key replays its answer (the body
	// byte for byte as make-fixture.sh sent it, by the same client).
	replay := `{"resourceType":"Appointment","status":"booked","basedOn":[{"reference":"ServiceRequest/` + m.ServiceRequest +
		`"}],"slot":[{"reference":"Slot/slot-1"}],"participant":[{"actor":{"reference":"Patient/pat-1"},"status":"accepted"}]}`
	st, body, h := u.as(1, "POST", "Appointment", replay, map[string]string{"Idempotency-Key": "upgrade-appt-1"})
	if st != 201 || h.Get("Idempotent-Replayed") != "true" || !bytes.Contains(body, []byte(m.ReferralAppointment)) {
		t.Errorf("replaying the fixture's Idempotency-Key: %d replayed=%q: %s", st, h.Get("Idempotent-Replayed"), body)
	}
	// An update continues the version numbers.
	st, body, _ = u.as(0, "PUT", "Patient/pat-1", `{"resourceType":"Patient","id":"pat-1","birthDate":"1947-02-02","name":[{"family":"Jones-Upgraded"}]}`, nil)
	if st != 200 || !bytes.Contains(body, []byte(`"versionId":"4"`)) {
		t.Errorf("updating pat-1: %d %s", st, body)
	}
	// A deleted resource can be created again, as version 3.
	st, body, _ = u.as(0, "PUT", "Patient/pat-3", `{"resourceType":"Patient","id":"pat-3","name":[{"family":"Back"}]}`, nil)
	if st != 201 || !bytes.Contains(body, []byte(`"versionId":"3"`)) {
		t.Errorf("re-creating pat-3: %d %s", st, body)
	}
	// A new referral gets a UBRN other than the old one, and its Task.
	st, body, _ = u.as(1, "POST", "ServiceRequest", `{"resourceType":"ServiceRequest","status":"active","intent":"order","priority":"routine",`+
		`"category":[{"coding":[{"system":"https://signpost.example/fhir/CodeSystem/referral-source","code":"gp"}]}],`+
		`"performerType":{"coding":[{"system":"http://snomed.info/sct","code":"394582007"}]},"subject":{"reference":"Patient/pat-2"},"requester":{"reference":"Organization/gp-1"}}`, nil)
	var sr struct {
		ID         string
		Identifier []struct{ System, Value string }
	}
	json.Unmarshal(body, &sr)
	if st != 201 || len(sr.Identifier) == 0 || sr.Identifier[0].Value == m.UBRN {
		t.Errorf("a new referral: %d %s", st, body)
	} else if ids := u.ids("Task?focus=ServiceRequest/"+sr.ID, 1); len(ids) != 1 {
		t.Errorf("the new referral has %d Tasks, want 1", len(ids))
	}
	// A booking of a new slot (in the future whenever the test runs) and
	// of the slot freed by the old release's cancellation.
	start := time.Now().UTC().Truncate(time.Hour).Add(72 * time.Hour)
	slot := fmt.Sprintf(`{"resourceType":"Slot","id":"slot-new","status":"free","schedule":{"reference":"Schedule/sched-1"},"start":%q,"end":%q}`,
		start.Format(time.RFC3339), start.Add(15*time.Minute).Format(time.RFC3339))
	if st, body, _ := u.as(0, "PUT", "Slot/slot-new", slot, nil); st != 201 {
		t.Fatalf("a new slot: %d %s", st, body)
	}
	for _, s := range []string{"slot-new", "slot-2"} {
		st, body, _ := u.as(0, "POST", "Appointment", `{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/`+s+`"}],`+
			`"participant":[{"actor":{"reference":"Patient/pat-2"},"status":"accepted"}]}`, nil)
		if st != 201 {
			t.Errorf("booking %s: %d %s", s, st, body)
		}
	}
	if got := u.ids("Slot?schedule=Schedule/sched-1&status=free", 0); !slices.Equal(got, []string{"slot-3"}) {
		t.Errorf("free slots of sched-1 after booking: %q, want [slot-3]", got)
	}
}

// request makes a request with a FHIR JSON body (when not empty) and
// headers, and returns the status, body and headers of the answer.
func request(t *testing.T, method, u, body string, headers map[string]string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp.StatusCode, out, resp.Header
}

// untarGz unpacks a .tar.gz of plain files and directories into dir.
func untarGz(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(path, filepath.Clean(dir)+string(os.PathSeparator)) {
			t.Fatalf("%s: entry %q leaves the directory", file, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o700)
		case tar.TypeReg:
			var out *os.File
			if out, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
				_, err = io.Copy(out, tr)
				err = errors.Join(err, out.Close())
			}
		default:
			t.Fatalf("%s: entry %q is neither a file nor a directory", file, h.Name)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// execSQL runs one statement on the data file of a stopped server and
// returns the rows it changed.
func execSQL(t *testing.T, data, stmt string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(stmt, args...)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	n, _ := res.RowsAffected()
	return n
}
