package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// mainAndAudits returns the main store and the audit database of a.
func mainAndAudits(t *testing.T, a *app.App) (store.Store, store.Store) {
	t.Helper()
	r, ok := a.Store.(*audit.Routed)
	if !ok || a.Audits == nil {
		t.Fatalf("the server has no audit database of its own (store %T)", a.Store)
	}
	return r.Main, a.Audits
}

// auditsIn returns the AuditEvents of st whose JSON contains all of want.
func auditsIn(t *testing.T, st store.Reader, want ...string) []*fhir.Resource {
	t.Helper()
	page, err := st.Search(context.Background(), &search.Query{Type: "AuditEvent", Count: 100000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*fhir.Resource
next:
	for _, r := range page.Resources {
		for _, w := range want {
			if !bytes.Contains(r.JSON, []byte(w)) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// queuedIn returns the records in st's audit queue (store.AuditQueue)
// whose JSON contains all of want: the records of writes not yet moved
// into the audit database.
func queuedIn(t *testing.T, st store.Store, want ...string) []*fhir.Resource {
	t.Helper()
	q, ok := st.(store.AuditQueue)
	if !ok {
		t.Fatalf("the main store %T has no audit queue", st)
	}
	recs, err := q.QueuedAudits(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*fhir.Resource
next:
	for _, r := range recs {
		for _, w := range want {
			if !bytes.Contains(r.Resource.JSON, []byte(w)) {
				continue next
			}
		}
		out = append(out, r.Resource)
	}
	return out
}

// searchTotal runs a search through the API and returns its total.
func searchTotal(t *testing.T, s *secureServer, tok, path string) int {
	t.Helper()
	got := s.must(request{path: path, header: bearer(tok)}, 200)
	var b struct{ Total *int }
	if err := json.Unmarshal(got.body, &b); err != nil || b.Total == nil {
		t.Fatalf("GET %s: no total: %s", path, got.body)
	}
	return *b.Total
}

// TestAuditDatabase: a read's and a search's records are stored in the
// audit database (by its own writer), never in the main store; a write's
// record is in the main store's audit queue at once, made in the write's
// transaction (not as a resource there), found by a search of the audit
// trail at once (which has the mover move it first) and in the audit
// database after the next flush, exactly once, and no longer queued; each
// is found through the API by an auditor.
func TestAuditDatabase(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	mainSt, audits := mainAndAudits(t, s.app)
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"})
	cc := s.mint(t, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	auditor := s.mint(t, devserver.TokenOptions{Scope: "user/AuditEvent.rs", Client: devserver.ClientAuditor})
	for _, r := range []struct {
		name, tok, method, path, body string
		status                        int
		write                         bool
		// mark finds the record; search finds it through the API
		// (with "{id}" the id of what the request created).
		mark   func(id string) string
		search string
	}{
		{name: "read", tok: patA, path: "Appointment/appt-a", status: 200,
			mark: func(string) string { return `"Appointment/appt-a"` }, search: "AuditEvent?entity=Appointment/appt-a&subtype=read"},
		{name: "search", tok: cc, path: "Slot?status=busy&schedule=sched-2", status: 200,
			mark:   func(string) string { return base64Of("schedule=sched-2&status=busy") },
			search: "AuditEvent?entity-type=Slot&subtype=search-type"},
		{name: "write", tok: cc, method: "POST", path: "Appointment", status: 201, write: true,
			body: `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/pat-b"},"status":"needs-action"}]}`,
			mark: func(id string) string { return `"Appointment/` + id + `"` }, search: "AuditEvent?entity=Appointment/{id}&action=C"},
	} {
		t.Run(r.name, func(t *testing.T) {
			got := s.must(request{method: r.method, path: r.path, body: r.body, header: bearer(r.tok)}, r.status)
			id, _ := decode(t, got.body)["id"].(string)
			mark := r.mark(id)
			if r.write {
				if n := len(queuedIn(t, mainSt, mark)); n != 1 {
					t.Fatalf("before a flush, %d records of the write in the main store's queue, want 1 (made in its transaction)", n)
				}
				if n := len(auditsIn(t, mainSt, mark)); n != 0 {
					t.Fatalf("%d records of the write stored as resources of the main store, want none (queued)", n)
				}
				// A search of the audit trail finds it at once: the
				// mover copies what the audit database lacks first.
				if n := searchTotal(t, s, auditor, strings.ReplaceAll(r.search, "{id}", id)+"&_total=accurate"); n != 1 {
					t.Fatalf("before a flush, %s finds %d, want 1", r.search, n)
				}
			}
			s.app.API.Flush()
			inMain, inAudits := len(auditsIn(t, mainSt, mark))+len(queuedIn(t, mainSt, mark)), len(auditsIn(t, audits, mark))
			switch {
			case inAudits != 1:
				t.Errorf("%d records in the audit database, want 1", inAudits)
			case inMain != 0:
				t.Errorf("%d records of a %s left in the main store (queued or stored), want none", inMain, r.name)
			}
			s.app.API.Flush() // a second flush copies nothing again
			if n := len(auditsIn(t, audits, mark)); n != 1 {
				t.Errorf("after another flush, %d records in the audit database, want 1", n)
			}
			if n := searchTotal(t, s, auditor, strings.ReplaceAll(r.search, "{id}", id)+"&_total=accurate"); n < 1 {
				t.Errorf("%s finds nothing", r.search)
			}
		})
	}
}

func base64Of(s string) string {
	b, _ := json.Marshal([]byte(s)) // a JSON string of the base64 form
	return strings.Trim(string(b), `"`)
}

// TestAuditDatabaseAccess: the AuditEvents in the audit database are
// reached by every kind of read (by id, version, history, search, chains
// in both directions, _revinclude) with the same authorisation as any
// resource: the audit scopes and role, and VisibleOnly for what a search
// includes. The rows that expect a refusal or nothing would fail if the
// routed reads skipped the access rules; those that expect records, if
// they did not reach the audit database.
func TestAuditDatabaseAccess(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	_, audits := mainAndAudits(t, s.app)
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"})
	s.must(request{path: "Patient/pat-a", header: bearer(patA)}, 200) // a read record naming pat-a
	s.app.API.Flush()
	recs := auditsIn(t, audits, `"Patient/pat-a"`, `"code":"read"`)
	if len(recs) == 0 {
		t.Fatal("no record of the read in the audit database")
	}
	id := recs[0].ID
	auditor := s.mint(t, devserver.TokenOptions{Scope: "user/AuditEvent.rs", Client: devserver.ClientAuditor})
	auditorPatients := s.mint(t, devserver.TokenOptions{Scope: "system/AuditEvent.rs system/Patient.rs", Client: devserver.ClientAuditor, Role: auth.RoleAuditor})
	wildcard := s.mint(t, devserver.TokenOptions{Scope: "user/*.rs", Client: devserver.ClientCallCentre})
	callCentreAudit := s.mint(t, devserver.TokenOptions{Scope: "user/AuditEvent.rs", Client: devserver.ClientCallCentre})
	pid := url.QueryEscape("pat-a")
	for _, r := range []struct {
		name, tok, path string
		status          int
		has, lacks      string // in the body
	}{
		{"auditor reads it", auditor, "AuditEvent/" + id, 200, `"id":"` + id + `"`, ""},
		{"auditor reads its version", auditor, "AuditEvent/" + id + "/_history/1", 200, `"id":"` + id + `"`, ""},
		{"auditor reads its history", auditor, "AuditEvent/" + id + "/_history", 200, `"id":"` + id + `"`, ""},
		{"auditor searches by id", auditor, "AuditEvent?_id=" + id, 200, `"id":"` + id + `"`, ""},
		{"auditor chains into the main store", auditorPatients, "AuditEvent?patient._id=" + pid + "&_id=" + id, 200, `"id":"` + id + `"`, ""},
		{"auditor's chain matching nothing", auditorPatients, "AuditEvent?patient._id=nobody&_id=" + id, 200, "", `"id":"` + id + `"`},
		{"_has from the main store into the audit database", auditorPatients, "Patient?_has:AuditEvent:patient:_id=" + id, 200, `"id":"pat-a"`, ""},
		{"_revinclude of the audit database", auditorPatients, "Patient?_id=pat-a&_revinclude=AuditEvent:patient", 200, `"id":"` + id + `"`, ""},
		{"wildcard scope cannot read it", wildcard, "AuditEvent/" + id, 403, "", id},
		{"wildcard scope cannot read its history", wildcard, "AuditEvent/" + id + "/_history", 403, "", id},
		{"wildcard scope cannot search it", wildcard, "AuditEvent?_id=" + id, 403, "", id},
		{"chain from the audit trail needs the audit scope", wildcard, "AuditEvent?patient._id=" + pid, 403, "", id},
		{"wildcard scope does not _revinclude it", wildcard, "Patient?_id=pat-a&_revinclude=AuditEvent:patient", 200, `"id":"pat-a"`, id},
		{"audit scope without the auditor role", callCentreAudit, "AuditEvent/" + id, 403, "", id},
		{"the patient cannot read it", patA, "AuditEvent/" + id, 403, "", id},
		{"no token", "", "AuditEvent/" + id, 401, "", id},
	} {
		t.Run(r.name, func(t *testing.T) {
			var h map[string]string
			if r.tok != "" {
				h = bearer(r.tok)
			}
			got := s.do(request{path: r.path, header: h})
			if got.status != r.status {
				t.Fatalf("status %d, want %d: %s", got.status, r.status, got.body)
			}
			if r.has != "" && !bytes.Contains(got.body, []byte(r.has)) {
				t.Errorf("the answer lacks %s: %.1000s", r.has, got.body)
			}
			if r.lacks != "" && bytes.Contains(got.body, []byte(r.lacks)) {
				t.Errorf("the answer has %s: %.1000s", r.lacks, got.body)
			}
		})
	}
}

// TestBookingDoesNotWaitForAuditFlush holds the audit database's writer
// (a transaction that does not end) while a flush of read records waits
// for it: a booking is still made and answered, and the flush ends once
// the writer is free, with the read's record stored.
func TestBookingDoesNotWaitForAuditFlush(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	mainSt, audits := mainAndAudits(t, s.app)
	seedFreeSlot(t, s.app, mainSt)
	cc := s.mint(t, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"})

	held, release := make(chan struct{}), make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		writerDone <- audits.Update(context.Background(), func(context.Context, store.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	s.must(request{path: "Appointment/appt-a", header: bearer(patA)}, 200)
	flushed := make(chan struct{})
	go func() { s.app.API.Flush(); close(flushed) }()

	got := s.must(request{method: "POST", path: "Appointment", header: bearer(cc), body: `{"resourceType":"Appointment","status":"booked",` +
		`"start":"2030-01-09T09:00:00Z","end":"2030-01-09T09:30:00Z","slot":[{"reference":"Slot/slot-free"}],` +
		`"participant":[{"actor":{"reference":"Patient/pat-b"},"status":"accepted"}]}`}, 201)
	id, _ := decode(t, got.body)["id"].(string)
	select {
	case <-flushed:
		t.Fatal("the flush ended while the audit database's writer was held: the test held nothing")
	default:
	}
	if n := len(queuedIn(t, mainSt, `"Appointment/`+id+`"`, `"action":"C"`)); n != 1 {
		t.Errorf("%d records of the booking in the main store's queue, want 1", n)
	}
	close(release)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	select {
	case <-flushed:
	case <-time.After(30 * time.Second):
		t.Fatal("the flush did not end once the writer was free")
	}
	if n := len(auditsIn(t, audits, `"Appointment/appt-a"`, `"code":"read"`)); n != 1 {
		t.Errorf("%d records of the read in the audit database after the flush, want 1", n)
	}
	if n := len(auditsIn(t, audits, `"Appointment/`+id+`"`, `"action":"C"`)); n != 1 {
		t.Errorf("%d records of the booking in the audit database after the flush, want 1", n)
	}
}

// seedFreeSlot writes a free Slot (Slot/slot-free, on sched-1) into st.
func seedFreeSlot(t *testing.T, a *app.App, st store.Store) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	err := st.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		obj, err := fhir.ParseObject([]byte(`{"resourceType":"Slot","schedule":{"reference":"Schedule/sched-1"},"status":"free",` +
			`"start":"2030-01-09T09:00:00Z","end":"2030-01-09T09:30:00Z"}`))
		if err != nil {
			return err
		}
		body, err := fhir.Stamp(obj, "slot-free", 1, now)
		if err != nil {
			return err
		}
		idx, err := a.Search.Extract("Slot", body)
		if err != nil {
			return err
		}
		return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Slot", ID: "slot-free", Version: 1, LastUpdated: now, JSON: body}, Index: idx})
	})
	if err != nil {
		t.Fatal(fmt.Errorf("seeding a free slot: %w", err))
	}
}
