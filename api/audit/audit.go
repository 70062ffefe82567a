// Package audit keeps Signpost's audit trail: an AuditEvent for every
// read, search, write, operation and refused request. Writes are recorded
// by the access layer in the write's own transaction (Trail.RecordWrite);
// everything else is collected during the request (Note, Refused,
// Authenticated), recorded by the Trail's middleware when the request ends,
// buffered and stored within a flush interval (and on Close).
//
// With an audit database of its own (Config.Store, docs/audit.md), the
// buffered records are stored there by its own writer, never delaying the
// main store's writes; the records of writes, still made in the writes'
// transactions (in the main store's audit queue when it has one,
// store.AuditQueue), are moved there by the Mover at every flush and
// before every read of the trail, and the server reads every AuditEvent
// from there (Routed).
//
// The trail is indexed for the search parameters auditors use (Index,
// Searchable), to keep the cost of recording every request low.
package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Type is the resource type of the audit trail.
const Type = "AuditEvent"

const auditType = Type

// odsSystem is the identifier system of ODS organisation codes.
const odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

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

// Note records in the request's audit record that the request touched
// typ/id or searched typ with query (a "$name" query names an operation).
func Note(ctx context.Context, typ, id, query string) {
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

// Refused records that an authorisation check refused something in the
// request: its record is kept (as a refusal) even when the request
// succeeds otherwise (a batch with entries refused).
func Refused(ctx context.Context) {
	if info := infoOf(ctx); info != nil {
		info.mu.Lock()
		info.denied = true
		info.mu.Unlock()
	}
}

// Authenticated records the verified caller of the request.
func Authenticated(ctx context.Context, p *auth.Principal) {
	if info := infoOf(ctx); info != nil {
		info.mu.Lock()
		info.principal = p
		info.mu.Unlock()
	}
}

// Recording reports whether ctx is a request whose audit record is being
// collected.
func Recording(ctx context.Context) bool { return infoOf(ctx) != nil }

// Middleware records every FHIR request that was not wholly audited in a
// write transaction: reads, searches, operations without writes, and
// every failure, including refused tokens. It runs before authentication,
// so that refused tokens are recorded too.
func (t *Trail) Middleware(c *gin.Context) {
	path := c.Request.URL.Path
	if c.Request.Method == http.MethodOptions || !strings.HasPrefix(path, "/fhir") || slices.Contains(t.cfg.Unaudited, path) {
		c.Next()
		return
	}
	if t.overflowing() {
		// The records of the requests before could not be stored and no
		// more can be kept: refuse, rather than serve unaudited.
		t.refuse(c, fhir.Errorf(fhir.Unavailable, "transient", "",
			"the server cannot record requests in its audit trail now (its data directory is full or not writable); try again later"))
		return
	}
	if err := t.admit(c.Request.Context()); err != nil {
		t.refuse(c, err)
		return
	}
	info := &requestInfo{}
	// A large response reaches the client before the handler returns: the
	// request counts as in flight until its record is buffered, so that a
	// Flush after the response still finds it.
	t.begin()
	var ev *auditEvent
	defer func() { t.end(ev) }()
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
	ev = t.newAuditEvent(info.principal, subtype, action, status, info.entities)
	ev.Agent = append(ev.Agent, auditAgent{
		Type:      &codeableConcept{Coding: []coding{{System: participationSystem, Code: "DEV", Display: "device"}}},
		Who:       reference{Display: "network client"},
		Requestor: false,
		Network:   &auditNetwork{Address: c.ClientIP(), Type: "2"},
	})
	if id := t.requestID(c); id != "" {
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
func (t *Trail) newAuditEvent(p *auth.Principal, subtype, action string, status int, entities []auditEntity) *auditEvent {
	ev := &auditEvent{
		ResourceType: auditType,
		Type:         coding{System: auditTypeSystem, Code: "rest", Display: "RESTful Operation"},
		Subtype:      []coding{{System: interactionSystem, Code: subtype}},
		Action:       action,
		Recorded:     t.cfg.Now().UTC().Format(fhir.InstantFormat),
		Outcome:      "0",
		Source: auditSource{
			Observer: reference{Display: "Signpost " + t.cfg.BaseURL},
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
	if p != nil && p.Patient != "" && p.Patient != auth.UnresolvedPatient {
		ev.Entity = append(ev.Entity, auditObject{
			What: &reference{Reference: "Patient/" + p.Patient},
			Role: &coding{System: objectRoleSystem, Code: "1", Display: "Patient"},
		})
	}
	return ev
}

// RecordWrite records a write by p in its own transaction: the change c,
// which is the interaction in, made by operation op ("" outside one).
func (t *Trail) RecordWrite(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change, in auth.Interaction, op string) error {
	subtype, action := "update", "U"
	switch in {
	case auth.Create:
		subtype, action = "create", "C"
	case auth.Delete:
		subtype, action = "delete", "D"
	}
	ents := []auditEntity{{typ: c.Type, id: c.ID}}
	if op != "" {
		ents = append(ents, auditEntity{query: "$" + op})
	}
	ev := t.newAuditEvent(p, subtype, action, http.StatusOK, ents)
	if q, ok := t.queueOf(tx); ok {
		// Queued in the main store, indexed once, where the mover stores
		// it in the audit database.
		res, err := recordOf(ev, tx.Now())
		if err != nil {
			return err
		}
		if err := q.QueueAudit(ctx, res); err != nil {
			return err
		}
	} else {
		w, err := t.writeOf(ev, tx.Now())
		if err != nil {
			return err
		}
		if err := tx.Tx.Put(ctx, w); err != nil {
			return err
		}
		if m := t.cfg.Mover; m != nil && m.queued() != nil {
			tx.AfterEnd(func(committed bool) {
				if committed {
					m.storedResource()
				}
			})
		}
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
// request low; searching by them is refused (Searchable).
var auditIndexed = map[string]bool{
	"_id": true, "_lastUpdated": true,
	"action": true, "agent": true, "altid": true, "date": true, "entity": true, "entity-type": true,
	"outcome": true, "patient": true, "source": true, "subtype": true, "type": true,
}

// writeOf turns ev into a store write of a new AuditEvent: its id is
// fresh, so it goes straight to the store; there is no current version to
// read and no domain rule owns the audit trail. The bytes are marshalled
// once, id and meta included, and indexed for auditIndexed only.
func (t *Trail) writeOf(ev *auditEvent, now time.Time) (*store.Write, error) {
	res, err := recordOf(ev, now)
	if err != nil {
		return nil, err
	}
	index, err := Index(t.cfg.Search, auditType, res.JSON)
	if err != nil {
		return nil, err
	}
	return &store.Write{Resource: res, Index: index}, nil
}

// recordOf gives ev a fresh id and its meta, and returns it as a new
// AuditEvent resource, last updated at now.
func recordOf(ev *auditEvent, now time.Time) (*fhir.Resource, error) {
	id := write.NewID()
	ev.ID = id
	ev.Meta = &auditMeta{VersionID: "1", LastUpdated: now.UTC().Format(fhir.InstantFormat)}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return &fhir.Resource{Type: auditType, ID: id, Version: 1, LastUpdated: now, JSON: body}, nil
}

// queueOf returns the audit queue of a write's transaction, when the
// records of writes are moved into an audit database (Config.Mover) from
// the main store's queue (store.AuditQueue).
func (t *Trail) queueOf(tx *write.Tx) (store.AuditQueueTx, bool) {
	if t.cfg.Mover == nil || t.cfg.Mover.queued() == nil {
		return nil, false
	}
	q, ok := tx.Tx.(store.AuditQueueTx)
	return q, ok
}

// Extractor extracts the index entries of a resource (search.Registry).
type Extractor interface {
	Extract(resourceType string, json []byte) ([]search.Entry, error)
}

// paramsExtractor is an Extractor that evaluates only some parameters
// (search.Registry.ExtractParams).
type paramsExtractor interface {
	ExtractParams(resourceType string, body []byte, keep func(code string) bool) ([]search.Entry, error)
}

// Index returns the index entries the server stores for a resource of
// type typ: ex's, except that the audit trail keeps only those of
// auditIndexed. A reindex (app) uses it to store what the writes did.
func Index(ex Extractor, typ string, body []byte) ([]search.Entry, error) {
	if typ != auditType {
		return ex.Extract(typ, body)
	}
	var entries []search.Entry
	var err error
	if some, ok := ex.(paramsExtractor); ok {
		// Only the indexed parameters are evaluated.
		entries, err = some.ExtractParams(typ, body, func(code string) bool { return auditIndexed[code] })
	} else {
		entries, err = ex.Extract(typ, body)
	}
	if err != nil {
		return nil, err
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

// Searchable refuses a search that tests, sorts by or includes through an
// AuditEvent parameter the audit trail is not indexed for: it would
// silently find nothing.
func Searchable(q *search.Query) error {
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

// Config is what the audit trail needs.
type Config struct {
	// BaseURL names the server in each record (AuditEvent.source).
	BaseURL string
	// Writes stores the records, as the server's own writes.
	Writes *write.Path
	// Search extracts the records' index entries.
	Search Extractor
	Logger *slog.Logger
	// Now is the clock of the records (default time.Now).
	Now func() time.Time
	// Flush is how long read and search records may wait in memory before
	// being stored; default 500 ms.
	Flush time.Duration
	// RequestID returns the id of a request, named in its record.
	RequestID func(c *gin.Context) string
	// Unaudited lists the paths under /fhir whose requests are not
	// recorded (the CapabilityStatement, SMART discovery).
	Unaudited []string
	// Retain is how many records the trail keeps in memory while it
	// cannot store them (the data directory full or read-only), trying
	// again at every flush; default 100,000. Once that many wait, requests
	// that would be recorded are refused with 503 (through Fail) until the
	// records are stored: nothing is served unaudited.
	Retain int
	// Fail answers a refused request (the API's OperationOutcome).
	Fail func(*gin.Context, error)
	// Backlog bounds the records waiting to be stored while the store
	// takes them more slowly than requests arrive (a busy or slow disk);
	// default 20,000, a few megabytes. A request that finds that many
	// waiting waits for the trail to catch up, up to BacklogWait (default
	// 10 s), and is then refused with 503: the load slows to what the
	// trail can store, instead of the buffer growing without bound.
	Backlog     int
	BacklogWait time.Duration
	// Store, when set, is the audit database: read and search records
	// are stored there, by its own writer, rather than through Writes
	// (whose store then keeps only the records of writes, made in their
	// transactions: queued, when Mover's main store has an audit queue,
	// store.AuditQueue). Mover moves those into Store at every flush.
	Store store.Store
	Mover *Mover
}

// Trail buffers audit records and stores them in batches.
type Trail struct {
	cfg Config

	mu       sync.Mutex
	pending  []*auditEvent
	unstored int           // records a flush took from pending and has not stored yet
	drained  chan struct{} // closed, and replaced, whenever records are stored
	failing  bool          // the last attempt to store records failed
	overflow atomic.Bool   // failing, with Config.Retain records waiting: refuse audited requests
	closed   bool
	// moveFailing: the last Mover.Move failed (logged once).
	moveFailing bool
	inflight    int        // requests whose record is not yet buffered
	idle        *sync.Cond // on mu: inflight fell to 0

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

// defaultRetain is Config.Retain's default: about 100 MB of records.
const defaultRetain = 100_000

// Config.Backlog's and BacklogWait's defaults.
const (
	defaultBacklog     = 20_000
	defaultBacklogWait = 10 * time.Second
)

// New starts a trail: its flusher runs until Close.
func New(cfg Config) *Trail {
	if cfg.Flush <= 0 {
		cfg.Flush = 500 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Retain <= 0 {
		cfg.Retain = defaultRetain
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = defaultBacklog
	}
	if cfg.BacklogWait <= 0 {
		cfg.BacklogWait = defaultBacklogWait
	}
	t := &Trail{cfg: cfg, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), drained: make(chan struct{})}
	t.idle = sync.NewCond(&t.mu)
	go t.run()
	return t
}

// refuse answers a request the trail cannot record (503).
func (t *Trail) refuse(c *gin.Context, err error) {
	if t.cfg.Fail != nil {
		t.cfg.Fail(c, err)
	} else {
		c.AbortWithStatus(http.StatusServiceUnavailable)
	}
	c.Abort()
}

// admit waits while Config.Backlog records wait to be stored, for the
// trail to store some, up to Config.BacklogWait: then, or when ctx ends,
// it refuses the request (fhir.Unavailable). A failing store is left to
// Retain and the overflow check.
func (t *Trail) admit(ctx context.Context) error {
	var timeout <-chan time.Time
	for {
		t.mu.Lock()
		if len(t.pending)+t.unstored < t.cfg.Backlog || t.failing || t.closed {
			t.mu.Unlock()
			return nil
		}
		drained := t.drained
		t.mu.Unlock()
		if timeout == nil {
			tm := time.NewTimer(t.cfg.BacklogWait)
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case <-drained:
		case <-timeout:
			return fhir.Errorf(fhir.Unavailable, "transient", "",
				"the server is storing its audit trail more slowly than requests arrive; try again shortly")
		case <-ctx.Done():
			return fhir.Errorf(fhir.Unavailable, "transient", "", "the request ended while the audit trail caught up")
		}
	}
}

func (t *Trail) requestID(c *gin.Context) string {
	if t.cfg.RequestID == nil {
		return ""
	}
	return t.cfg.RequestID(c)
}

// begin counts a request in flight; end buffers its record (nil: none).
func (t *Trail) begin() {
	t.mu.Lock()
	t.inflight++
	t.mu.Unlock()
}

func (t *Trail) end(ev *auditEvent) {
	t.mu.Lock()
	t.inflight--
	if t.inflight == 0 {
		t.idle.Broadcast()
	}
	closed := t.closed
	if !closed && ev != nil {
		t.pending = append(t.pending, ev)
		t.updateOverflow()
	}
	full := len(t.pending) >= maxPendingAudits && !t.failing // a failing store is tried again at the next tick
	t.mu.Unlock()
	if closed && ev != nil {
		t.store([]*auditEvent{ev}) // after Close: store it at once
		return
	}
	if full {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

func (t *Trail) run() {
	defer close(t.done)
	tick := time.NewTicker(t.cfg.Flush)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-t.kick:
		case <-t.stop:
			t.flush()
			t.move()
			return
		}
		t.flush()
		t.move()
	}
}

// move copies the records of writes into the audit database (Config.Mover).
func (t *Trail) move() {
	if t.cfg.Mover == nil {
		return
	}
	ctx, cancel := context.WithTimeout(write.AsServer(context.Background()), time.Minute)
	defer cancel()
	_, err := t.cfg.Mover.Move(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil && !t.moveFailing:
		t.cfg.Logger.Error("audit: copying the records of writes into the audit database failed; trying again at every flush", "error", err)
	case err == nil && t.moveFailing:
		t.cfg.Logger.Info("audit: copying the records of writes into the audit database again")
	}
	t.moveFailing = err != nil
}

// flush stores the pending records in one transaction.
func (t *Trail) flush() {
	t.storing.Lock()
	defer t.storing.Unlock()
	t.mu.Lock()
	batch := t.pending
	t.pending = nil
	t.unstored = len(batch)
	t.updateOverflow()
	t.mu.Unlock()
	t.store(batch)
	t.mu.Lock()
	t.unstored = 0 // stored, logged, or back in pending
	t.mu.Unlock()
}

// auditChunk is how many buffered records one transaction stores. The
// store has one writer, and a booking that arrives while it stores a flush
// waits for that transaction's commit: a flush of a busy half-second (a
// thousand records and more) in one transaction held bookings for its
// whole length; in chunks, a booking waits for one chunk at most.
const auditChunk = 64

// ownChunk is auditChunk for an audit database of its own (Config.Store):
// its writer stores nothing else, so a whole flush may be one commit.
const ownChunk = maxPendingAudits

// overflowing reports whether the trail holds as many records as it may
// while it cannot store them (an atomic read: every audited request asks).
func (t *Trail) overflowing() bool { return t.overflow.Load() }

// updateOverflow recomputes overflow; t.mu is held.
func (t *Trail) updateOverflow() {
	t.overflow.Store(t.failing && len(t.pending) >= t.cfg.Retain)
}

// store stores batch in transactions of auditChunk records, one after the
// other, so that other writes take their turn in between. When one fails
// because the store cannot take records now (the data directory full or
// read-only: the store answers fhir.Unavailable), it and the rest of the
// batch go back to the front of the buffer, to be stored by a later
// flush, and the trail keeps up to Config.Retain of them before refusing
// requests. After Close there is no later flush: records that still
// cannot be stored are written to the log, at error level, in full.
func (t *Trail) store(batch []*auditEvent) {
	chunk := auditChunk
	if t.cfg.Store != nil {
		chunk = ownChunk
	}
	for len(batch) > 0 {
		n := min(len(batch), chunk)
		if !t.storeChunk(batch, n) {
			return
		}
		batch = batch[n:]
	}
}

// storeChunk stores the first n records of batch in one transaction and
// reports whether the next may follow; when the store cannot take them
// now, all of batch is kept (or, after Close, logged).
func (t *Trail) storeChunk(batch []*auditEvent, n int) bool {
	err := t.storeBatch(batch[:n])
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unstored = max(0, t.unstored-n)
	close(t.drained) // requests waiting in admit look again
	t.drained = make(chan struct{})
	wasFailing := t.failing
	t.failing = fhir.KindOf(err) == fhir.Unavailable
	defer t.updateOverflow()
	switch {
	case err != nil && !t.failing:
		// Not the data directory: the store refused these records, and
		// would again.
		t.cfg.Logger.Error("audit: storing records failed", "records", n, "error", err)
		return true
	case err == nil:
		if wasFailing {
			t.cfg.Logger.Info("audit: storing records again", "records", n)
		}
		return true
	case !t.closed:
		t.pending = append(batch[:len(batch):len(batch)], t.pending...)
		t.cfg.Logger.Error("audit: storing records failed; kept in memory to try again", "records", len(batch),
			"waiting", len(t.pending), "retain", t.cfg.Retain, "error", err)
	default:
		for _, ev := range batch {
			b, _ := json.Marshal(ev)
			t.cfg.Logger.Error("audit: record not stored at shutdown", "error", err, "record", json.RawMessage(b))
		}
	}
	return false
}

func (t *Trail) storeBatch(batch []*auditEvent) error {
	ctx, cancel := context.WithTimeout(write.AsServer(context.Background()), 30*time.Second)
	defer cancel()
	if t.cfg.Store != nil {
		now := t.cfg.Now().UTC().Truncate(time.Millisecond)
		ws := make([]*store.Write, len(batch))
		for i, ev := range batch {
			w, err := t.writeOf(ev, now)
			if err != nil {
				return err
			}
			ws[i] = w
		}
		return t.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error { return store.PutAll(ctx, tx, ws) })
	}
	return t.cfg.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		ws := make([]*store.Write, len(batch))
		for i, ev := range batch {
			w, err := t.writeOf(ev, tx.Now())
			if err != nil {
				return err
			}
			ws[i] = w
		}
		return store.PutAll(ctx, tx.Tx, ws)
	})
}

// Close stores the pending records and stops the flusher: call it on
// graceful shutdown, after the HTTP server has stopped and before the
// store closes. A record that arrives afterwards is stored at once.
func (t *Trail) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	t.mu.Unlock()
	close(t.stop)
	<-t.done
}

// Pending returns how many records wait to be stored: in the buffer for
// the next flush and in the flush under way (the audit queue's depth, for
// metrics).
func (t *Trail) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) + t.unstored
}

// Flush stores the audit records of every request answered so far
// (reads, searches, refusals), waiting for those still in flight, and
// copies the records of writes into the audit database (Config.Mover);
// tests and shutdown call it.
func (t *Trail) Flush() {
	t.mu.Lock()
	for t.inflight > 0 {
		t.idle.Wait()
	}
	t.mu.Unlock()
	t.flush()
	t.move()
}

// MoverLag returns, in seconds, how long ago the records of writes were
// last all copied into the audit database (0 without one): for metrics.
func (t *Trail) MoverLag() float64 {
	if t.cfg.Mover == nil {
		return 0
	}
	return t.cfg.Mover.Lag().Seconds()
}
