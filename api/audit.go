package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The audit trail: an AuditEvent for every read, search, write, operation
// and refused request. Writes are recorded by the authorisation rule in the
// write's own transaction; everything else is buffered and stored within
// AuditFlush (and on Close).

const auditType = "AuditEvent"

// Code systems of the AuditEvents Signpost records.
const (
	auditTypeSystem     = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	interactionSystem   = "http://hl7.org/fhir/restful-interaction"
	sourceTypeSystem    = "http://terminology.hl7.org/CodeSystem/security-source-type"
	objectRoleSystem    = "http://terminology.hl7.org/CodeSystem/object-role"
	resourceTypeSystem  = "http://hl7.org/fhir/resource-types"
	clientIDSystem      = "https://signpost.example/fhir/Id/oauth-client"
	participationSystem = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
)

// requestInfo collects, during one request, what the audit record needs.
type requestInfo struct {
	mu        sync.Mutex
	principal *auth.Principal
	entities  []auditEntity
	denied    bool // an authorisation check refused something
	writes    int  // writes audited in their transaction
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
	// A large response reaches the client before the handler returns: the
	// request counts as in flight until its record is buffered, so that a
	// Flush after the response still finds it.
	s.audits.begin()
	var ev *auditEvent
	defer func() { s.audits.end(ev) }()
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
	ev = s.newAuditEvent(info.principal, subtype, action, status, info.entities)
	ev.Agent = append(ev.Agent, auditAgent{
		Type:      &codeableConcept{Coding: []coding{{System: participationSystem, Code: "DEV", Display: "device"}}},
		Who:       reference{Display: "network client"},
		Requestor: false,
		Network:   &auditNetwork{Address: c.ClientIP(), Type: "2"},
	})
	if id := c.GetString(ctxRequestID); id != "" {
		ev.Source.Site = "request " + id
	}
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

// The AuditEvent as Signpost writes it, members in the order of the R4
// definition; marshalled straight into the stored bytes.
type (
	auditEvent struct {
		ResourceType string        `json:"resourceType"`
		ID           string        `json:"id,omitempty"`
		Meta         *auditMeta    `json:"meta,omitempty"`
		Type         coding        `json:"type"`
		Subtype      []coding      `json:"subtype"`
		Action       string        `json:"action"`
		Recorded     string        `json:"recorded"`
		Outcome      string        `json:"outcome"`
		OutcomeDesc  string        `json:"outcomeDesc,omitempty"`
		Agent        []auditAgent  `json:"agent"`
		Source       auditSource   `json:"source"`
		Entity       []auditObject `json:"entity,omitempty"`
	}
	auditMeta struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
	}
	coding struct {
		System  string `json:"system,omitempty"`
		Code    string `json:"code,omitempty"`
		Display string `json:"display,omitempty"`
	}
	codeableConcept struct {
		Coding []coding `json:"coding,omitempty"`
		Text   string   `json:"text,omitempty"`
	}
	identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	reference struct {
		Reference  string      `json:"reference,omitempty"`
		Identifier *identifier `json:"identifier,omitempty"`
		Display    string      `json:"display,omitempty"`
	}
	auditAgent struct {
		Type      *codeableConcept  `json:"type,omitempty"`
		Role      []codeableConcept `json:"role,omitempty"`
		Who       reference         `json:"who"`
		AltID     string            `json:"altId,omitempty"`
		Name      string            `json:"name,omitempty"`
		Requestor bool              `json:"requestor"`
		Network   *auditNetwork     `json:"network,omitempty"`
	}
	auditNetwork struct {
		Address string `json:"address"`
		Type    string `json:"type"`
	}
	auditSource struct {
		Site     string    `json:"site,omitempty"`
		Observer reference `json:"observer"`
		Type     []coding  `json:"type"`
	}
	auditObject struct {
		What        *reference `json:"what,omitempty"`
		Type        *coding    `json:"type,omitempty"`
		Role        *coding    `json:"role,omitempty"`
		Description string     `json:"description,omitempty"`
		Query       string     `json:"query,omitempty"`
	}
)

// newAuditEvent builds the record of one interaction.
func (s *Server) newAuditEvent(p *auth.Principal, subtype, action string, status int, entities []auditEntity) *auditEvent {
	ev := &auditEvent{
		ResourceType: auditType,
		Type:         coding{System: auditTypeSystem, Code: "rest", Display: "RESTful Operation"},
		Subtype:      []coding{{System: interactionSystem, Code: subtype}},
		Action:       action,
		Recorded:     s.now().UTC().Format(fhir.InstantFormat),
		Outcome:      "0",
		Source: auditSource{
			Observer: reference{Display: "Signpost " + s.cfg.BaseURL},
			Type:     []coding{{System: sourceTypeSystem, Code: "4", Display: "Application Server"}},
		},
	}
	switch {
	case status >= 500:
		ev.Outcome, ev.OutcomeDesc = "8", http.StatusText(status)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		ev.Outcome, ev.OutcomeDesc = "4", "access refused: "+http.StatusText(status)
	case status >= 400:
		ev.Outcome, ev.OutcomeDesc = "4", http.StatusText(status)
	}
	if p != nil {
		user := auditAgent{
			Who:       reference{Identifier: &identifier{System: clientIDSystem, Value: p.ClientID}, Display: p.Subject},
			AltID:     p.Subject,
			Name:      p.FHIRUser,
			Requestor: true,
		}
		if p.Role != "" {
			user.Role = []codeableConcept{{Text: string(p.Role)}}
		}
		ev.Agent = append(ev.Agent, user)
		if p.Organization != "" {
			ev.Agent = append(ev.Agent, auditAgent{
				Type: &codeableConcept{Text: "organisation"},
				Who:  reference{Identifier: &identifier{System: odsSystem, Value: p.Organization}},
			})
		}
	} else {
		ev.Agent = append(ev.Agent, auditAgent{Who: reference{Display: "unauthenticated"}, Requestor: true})
	}
	for _, e := range entities {
		var ent auditObject
		switch {
		case e.id != "" && e.typ != "":
			ent.What = &reference{Reference: e.typ + "/" + e.id}
		case e.typ != "":
			ent.Type = &coding{System: resourceTypeSystem, Code: e.typ}
		}
		if strings.HasPrefix(e.query, "$") {
			ent.Description = e.query
		} else if e.query != "" {
			ent.Query = base64.StdEncoding.EncodeToString([]byte(e.query))
		}
		if ent != (auditObject{}) {
			ev.Entity = append(ev.Entity, ent)
		}
	}
	if p != nil && p.Patient != "" && p.Patient != unresolvedPatient {
		ev.Entity = append(ev.Entity, auditObject{
			What: &reference{Reference: "Patient/" + p.Patient},
			Role: &coding{System: objectRoleSystem, Code: "1", Display: "Patient"},
		})
	}
	return ev
}

// auditWrite records a write in its own transaction.
func (s *Server) auditWrite(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change, in auth.Interaction) error {
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
	w, err := s.auditWriteOf(s.newAuditEvent(p, subtype, action, http.StatusOK, ents), tx.Now())
	if err != nil {
		return err
	}
	if err := tx.Tx.Put(ctx, w); err != nil {
		return err
	}
	if info := infoOf(ctx); info != nil {
		info.mu.Lock()
		info.writes++
		info.mu.Unlock()
	}
	return nil
}

// auditIndexed are the AuditEvent search parameters the audit trail is
// indexed for: what auditors search by (when, who, what, which
// interaction, how it ended, whose data). The others (address,
// agent-name, agent-role, entity-name, entity-role, policy, site, and the
// meta parameters) are not indexed, to keep the cost of recording every
// request low; searching by them is refused (auditSearchable).
var auditIndexed = map[string]bool{
	"_id": true, "_lastUpdated": true,
	"action": true, "agent": true, "altid": true, "date": true, "entity": true, "entity-type": true,
	"outcome": true, "patient": true, "source": true, "subtype": true, "type": true,
}

// auditWriteOf turns ev into a store write of a new AuditEvent: its id is
// fresh, so it goes straight to the store; there is no current version to
// read and no domain rule owns the audit trail. The bytes are marshalled
// once, id and meta included, and indexed for auditIndexed only.
func (s *Server) auditWriteOf(ev *auditEvent, now time.Time) (*store.Write, error) {
	id := write.NewID()
	ev.ID = id
	ev.Meta = &auditMeta{VersionID: "1", LastUpdated: now.UTC().Format(fhir.InstantFormat)}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	index, err := s.Index(auditType, body)
	if err != nil {
		return nil, err
	}
	return &store.Write{Resource: &fhir.Resource{Type: auditType, ID: id, Version: 1, LastUpdated: now, JSON: body}, Index: index}, nil
}

// Index returns the index entries the server stores for a resource of
// type typ: the registry's, except that the audit trail keeps only those
// of auditIndexed. A reindex (app) uses it to store what the writes did.
func (s *Server) Index(typ string, body []byte) ([]search.Entry, error) {
	entries, err := s.search.Extract(typ, body)
	if err != nil || typ != auditType {
		return entries, err
	}
	index := entries[:0]
	for _, e := range entries {
		param, _, _ := strings.Cut(e.Param, ":") // agent:identifier
		if auditIndexed[param] {
			index = append(index, e)
		}
	}
	return index, nil
}

// auditSearchable refuses a search that tests, sorts by or includes
// through an AuditEvent parameter the audit trail is not indexed for: it
// would silently find nothing.
func auditSearchable(q *search.Query) error {
	check := func(param string) error {
		name, _, _ := strings.Cut(param, ":")
		if auditIndexed[name] {
			return nil
		}
		return fhir.Errorf(fhir.Invalid, "not-supported", "", "the audit trail is not indexed for the AuditEvent search parameter %q; "+
			"it is searchable by %s", name, strings.Join(slices.Sorted(maps.Keys(auditIndexed)), ", ")).WithDetails("UNSUPPORTED_PARAMETER")
	}
	walk := func(typ string, x search.Expr) error { return search.VisitTree[error](x, auditWalker{typ, check}) }
	for _, x := range q.Filter {
		if err := walk(q.Type, x); err != nil {
			return err
		}
	}
	if q.Type == auditType {
		for _, k := range q.Sort {
			if err := check(k.Param); err != nil {
				return err
			}
		}
	}
	for _, in := range append(slices.Clip(q.Include), q.RevInclude...) {
		if in.Source == auditType && in.Param != "*" {
			if err := check(in.Param); err != nil {
				return err
			}
		}
	}
	return nil
}

// auditWalker checks, with check, every parameter of an AuditEvent that a
// search expression over typ tests, through chains and _has.
type auditWalker struct {
	typ   string
	check func(param string) error
}

func (w auditWalker) Leaf(x search.Leaf) error {
	if w.typ != auditType {
		return nil
	}
	return w.check(x.Parameter())
}

func (w auditWalker) Or(e search.Or) error {
	for _, y := range e {
		if err := search.VisitTree[error](y, w); err != nil {
			return err
		}
	}
	return nil
}

func (w auditWalker) Not(e search.Not) error { return search.VisitTree[error](e.Expr, w) }

func (w auditWalker) Chain(e search.Chain) error {
	if w.typ == auditType {
		if err := w.check(e.Param); err != nil {
			return err
		}
	}
	return search.VisitTree[error](e.Filter, auditWalker{e.Target, w.check})
}

func (w auditWalker) Has(e search.Has) error {
	if e.Type == auditType {
		if err := w.check(e.Param); err != nil {
			return err
		}
	}
	return search.VisitTree[error](e.Filter, auditWalker{e.Type, w.check})
}

// auditor buffers audit records and stores them in batches.
type auditor struct {
	s     *Server
	every time.Duration

	mu       sync.Mutex
	pending  []*auditEvent
	closed   bool
	inflight int        // requests whose record is not yet buffered
	idle     *sync.Cond // on mu: inflight fell to 0

	// storing is held while a batch is taken and stored, so that a Flush
	// returns only once every record buffered before it is in the store,
	// including a batch the flusher was storing at the time.
	storing sync.Mutex

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// maxPendingAudits makes the buffer flush early under load.
const maxPendingAudits = 2000

func newAuditor(s *Server, every time.Duration) *auditor {
	a := &auditor{s: s, every: every, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	a.idle = sync.NewCond(&a.mu)
	go a.run()
	return a
}

// begin counts a request in flight; end buffers its record (nil: none).
func (a *auditor) begin() {
	a.mu.Lock()
	a.inflight++
	a.mu.Unlock()
}

func (a *auditor) end(ev *auditEvent) {
	a.mu.Lock()
	a.inflight--
	if a.inflight == 0 {
		a.idle.Broadcast()
	}
	closed := a.closed
	if !closed && ev != nil {
		a.pending = append(a.pending, ev)
	}
	full := len(a.pending) >= maxPendingAudits
	a.mu.Unlock()
	if closed && ev != nil {
		a.store([]*auditEvent{ev}) // after Close: store it at once
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
	a.storing.Lock()
	defer a.storing.Unlock()
	a.mu.Lock()
	batch := a.pending
	a.pending = nil
	a.mu.Unlock()
	a.store(batch)
}

func (a *auditor) store(batch []*auditEvent) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(serverContext(context.Background()), 30*time.Second)
	defer cancel()
	err := a.s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		ws := make([]*store.Write, len(batch))
		for i, ev := range batch {
			w, err := a.s.auditWriteOf(ev, tx.Now())
			if err != nil {
				return err
			}
			ws[i] = w
		}
		return store.PutAll(ctx, tx.Tx, ws)
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

// Flush stores the audit records of every request answered so far
// (reads, searches, refusals), waiting for those still in flight; tests
// and shutdown call it.
func (s *Server) Flush() {
	if s.audits != nil {
		s.audits.mu.Lock()
		for s.audits.inflight > 0 {
			s.audits.idle.Wait()
		}
		s.audits.mu.Unlock()
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
