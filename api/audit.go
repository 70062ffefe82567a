package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/repo"
	"github.com/signpost-fhir/signpost/store"
)

// The audit trail: an AuditEvent for every read, search, write, operation
// and refused request. Writes are recorded by the authorisation rule in the
// write's own transaction; everything else is buffered and stored within
// AuditFlush (and on Close).

const auditType = "AuditEvent"

// Code systems of the AuditEvents Signpost records.
const (
	auditTypeSystem    = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	interactionSystem  = "http://hl7.org/fhir/restful-interaction"
	sourceTypeSystem   = "http://terminology.hl7.org/CodeSystem/security-source-type"
	objectRoleSystem   = "http://terminology.hl7.org/CodeSystem/object-role"
	resourceTypeSystem = "http://hl7.org/fhir/resource-types"
	clientIDSystem     = "https://signpost.example/fhir/Id/oauth-client"
)

// requestInfo collects, during one request, what the audit record needs.
type requestInfo struct {
	mu        sync.Mutex
	principal *auth.Principal
	entities  []auditEntity
	denied    bool   // an authorisation check refused something
	target    string // the resource type in the URL ("" for the base: batch, transaction, system)
	writes    int    // writes audited in their transaction
}

type auditEntity struct{ typ, id, query string }

type infoKey struct{}

func infoOf(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

// maxAuditEntities bounds what one record lists (a search with includes
// over many types, a large batch).
const maxAuditEntities = 50

// noteAccess records that the request touched typ/id or searched typ with
// query.
func noteAccess(ctx context.Context, typ, id, query string) {
	info := infoOf(ctx)
	if info == nil {
		return
	}
	info.mu.Lock()
	defer info.mu.Unlock()
	e := auditEntity{typ, id, query}
	for _, x := range info.entities {
		if x == e {
			return
		}
	}
	if len(info.entities) < maxAuditEntities {
		info.entities = append(info.entities, e)
	}
}

// auditRequests records every FHIR request that was not wholly audited in
// a write transaction: reads, searches, operations without writes, and
// every failure, including refused tokens.
func (s *Server) auditRequests(c *gin.Context) {
	path := c.Request.URL.Path
	if s.cfg.Security.Open || c.Request.Method == http.MethodOptions || !strings.HasPrefix(path, "/fhir") ||
		path == "/fhir/metadata" || path == smartPath {
		c.Next()
		return
	}
	info := &requestInfo{}
	if rest, ok := strings.CutPrefix(path, "/fhir/"); ok {
		info.target, _, _ = strings.Cut(rest, "/")
	}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), infoKey{}, info))
	c.Next()
	status := c.Writer.Status()
	info.mu.Lock()
	defer info.mu.Unlock()
	if status < 400 && info.writes > 0 && !info.denied {
		return // every write was recorded in its transaction
	}
	if status < 400 && info.denied {
		status = http.StatusForbidden // a batch with entries refused
	}
	subtype, action := interactionOf(c)
	ev := s.auditEvent(info.principal, subtype, action, status, info.entities)
	ev["agent"] = append(ev["agent"].([]map[string]any), map[string]any{
		"type":      concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "DEV", "device"),
		"who":       map[string]any{"display": "network client"},
		"requestor": false,
		"network":   map[string]any{"address": c.ClientIP(), "type": "2"},
	})
	if id := c.GetString(ctxRequestID); id != "" {
		ev["source"].(map[string]any)["site"] = "request " + id
	}
	s.audits.add(ev)
}

// interactionOf names the FHIR interaction of a request for the record.
func interactionOf(c *gin.Context) (subtype, action string) {
	path := strings.TrimPrefix(c.Request.URL.Path, "/fhir")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	last := ""
	if len(parts) > 0 {
		last = parts[len(parts)-1]
	}
	switch {
	case strings.HasPrefix(last, "$"):
		return "operation", "E"
	case c.Request.Method == http.MethodPost && len(parts) == 0:
		return "transaction", "E"
	case c.Request.Method == http.MethodPost && last == "_search":
		return "search-type", "E"
	case c.Request.Method == http.MethodPost:
		return "create", "C"
	case c.Request.Method == http.MethodPut:
		return "update", "U"
	case c.Request.Method == http.MethodPatch:
		return "patch", "U"
	case c.Request.Method == http.MethodDelete:
		return "delete", "D"
	case len(parts) == 4 && parts[2] == "_history":
		return "vread", "R"
	case last == "_history" && len(parts) == 3:
		return "history-instance", "R"
	case last == "_history" && len(parts) == 2:
		return "history-type", "R"
	case last == "_history":
		return "history-system", "R"
	case len(parts) == 2:
		return "read", "R"
	case len(parts) == 1:
		return "search-type", "E"
	}
	return "search-system", "E"
}

func concept(system, code, display string) map[string]any {
	return map[string]any{"coding": []map[string]string{{"system": system, "code": code, "display": display}}}
}

// auditEvent builds an AuditEvent's members.
func (s *Server) auditEvent(p *auth.Principal, subtype, action string, status int, entities []auditEntity) map[string]any {
	outcome, desc := "0", ""
	switch {
	case status >= 500:
		outcome, desc = "8", http.StatusText(status)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		outcome, desc = "4", "access refused: "+http.StatusText(status)
	case status >= 400:
		outcome, desc = "4", http.StatusText(status)
	}
	ev := map[string]any{
		"resourceType": auditType,
		"type":         concept(auditTypeSystem, "rest", "RESTful Operation"),
		"subtype":      []map[string]string{{"system": interactionSystem, "code": subtype}},
		"action":       action,
		"recorded":     s.now().UTC().Format(fhir.InstantFormat),
		"outcome":      outcome,
		"source": map[string]any{
			"observer": map[string]any{"display": "Signpost " + s.cfg.BaseURL},
			"type":     []map[string]string{{"system": sourceTypeSystem, "code": "4", "display": "Application Server"}},
		},
	}
	if desc != "" {
		ev["outcomeDesc"] = desc
	}
	agents := []map[string]any{}
	if p != nil {
		user := map[string]any{
			"who":       map[string]any{"identifier": map[string]string{"system": clientIDSystem, "value": p.ClientID}, "display": p.Subject},
			"altId":     p.Subject,
			"requestor": true,
		}
		if p.Role != "" {
			user["role"] = []map[string]any{{"text": string(p.Role)}}
		}
		if p.FHIRUser != "" {
			user["name"] = p.FHIRUser
		}
		agents = append(agents, user)
		if p.Organization != "" {
			agents = append(agents, map[string]any{
				"type":      map[string]any{"text": "organisation"},
				"who":       map[string]any{"identifier": map[string]string{"system": odsSystem, "value": p.Organization}},
				"requestor": false,
			})
		}
	} else {
		agents = append(agents, map[string]any{"who": map[string]any{"display": "unauthenticated"}, "requestor": true})
	}
	ev["agent"] = agents
	var ents []map[string]any
	for _, e := range entities {
		ent := map[string]any{}
		switch {
		case e.id != "" && e.typ != "":
			ent["what"] = map[string]string{"reference": e.typ + "/" + e.id}
		case e.typ != "":
			ent["type"] = map[string]string{"system": resourceTypeSystem, "code": e.typ}
		}
		if e.query != "" {
			if strings.HasPrefix(e.query, "$") {
				ent["description"] = e.query
			} else {
				ent["query"] = base64.StdEncoding.EncodeToString([]byte(e.query))
			}
		}
		if len(ent) > 0 {
			ents = append(ents, ent)
		}
	}
	if p != nil && p.Patient != "" && p.Patient != unresolvedPatient {
		ents = append(ents, map[string]any{
			"what": map[string]string{"reference": "Patient/" + p.Patient},
			"role": map[string]string{"system": objectRoleSystem, "code": "1", "display": "Patient"},
		})
	}
	if len(ents) > 0 {
		ev["entity"] = ents
	}
	return ev
}

// auditWrite records a write in its own transaction.
func (s *Server) auditWrite(ctx context.Context, tx *repo.Tx, p *auth.Principal, c *repo.Change, in auth.Interaction) error {
	subtype, action := "update", "U"
	switch in {
	case auth.Create:
		subtype, action = "create", "C"
	case auth.Delete:
		subtype, action = "delete", "D"
	}
	ents := []auditEntity{{typ: c.Type, id: c.ID}}
	if op := operationOf(ctx); op != nil {
		ents = append(ents, auditEntity{query: "$" + op.Name})
	}
	ev := s.auditEvent(p, subtype, action, http.StatusOK, ents)
	if err := s.putAudit(ctx, tx, ev); err != nil {
		return err
	}
	if info := infoOf(ctx); info != nil {
		info.mu.Lock()
		info.writes++
		info.mu.Unlock()
	}
	return nil
}

// putAudit stores a new AuditEvent in tx. Its id is fresh, so it goes
// straight to the store: there is no current version to read and no
// domain rule owns the audit trail.
func (s *Server) putAudit(ctx context.Context, tx *repo.Tx, ev map[string]any) error {
	obj, err := eventObject(ev)
	if err != nil {
		return err
	}
	id := repo.NewID()
	body, err := fhir.Stamp(obj, id, 1, tx.Now())
	if err != nil {
		return err
	}
	index, err := s.search.Extract(auditType, body)
	if err != nil {
		return err
	}
	return tx.Tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: auditType, ID: id, Version: 1, LastUpdated: tx.Now(), JSON: body}, Index: index})
}

func eventObject(ev map[string]any) (*fhir.Object, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return fhir.ParseObject(b)
}

// auditor buffers audit records and stores them in batches.
type auditor struct {
	s     *Server
	every time.Duration

	mu      sync.Mutex
	pending []map[string]any
	closed  bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// maxPendingAudits makes the buffer flush early under load.
const maxPendingAudits = 2000

func newAuditor(s *Server, every time.Duration) *auditor {
	a := &auditor{s: s, every: every, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *auditor) add(ev map[string]any) {
	a.mu.Lock()
	closed := a.closed
	if !closed {
		a.pending = append(a.pending, ev)
	}
	full := len(a.pending) >= maxPendingAudits
	a.mu.Unlock()
	if closed {
		a.store([]map[string]any{ev}) // after Close: store it at once
		return
	}
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

func (a *auditor) run() {
	defer close(a.done)
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-a.kick:
		case <-a.stop:
			a.flush()
			return
		}
		a.flush()
	}
}

// flush stores the pending records in one transaction.
func (a *auditor) flush() {
	a.mu.Lock()
	batch := a.pending
	a.pending = nil
	a.mu.Unlock()
	a.store(batch)
}

func (a *auditor) store(batch []map[string]any) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(serverContext(context.Background()), 30*time.Second)
	defer cancel()
	err := a.s.repo.Update(ctx, func(ctx context.Context, tx *repo.Tx) error {
		for _, ev := range batch {
			if err := a.s.putAudit(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		a.s.log.Error("audit: storing records failed", "records", len(batch), "error", err)
	}
}

// Close stores the pending records and stops the flusher.
func (a *auditor) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done
}

// Flush stores the audit records buffered so far (reads, searches,
// refusals); tests and shutdown call it.
func (s *Server) Flush() {
	if s.audits != nil {
		s.audits.flush()
	}
}

// Close stores the buffered audit records and stops the flusher: call it
// on graceful shutdown, after the HTTP server has stopped and before the
// store closes.
func (s *Server) Close() {
	if s.audits != nil {
		s.audits.Close()
	}
}
