package sqlite

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkAuditLayout measures what storing a read's AuditEvent costs
// in layouts from a purpose-built append-only log to this store's own
// (docs/PERFORMANCE.md, "What a purpose-built audit log would give"): the
// tables alone, without the store's code. Each iteration stores 1,000
// records of 1.2 KB, each read of one of 12,000 Slots at random, in
// multi-row INSERTs of one transaction, with the store's pragmas and a
// passive checkpoint after the commit, as the audit database's writer and
// checkpointer do; it reports the process's CPU per record.
func BenchmarkAuditLayout(b *testing.B) {
	logTable := []string{
		`CREATE TABLE audit_log (rid INTEGER PRIMARY KEY, id TEXT NOT NULL, recorded INTEGER NOT NULL, body BLOB NOT NULL)`,
		`CREATE UNIQUE INDEX audit_log_id ON audit_log (id)`,
		`CREATE INDEX audit_log_recorded ON audit_log (recorded)`,
	}
	keyTable := []string{`CREATE TABLE audit_key (k TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (k, rid)) WITHOUT ROWID`}
	keyRid := []string{`CREATE INDEX audit_key_rid ON audit_key (rid)`}
	// The store's own tables (schema.go, index.go), those a read's record uses.
	current := []string{
		`CREATE TABLE resources (rid INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated INTEGER NOT NULL, deleted INTEGER NOT NULL, seq INTEGER NOT NULL, digest BLOB, UNIQUE (type, id))`,
		`CREATE INDEX resources_type_updated ON resources (type, deleted, updated, id)`,
		`CREATE TABLE history (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated INTEGER NOT NULL, deleted INTEGER NOT NULL, body BLOB)`,
		`CREATE UNIQUE INDEX history_version ON history (type, id, version)`,
		`CREATE INDEX history_type ON history (type, seq)`,
	}
	idxTables := []string{
		`CREATE TABLE idx_token (pid INTEGER NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL, text TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (pid, value, system, rid, text)) WITHOUT ROWID`,
		`CREATE TABLE idx_date (pid INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (pid, low, high, rid)) WITHOUT ROWID`,
		`CREATE TABLE idx_ref (pid INTEGER NOT NULL, ref_type TEXT NOT NULL, ref_id TEXT NOT NULL, url TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (pid, ref_id, ref_type, url, rid)) WITHOUT ROWID`,
	}
	idxRid := []string{`CREATE INDEX idx_token_rid ON idx_token (rid, pid)`, `CREATE INDEX idx_date_rid ON idx_date (rid, pid)`, `CREATE INDEX idx_ref_rid ON idx_ref (rid, pid)`}
	for _, v := range []struct {
		name   string
		schema [][]string
		keys   int  // values in audit_key per record (0: the idx_ tables)
		split  bool // resources and history rather than audit_log
	}{
		{"log+5keys", [][]string{logTable, keyTable}, 5, false},
		{"log+9keys", [][]string{logTable, keyTable}, 9, false},
		{"log+9keys+rid", [][]string{logTable, keyTable, keyRid}, 9, false},
		{"current+9keys", [][]string{current, keyTable}, 9, true},
		{"log+idx", [][]string{logTable, idxTables}, 0, false},
		{"log+idx+rid", [][]string{logTable, idxTables, idxRid}, 0, false},
		{"current+idx+rid", [][]string{current, idxTables, idxRid}, 0, true},
	} {
		b.Run(v.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "audit.db")
			pragmas := []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(FULL)", "temp_store(MEMORY)"}
			db, err := sql.Open(driver.name, driver.dsn(path, append(pragmas, "wal_autocheckpoint(0)", cacheSize(cacheKiB)))+"&_txlock=immediate")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			cdb, err := sql.Open(driver.name, driver.dsn(path, append(pragmas, cacheSize(readCacheKiB))))
			if err != nil {
				b.Fatal(err)
			}
			defer cdb.Close()
			for _, part := range v.schema {
				for _, q := range part {
					if _, err := db.Exec(q); err != nil {
						b.Fatal(err)
					}
				}
			}
			var tables []*layoutTable
			table := func(verb, name, cols string) *layoutTable {
				t := newLayoutTable(b, db, verb, name, cols)
				tables = append(tables, t)
				return t
			}
			var logT, resT, histT, keyT, tokT, dateT, refT *layoutTable
			if v.split {
				resT = table("INSERT", "resources", "rid, type, id, version, updated, deleted, seq, digest")
				histT = table("INSERT", "history", "seq, type, id, version, updated, deleted, body")
			} else {
				logT = table("INSERT", "audit_log", "rid, id, recorded, body")
			}
			if v.keys > 0 {
				keyT = table("INSERT OR IGNORE", "audit_key", "k, rid")
			} else {
				tokT = table("INSERT OR IGNORE", "idx_token", "pid, system, value, text, rid")
				dateT = table("INSERT OR IGNORE", "idx_date", "pid, low, high, rid")
				refT = table("INSERT OR IGNORE", "idx_ref", "pid, ref_type, ref_id, url, rid")
			}
			const batch = 1000
			rng := rand.New(rand.NewPCG(1, 2))
			digest := make([]byte, 120)
			var rid int64
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				now := time.Now()
				for i := range batch {
					rid++
					id := uuid.Must(uuid.NewV7()).String()
					slot := fmt.Sprint(rng.IntN(12000))
					rec := now.Add(time.Duration(i) * time.Microsecond).UnixMicro()
					body := []byte(fmt.Sprintf(layoutRecord, id, "Slot/"+slot))
					if v.split {
						resT.add(rid, "AuditEvent", id, 1, rec, false, rid, digest)
						histT.add(rid, "AuditEvent", id, 1, rec, false, body)
					} else {
						logT.add(rid, id, rec, body)
					}
					if v.keys == 0 { // the rows the store writes for a read's record (pids as numbers)
						tokT.add(int64(3), "", "R", "", rid)
						tokT.add(int64(4), "https://signpost.example/fhir/Id/oauth-client", "call-centre", "", rid)
						tokT.add(int64(4), "https://fhir.nhs.uk/Id/ods-organization-code", "RBENCH", "", rid)
						tokT.add(int64(5), "", "sub1", "", rid)
						tokT.add(int64(8), "", "0", "", rid)
						tokT.add(int64(9), "http://hl7.org/fhir/restful-interaction", "read", "", rid)
						tokT.add(int64(10), "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "restful operation", rid)
						dateT.add(int64(6), rec, rec+1000, rid)
						refT.add(int64(7), "Slot", slot, "", rid)
						continue
					}
					keys := []string{"entity|Slot/" + slot, "agent|https://signpost.example/fhir/Id/oauth-client|call-centre",
						"agent|https://fhir.nhs.uk/Id/ods-organization-code|RBENCH", "altid|sub1", "date|" + fmt.Sprint(rec/1000),
						"type|rest", "subtype|read", "action|R", "outcome|0"}
					for _, k := range keys[:v.keys] {
						keyT.add(k, rid)
					}
				}
				before := processCPU()
				b.StartTimer()
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				for _, t := range tables {
					t.flush(b, tx)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				if _, err := cdb.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += processCPU() - before
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch)/1e3, "µs-cpu/record")
		})
	}
}

// layoutTable buffers one table's rows and inserts them 100 at a time.
type layoutTable struct {
	st   *sql.Stmt
	n    int
	args []any
}

const layoutRows = 100

func newLayoutTable(b *testing.B, db *sql.DB, verb, name, cols string) *layoutTable {
	n := strings.Count(cols, ",") + 1
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
	st, err := db.Prepare(verb + " INTO " + name + " (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", layoutRows), ","))
	if err != nil {
		b.Fatal(err)
	}
	return &layoutTable{st: st, n: n}
}

func (t *layoutTable) add(values ...any) { t.args = append(t.args, values...) }

func (t *layoutTable) flush(b *testing.B, tx *sql.Tx) {
	for len(t.args) > 0 { // 1,000 records make whole statements of every table
		if _, err := tx.Stmt(t.st).Exec(t.args[:layoutRows*t.n]...); err != nil {
			b.Fatal(err)
		}
		t.args = t.args[layoutRows*t.n:]
	}
}

// layoutRecord is a read's AuditEvent as the audit trail writes it (id and
// the entity read to fill in).
const layoutRecord = `{"resourceType":"AuditEvent","id":%q,"meta":{"versionId":"1","lastUpdated":"2026-12-07T03:00:00.000Z"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read"}],"action":"R","recorded":"2026-12-07T03:00:00.000Z","outcome":"0","agent":[{"role":[{"text":"call-centre"}],"who":{"identifier":{"system":"https://signpost.example/fhir/Id/oauth-client","value":"call-centre"},"display":"sub1"},"altId":"sub1","name":"Practitioner/x","requestor":true},{"type":{"text":"organisation"},"who":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RBENCH"}},"requestor":false},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"DEV","display":"device"}]},"who":{"display":"network client"},"requestor":false,"network":{"address":"127.0.0.1","type":"2"}}],"source":{"site":"request 0190-abcd-ef","observer":{"display":"Signpost http://x/fhir"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},"entity":[{"what":{"reference":%q}}]}`
