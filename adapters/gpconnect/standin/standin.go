// Package standin is a GP Connect provider stand-in: a small FHIR STU3
// server that answers as a GP practice's system does under GP Connect
// Appointment Management 1.2.x, for tests and for serve --demo.
//
// It enforces the specification's rules, not Signpost's assumptions: the
// Spine headers (Ssp-TraceID a UUID, Ssp-From, Ssp-To its own ASID,
// Ssp-InteractionID naming the interaction), the unsigned JWT and its
// claims, the free-slot search's parameters (start=ge and end=le once
// each, at most 14 days apart, status=free, _include=Slot:schedule,
// searchFilter), Find a patient by NHS number, Register a patient
// (temporary), booking (409 DUPLICATE_REJECTED on a slot taken, under
// concurrent requests too), read, amend (comment and description only)
// and cancel (with a reason), each refusal an STU3 OperationOutcome with
// GP Connect's error code and HTTP status (rules.go lists them).
//
// For tests it records every request it receives (Requests: headers and
// decoded JWT claims, the answer's status and code) and can be switched
// to refuse connections or answer 500 (SetMode), to hold its answers back
// (SetDelay), and to refuse temporary registrations (SetAcceptTemporary);
// RegisterPatient registers a patient. New builds one on a generated
// Book (NewBook); Start serves it on 127.0.0.1 on a free port.
package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

// Mode is how the stand-in answers.
type Mode int

// The modes.
const (
	// Up answers as a practice does.
	Up Mode = iota
	// Refusing refuses connections (the listener is closed, open
	// connections with it) until the mode changes back.
	Refusing
	// Failing answers every request 500 INTERNAL_SERVER_ERROR.
	Failing
)

// Request is a request the stand-in received, as recorded for tests.
type Request struct {
	Method string
	// Path is the path below the base URL ("/Slot", "/Appointment/1").
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Claims are the JWT's claims, nil when the token could not be read.
	Claims *stu3.Claims
	// Status and Code are the answer: HTTP status, and the GP Connect
	// error code of a refusal ("" for a success).
	Status int
	Code   string
}

// Server is a GP practice's GP Connect provider stand-in. It is an
// http.Handler serving the practice's base path (BasePath).
type Server struct {
	ods, asid string
	now       func() time.Time

	mu              sync.Mutex
	org             stu3.Organization
	locations       map[string]*stu3.Location
	practitioners   map[string]*stu3.Practitioner
	schedules       map[string]*stu3.Schedule
	slots           map[string]*stu3.Slot
	slotOrder       []*stu3.Slot
	patients        map[string]*stu3.Patient
	appointments    map[string]*stu3.Appointment
	nextID          int
	requests        []Request
	mode            Mode
	delay           time.Duration
	acceptTemporary bool
	log             io.Writer

	// the listener, once started
	srv   *http.Server
	ln    net.Listener
	addr  string
	conns map[net.Conn]bool
	done  chan struct{}
}

// New is the stand-in of practice ods (its ODS code) with ASID asid (the
// Ssp-To it expects), telling the time by now (JWT expiry, what is past),
// serving book. It accepts temporary registrations until told otherwise.
func New(ods, asid string, now func() time.Time, book *Book) *Server {
	s := &Server{ods: ods, asid: asid, now: now, org: book.Organization,
		locations: map[string]*stu3.Location{}, practitioners: map[string]*stu3.Practitioner{},
		schedules: map[string]*stu3.Schedule{}, slots: map[string]*stu3.Slot{},
		patients: map[string]*stu3.Patient{}, appointments: map[string]*stu3.Appointment{},
		acceptTemporary: true, conns: map[net.Conn]bool{}}
	for i := range book.Locations {
		l := book.Locations[i]
		s.locations[l.ID] = &l
	}
	for i := range book.Practitioners {
		p := book.Practitioners[i]
		s.practitioners[p.ID] = &p
	}
	for i := range book.Schedules {
		sc := book.Schedules[i]
		s.schedules[sc.ID] = &sc
	}
	for i := range book.Slots {
		sl := book.Slots[i]
		s.slots[sl.ID] = &sl
		s.slotOrder = append(s.slotOrder, &sl)
	}
	sort.SliceStable(s.slotOrder, func(i, j int) bool { return instant(s.slotOrder[i].Start).Before(instant(s.slotOrder[j].Start)) })
	for i := range book.Patients {
		p := book.Patients[i]
		s.patients[p.ID] = &p
		s.bumpID(p.ID)
	}
	return s
}

// bumpID keeps generated ids above a numeric id already used.
func (s *Server) bumpID(id string) {
	var n int
	if _, err := fmt.Sscan(id, &n); err == nil && n > s.nextID {
		s.nextID = n
	}
}

// newID is a fresh id for a patient or an appointment; s.mu held.
func (s *Server) newID() string {
	s.nextID++
	return fmt.Sprint(s.nextID)
}

// BasePath is the path the practice's GP Connect endpoint is served
// under, as real endpoints have one: "/<ODS>/STU3/1/gpconnect".
func (s *Server) BasePath() string { return "/" + s.ods + "/STU3/1/gpconnect" }

// ODS is the practice's ODS code.
func (s *Server) ODS() string { return s.ods }

// ASID is the practice's ASID, the Ssp-To it expects.
func (s *Server) ASID() string { return s.asid }

// Start serves the stand-in on 127.0.0.1 on a free port; URL is then its
// base URL. Close stops it.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("GP Connect stand-in: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = ln.Close()
		return errors.New("GP Connect stand-in: already started")
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ConnState: s.connState}
	s.serve(ln)
	return nil
}

// serve serves on ln; s.mu held.
func (s *Server) serve(ln net.Listener) {
	s.ln = ln
	done := make(chan struct{})
	s.done = done
	srv := s.srv
	go func() { defer close(done); _ = srv.Serve(ln) }()
}

// connState keeps the open connections, to close them when refusing.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = true
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// URL is the base URL of the started stand-in (http://127.0.0.1:port
// followed by BasePath).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr + s.BasePath()
}

// Close stops the started stand-in.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// SetMode switches how the stand-in answers. Refusing needs a started
// stand-in: it closes the listener and the open connections, and Up
// listens again on the same address.
func (s *Server) SetMode(m Mode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == m {
		return nil
	}
	if m == Refusing || s.mode == Refusing {
		if s.srv == nil {
			return errors.New("GP Connect stand-in: not started")
		}
	}
	switch {
	case m == Refusing:
		_ = s.ln.Close()
		for c := range s.conns {
			_ = c.Close()
		}
		done := s.done
		s.mu.Unlock()
		<-done
		s.mu.Lock()
	case s.mode == Refusing:
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("GP Connect stand-in: listening again: %w", err)
		}
		s.serve(ln)
	}
	s.mode = m
	return nil
}

// SetDelay holds every answer back by d after the work is done (a
// booking is made whether or not the client waits for the answer), or
// until the client goes away: a slow practice.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetAcceptTemporary says whether Register a patient registers
// temporary patients (true at first) or refuses them (403 ACCESS_DENIED).
func (s *Server) SetAcceptTemporary(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acceptTemporary = ok
}

// SetLog makes the stand-in write one line per request to w (nil: none),
// as the demo shows what the practice received.
func (s *Server) SetLog(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = w
}

// Requests are the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RegisterPatient registers a regular patient of the practice with NHS
// number nhs and returns the practice's id of them.
func (s *Server) RegisterPatient(nhs string, name stu3.HumanName, gender, birthDate string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.register(nhs, name, gender, birthDate, "R").ID
}

// register adds a patient; s.mu held.
func (s *Server) register(nhs string, name stu3.HumanName, gender, birthDate, regType string) *stu3.Patient {
	active := true
	p := &stu3.Patient{
		ResourceType: "Patient", ID: s.newID(),
		Meta: &stu3.Meta{VersionID: "1", Profile: []string{stu3.ProfilePatient}},
		Extension: []stu3.Extension{{URL: ExtRegistrationDetails, Extension: []stu3.Extension{
			{URL: "registrationPeriod", ValuePeriod: &stu3.Period{Start: stamp(s.now())}},
			{URL: "registrationType", ValueCodeableConcept: &stu3.CodeableConcept{Coding: []stu3.Coding{{System: RegistrationTypeSystem, Code: regType, Display: registrationTypes[regType]}}}},
		}}},
		Identifier:           []stu3.Identifier{{System: stu3.NHSNumberSystem, Value: nhs}},
		Active:               &active,
		Name:                 []stu3.HumanName{name},
		Gender:               gender,
		BirthDate:            birthDate,
		ManagingOrganization: &stu3.Reference{Reference: "Organization/" + s.org.ID},
	}
	if p.Name[0].Use == "" {
		p.Name[0].Use = "official"
	}
	s.patients[p.ID] = p
	return p
}

// Registration details of a Patient (Care Connect GPC).
const (
	ExtRegistrationDetails = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-RegistrationDetails-1"
	RegistrationTypeSystem = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-RegistrationType-1"
)

var registrationTypes = map[string]string{"R": "Regular", "T": "Temporary"}

// Appointment is the practice's appointment id as it stands, and whether
// there is one.
func (s *Server) Appointment(id string) (stu3.Appointment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.appointments[id]
	if !ok {
		return stu3.Appointment{}, false
	}
	return clone(a), true
}

// Appointments are the practice's appointments, by id.
func (s *Server) Appointments() []stu3.Appointment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stu3.Appointment
	for _, a := range s.appointments {
		out = append(out, clone(a))
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

// Slot is the practice's slot id, and whether there is one.
func (s *Server) Slot(id string) (stu3.Slot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.slots[id]
	if !ok {
		return stu3.Slot{}, false
	}
	return *sl, true
}

// FreeSlots are the practice's free slots from now on, by start.
func (s *Server) FreeSlots() []stu3.Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stu3.Slot
	now := s.now()
	for _, sl := range s.slotOrder {
		if sl.Status == "free" && !instant(sl.Start).Before(now) {
			out = append(out, *sl)
		}
	}
	return out
}

// SetSlotStatus changes a slot's status as the practice's own staff
// would (booking it at the desk, or withdrawing it): false if there is
// no such slot.
func (s *Server) SetSlotStatus(id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.slots[id]
	if ok {
		sl.Status = status
		bumpVersion(&sl.Meta)
	}
	return ok
}

// ServeHTTP answers one GP Connect request: the mode, the path, the
// headers and JWT for the interaction, then the interaction itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := Request{Method: r.Method, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
	path, inBase := strings.CutPrefix(r.URL.Path, s.BasePath())
	rec.Path = path
	var res *reply
	s.mu.Lock()
	mode, delay := s.mode, s.delay
	s.mu.Unlock()
	switch {
	case mode == Failing:
		res = refuse(stu3.CodeInternalServerError, "the practice system is unavailable")
	case !inBase:
		res = refuse(stu3.CodeNoRecordFound, "no GP Connect endpoint at %s; this practice's is %s", r.URL.Path, s.BasePath())
	default:
		res = s.route(r, path, body, &rec)
	}
	rec.Status, rec.Code = res.status, res.code
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	if s.log != nil {
		line := fmt.Sprintf("GP practice %s: %s %s → %d", s.ods, r.Method, path, res.status)
		if res.code != "" {
			line += " " + res.code
		}
		fmt.Fprintln(s.log, line)
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	res.write(w)
}

// reply is an answer: a resource or an OperationOutcome.
type reply struct {
	status int
	code   string
	body   any
	header map[string]string
}

func ok(status int, body any) *reply { return &reply{status: status, body: body} }

// refuse is GP Connect's answer for an error code.
func refuse(code, format string, args ...any) *reply {
	return &reply{status: stu3.StatusOf(code), code: code, body: stu3.NewOutcome(code, fmt.Sprintf(format, args...))}
}

func (r *reply) write(w http.ResponseWriter) {
	b, err := json.Marshal(r.body)
	if err != nil {
		r.status, b = 500, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	w.Header().Set("Content-Type", "application/fhir+json;charset=utf-8")
	for k, v := range r.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(b)
}

// route dispatches to the interaction the method and path name, after
// the headers and the JWT are checked for it.
func (s *Server) route(r *http.Request, path string, body []byte, rec *Request) *reply {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	var interaction string
	var run func() *reply
	switch {
	case r.Method == http.MethodGet && path == "/metadata":
		interaction, run = stu3.InteractionMetadata, s.metadata
	case r.Method == http.MethodGet && path == "/Patient":
		interaction, run = stu3.InteractionFindPatient, func() *reply { return s.findPatient(r.URL.Query()) }
	case r.Method == http.MethodPost && path == "/Patient/$gpc.registerpatient":
		interaction, run = stu3.InteractionRegisterPatient, func() *reply { return s.registerPatient(body) }
	case r.Method == http.MethodGet && len(seg) == 3 && seg[0] == "Patient" && seg[2] == "Appointment":
		interaction, run = stu3.InteractionPatientAppointments, func() *reply { return s.patientAppointments(seg[1], r.URL.Query()) }
	case r.Method == http.MethodGet && path == "/Slot":
		interaction, run = stu3.InteractionSearchSlots, func() *reply { return s.searchSlots(r.URL.Query(), rec) }
	case r.Method == http.MethodPost && path == "/Appointment":
		interaction, run = stu3.InteractionBookAppointment, func() *reply { return s.book(body) }
	case r.Method == http.MethodGet && len(seg) == 2 && seg[0] == "Appointment":
		interaction, run = stu3.InteractionReadAppointment, func() *reply { return s.read(seg[1]) }
	case r.Method == http.MethodPut && len(seg) == 2 && seg[0] == "Appointment":
		// Amend and cancel share the method and path; the interaction
		// says which the consumer means.
		interaction = r.Header.Get("Ssp-InteractionID")
		if interaction != stu3.InteractionCancelAppointment {
			interaction = stu3.InteractionAmendAppointment
		}
		run = func() *reply { return s.update(seg[1], interaction, r.Header.Get("If-Match"), body) }
	default:
		return refuse(stu3.CodeNotImplemented, "%s %s is not a GP Connect Appointment Management interaction", r.Method, path)
	}
	if res := s.checkRequest(r, interaction, rec); res != nil {
		return res
	}
	return run()
}

// clone is a deep copy of an appointment.
func clone(a *stu3.Appointment) stu3.Appointment {
	var c stu3.Appointment
	b, _ := json.Marshal(a)
	_ = json.Unmarshal(b, &c)
	return c
}

// idLess orders numeric ids as numbers.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// bumpVersion increments a resource's versionId in a new Meta, so that
// copies handed out (FreeSlots, Slot) never share what changes.
func bumpVersion(m **stu3.Meta) {
	var nm stu3.Meta
	if *m != nil {
		nm = **m
	}
	var n int
	fmt.Sscan(nm.VersionID, &n)
	nm.VersionID = fmt.Sprint(n + 1)
	*m = &nm
}

// instant parses a FHIR instant (zero on failure).
func instant(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// decodeStrict decodes a resource refusing members its type lacks.
func decodeStrict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the resource")
	}
	return nil
}

var _ http.Handler = (*Server)(nil)
