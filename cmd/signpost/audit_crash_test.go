package main

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// auditPath is the crash matrix's path of the audit trail, with
// authorisation and audit on: Patient creates (each audited in its
// transaction, in the main store, then copied into the audit database by
// the mover) and searches (audited by the trail's flushes into the audit
// database). After each kill: every acknowledged create has exactly one
// record in the audit database, and no other create has one (a kill
// between a write and the mover's copy loses nothing and duplicates
// nothing); every search whose record was stored before a kill is still
// there; the records are searchable through the API by an auditor.
type auditPath struct {
	createPath
	auditor string
	probes  []string // the keys of searches whose records were stored before a kill
	copied  int      // restarts that copied records of writes left behind by the kill
}

func (p *auditPath) tokens(t *testing.T, bin, data string, c *crashClient) {
	c.token = mintToken(t, bin, data, "--client", "call-centre", "--role", "call-centre", "--scope", "user/*.cruds")
	p.auditor = mintToken(t, bin, data, "--client", "provider", "--org", "RH8", "--role", "auditor", "--scope", "user/AuditEvent.rs")
}

func mintToken(t *testing.T, bin, data string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"token", "--data", data}, args...)...).Output()
	if err != nil {
		t.Fatalf("signpost token %q: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func (p *auditPath) write(c *crashClient, w, seq int, rng *rand.Rand) error {
	if seq%3 == 2 { // a search: its record waits for the trail's next flush
		_, err := c.expect(200, "GET", "/Patient?identifier="+url.QueryEscape(crashSystem+"|search-"+fmt.Sprint(w, seq)), "")
		return err
	}
	return p.createPath.write(c, w, seq, rng)
}

func (p *auditPath) verify(t *testing.T, c *crashClient, cycle int, data string) {
	p.createPath.verify(t, c, cycle, data)
	if strings.Contains(c.log.String(), "AuditEvents copied into the audit database") {
		p.copied++
	}
	recs := auditRecords(t, data)
	creates := 0
	for ref, n := range recs.creates {
		if strings.HasPrefix(ref, "Patient/") {
			creates += n
		}
	}
	for k, id := range p.createPath.l.acked {
		if n := recs.creates["Patient/"+id]; n != 1 {
			t.Fatalf("cycle %d: the create of Patient/%s (%s) has %d records in the audit database, want 1", cycle, id, k, n)
		}
	}
	if creates != len(p.createPath.l.acked) {
		t.Fatalf("cycle %d: %d records of Patient creates in the audit database, %d creates stored", cycle, creates, len(p.createPath.l.acked))
	}
	for _, k := range p.probes {
		if !recs.searched(k) {
			t.Fatalf("cycle %d: the record of the search %s, stored before a kill, is gone", cycle, k)
		}
	}
	// A search now, and its record once a flush stored it: the next
	// cycles' kills must not lose it.
	key := fmt.Sprintf("probe-%dx", cycle)
	if _, err := c.expect(200, "GET", "/Patient?identifier="+url.QueryEscape(crashSystem+"|"+key), ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !auditRecords(t, data).searched(key) {
		if time.Now().After(deadline) {
			t.Fatalf("cycle %d: the record of a search was not stored within 20 s", cycle)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.probes = append(p.probes, key)
	// And through the API, as an auditor sees them.
	for _, id := range p.createPath.l.acked {
		out, err := c.expect(200, "GET", "/AuditEvent?action=C&entity=Patient/"+id+"&_total=accurate", "", "Authorization", "Bearer "+p.auditor)
		if err != nil {
			t.Fatal(err)
		}
		var b struct{ Total int }
		json.Unmarshal(out, &b)
		if b.Total != 1 {
			t.Fatalf("cycle %d: AuditEvent?entity=Patient/%s finds %d, want 1: %s", cycle, id, b.Total, out)
		}
		break
	}
}

func (p *auditPath) final(t *testing.T, _ *crashClient, _ string) {
	if p.copied == 0 {
		t.Errorf("no kill left records of writes for the mover to copy after the restart: the path did not test it")
	}
}

// auditDB is the audit database's file in a data directory.
func auditDB(data string) string { return filepath.Join(data, app.AuditDir, sqlite.FileName) }

// storedAudits is what the audit database holds, read from its file.
type storedAudits struct {
	creates map[string]int // records of creates by entity reference
	queries []string       // the decoded queries of search records
}

func (s storedAudits) searched(key string) bool {
	for _, q := range s.queries {
		if strings.Contains(q, key) {
			return true
		}
	}
	return false
}

// auditRecords reads every AuditEvent of the audit database in data (read
// only, beside a running server).
func auditRecords(t *testing.T, data string) storedAudits {
	t.Helper()
	out := storedAudits{creates: map[string]int{}}
	if _, err := os.Stat(auditDB(data)); err != nil {
		t.Fatalf("no audit database: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+auditDB(data)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT h.body FROM resources r JOIN history h ON h.seq = r.seq WHERE r.type = 'AuditEvent'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Action string
			Entity []struct {
				What  struct{ Reference string }
				Query string
			}
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatal(err)
		}
		for _, e := range ev.Entity {
			if ev.Action == "C" && e.What.Reference != "" {
				out.creates[e.What.Reference]++
			}
			if q, err := base64.StdEncoding.DecodeString(e.Query); err == nil && len(q) > 0 {
				if u, err := url.QueryUnescape(string(q)); err == nil {
					out.queries = append(out.queries, u)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
