package referral

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// State is a referral's workflow state: its Task's businessStatus code in
// https://signpost.example/fhir/CodeSystem/referral-state.
type State string

// The referral states.
const (
	AwaitingBooking State = "awaiting-booking" // referred; no appointment yet
	Booked          State = "booked"           // an appointment is booked; for the provider's review
	AwaitingTriage  State = "awaiting-triage"  // sent to the provider for triage without an appointment
	Accepted        State = "accepted"         // the provider accepted the referral
	Rejected        State = "rejected"         // the provider returned it to the referrer
	Redirected      State = "redirected"       // the provider sent it on to another service
	SlotIssue       State = "slot-issue"       // no slot could be found: deferred to the provider
	Cancelled       State = "cancelled"        // withdrawn (terminal)
	Completed       State = "completed"        // the appointment took place (terminal)
)

// transitions lists, for each state, the states it may move to. Anything
// else is an illegal transition (422).
var transitions = map[State][]State{
	AwaitingBooking: {Booked, AwaitingTriage, SlotIssue, Cancelled},
	Booked:          {Accepted, Rejected, Redirected, Cancelled, AwaitingBooking, Completed},
	AwaitingTriage:  {Accepted, Rejected, Redirected, Cancelled, Booked},
	Accepted:        {Completed, Cancelled},
	Rejected:        {AwaitingBooking, Booked, Cancelled},
	Redirected:      {Booked, AwaitingBooking, AwaitingTriage, SlotIssue, Cancelled},
	SlotIssue:       {Booked, AwaitingTriage, Rejected, Redirected, Cancelled},
	Cancelled:       nil,
	Completed:       nil,
}

// CanMove reports whether a referral may move from one state to another.
func CanMove(from, to State) bool { return slices.Contains(transitions[from], to) }

// Worklist is a named list of referral Tasks someone must work.
type Worklist string

// The worklists. A Task carries its worklist in the r4.Extension
// https://signpost.example/fhir/StructureDefinition/worklist, searchable as
// Task?worklist=<code> (with owner= to narrow it to a service or referrer).
const (
	ForReview       Worklist = "for-review"       // provider: booked or awaiting triage
	ToBook          Worklist = "awaiting-booking" // referrer / patient / call centre: no appointment yet
	SlotIssues      Worklist = "slot-issues"      // provider: contact the patient and book
	RejectedReturns Worklist = "rejected"         // referrer: rejected referrals to act on
)

// WorklistOf returns the worklist a referral in state st is on, or "".
func WorklistOf(st State) Worklist {
	switch st {
	case Booked, AwaitingTriage:
		return ForReview
	case AwaitingBooking, Redirected:
		return ToBook
	case SlotIssue:
		return SlotIssues
	case Rejected:
		return RejectedReturns
	}
	return ""
}

// taskView is what the Task rule reads.
type taskView struct {
	Code           r4.CodeableConcept `json:"code"`
	BusinessStatus r4.CodeableConcept `json:"businessStatus"`
	StatusReason   r4.CodeableConcept `json:"statusReason"`
	Focus          r4.Reference       `json:"focus"`
	For            r4.Reference       `json:"for"`
	Owner          r4.Reference       `json:"owner"`
	Extension      []r4.Extension     `json:"extension"`
}

func (t *taskView) isReferral() bool { return elem.HasCoding(t.Code, TaskCodeSystem, TaskCode) }
func (t *taskView) state() State     { return State(elem.CodeIn(t.BusinessStatus, StateSystem)) }
func (t *taskView) reasonText() string {
	if elem.Str(t.StatusReason.Text) != "" {
		return elem.Str(t.StatusReason.Text)
	}
	for _, c := range t.StatusReason.Coding {
		if elem.Str(c.Display) != "" {
			return elem.Str(c.Display)
		}
		return elem.Str(c.Code)
	}
	return ""
}

// own is the write.PutOptions of a write by this package, which may set
// the elements the server owns (the Task's creation, the access-code
// hash, the saved shortlist). It applies to that write only, not to the
// writes its rules make in turn.
var own = write.PutOptions{By: "referral"}

// isOwn reports whether this package makes the write c.
func isOwn(c *write.Change) bool { return c.By == own.By }

func stateConcept(st State) r4.CodeableConcept {
	return r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(StateSystem), Code: elem.Opt(string(st)), Display: elem.Opt(stateDisplay[st])}}}
}

var stateDisplay = map[State]string{
	AwaitingBooking: "Awaiting booking", Booked: "Booked", AwaitingTriage: "Awaiting triage",
	Accepted: "Accepted", Rejected: "Rejected", Redirected: "Redirected", SlotIssue: "Appointment slot issue",
	Cancelled: "Cancelled", Completed: "Completed",
}

// legacyAccessHash is the extension that once held the access-code hash on
// the Task. It is never written now, and removed when found.
const legacyAccessHash = Base + "/StructureDefinition/access-code-hash"

// taskRule keeps referral Tasks honest on every write path: only the
// server creates them (one per referral, with the ServiceRequest); their
// focus never changes; businessStatus moves only along the transitions;
// the worklist, Task.status and the access-code hash are server-owned; and
// every move writes a Provenance and keeps ServiceRequest.status in step.
func (s *Service) taskRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	var oldT, newT taskView
	if c.Old != nil {
		if err := decode(c.Old.JSON, &oldT, "Task"); err != nil {
			return err
		}
	}
	if c.New == nil {
		if oldT.isReferral() && !isOwn(c) {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task",
				"Task/%s is the workflow of %s: cancel the referral instead of deleting it", c.ID, elem.Str(oldT.Focus.Reference))
		}
		return nil
	}
	if err := decode(c.New.Bytes(), &newT, "Task"); err != nil {
		return err
	}
	if !oldT.isReferral() && !newT.isReferral() {
		return nil
	}
	if c.Old == nil && !isOwn(c) {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.code",
			"referral workflow Tasks are created by the server with their ServiceRequest").WithDetails("SERVER_OWNED")
	}
	if c.Old != nil {
		if !newT.isReferral() {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.code", "the code of referral Task/%s cannot change", c.ID)
		}
		if elem.Str(newT.Focus.Reference) != elem.Str(oldT.Focus.Reference) {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.focus",
				"referral Task/%s stays focused on %s", c.ID, elem.Str(oldT.Focus.Reference))
		}
		if !isOwn(c) {
			for _, url := range []string{AccessExtension, BreachExtension, RedirectedExtension} {
				if err := c.New.KeepExtensions(c.Old.JSON, url); err != nil {
					return err
				}
			}
		}
		// Before access codes moved to store records, their hashes were
		// kept on the Task: drop any such left-over at the next write.
		if err := c.New.SetExtensions(legacyAccessHash); err != nil {
			return err
		}
	}
	to := newT.state()
	if _, known := transitions[to]; !known {
		return fhir.Errorf(fhir.Unprocessable, "code-invalid", "Task.businessStatus",
			"businessStatus must be a code from %s, not %q", StateSystem, to)
	}
	from := oldT.state()
	if c.Old != nil && from != to && !CanMove(from, to) {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.businessStatus",
			"referral %s cannot move from %s to %s", elem.Str(oldT.Focus.Reference), from, to).WithDetails("ILLEGAL_TRANSITION")
	}
	// Server-owned: the worklist and the FHIR status follow the state.
	var wl []any
	if w := WorklistOf(to); w != "" {
		wl = append(wl, r4.Extension{Url: WorklistExtension, ValueCoding: &r4.Coding{System: elem.Opt(WorklistSystem), Code: elem.Opt(string(w))}})
	}
	if err := c.New.SetExtensions(WorklistExtension, wl...); err != nil {
		return err
	}
	status := "in-progress"
	switch to {
	case Completed:
		status = "completed"
	case Cancelled:
		status = "cancelled"
	case AwaitingBooking:
		status = "ready"
	}
	c.New.Set("status", status)
	if c.Old != nil && from == to {
		return nil
	}
	var version int64 = 1
	if c.Old != nil {
		version = c.Old.Version + 1
	}
	if err := s.writeProvenance(ctx, tx, "Task/"+c.ID+"/_history/"+strconv.FormatInt(version, 10), elem.Str(newT.Focus.Reference), elem.Str(newT.Owner.Reference), to, newT.reasonText()); err != nil {
		return err
	}
	if c.Old != nil {
		return s.syncRequestStatus(ctx, tx, elem.Str(newT.Focus.Reference), to)
	}
	return nil
}

// writeProvenance records who moved a referral to state st, when, and why.
// The Task's owner after the move is recorded as an entity (role source):
// for a deferral, the service that had no slot.
func (s *Service) writeProvenance(ctx context.Context, tx *write.Tx, task, request, owner string, st State, why string) error {
	activity := stateConcept(st)
	prov := r4.Provenance{
		Target:   []r4.Reference{elem.Ref(task), elem.Ref(request)},
		Recorded: tx.Now().Format(fhir.InstantFormat),
		Activity: &activity,
		Agent:    provenanceAgents(ctx),
	}
	if owner != "" {
		prov.Entity = []r4.ProvenanceEntity{{Role: r4.ProvenanceEntityRoleSource, What: elem.Ref(owner)}}
	}
	if why != "" {
		prov.Reason = []r4.CodeableConcept{{Text: &why}}
	}
	_, err := create(recordKeeper(ctx), tx, "Provenance", prov)
	return err
}

// recordKeeper returns ctx acting as the server's record keeper, for the
// records the referral rules write on their own account (Provenance): the
// caller who moved the referral is named inside the record, but need not
// be able to write it, nor be its patient's compartment (a Provenance
// targets the Task and the referral, not the Patient). Audited as written
// by ClientRecordKeeper.
func recordKeeper(ctx context.Context) context.Context {
	return auth.NewContext(ctx, &auth.Principal{Subject: ClientRecordKeeper, ClientID: ClientRecordKeeper, Scopes: recordKeeperScopes})
}

// ClientRecordKeeper names the server's referral rules in the audit trail
// of the Provenance records they write.
const ClientRecordKeeper = "signpost-referral"

var recordKeeperScopes, _ = auth.ParseScopes("system/Provenance.c")

// Identifier systems of Provenance agents: the token's subject and client
// (as the audit trail names them) and the organisation's ODS code.
const (
	SubjectSystem = Base + "/Id/oauth-subject"
	ClientSystem  = Base + "/Id/oauth-client"
	ODSSystem     = "https://fhir.nhs.uk/Id/ods-organization-code"
)

const participantSystem = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

// provenanceAgents names who acts in ctx, from the signed-in principal:
// the author (the token's fhirUser, else its patient, and always its
// subject), on behalf of its organisation (ODS code), and the client
// application that entered the change when it is not the subject itself.
// Without a principal (an open server, or the server's own background
// work) the author is "unauthenticated".
func provenanceAgents(ctx context.Context) []r4.ProvenanceAgent {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return []r4.ProvenanceAgent{{Type: participant("author", "Author"), Who: r4.Reference{Display: elem.Opt("unauthenticated")}}}
	}
	var who r4.Reference
	switch {
	case p.FHIRUser != "":
		if typ, id, ok := fhir.SplitReference(p.FHIRUser); ok {
			who.Reference = elem.Opt(typ + "/" + id)
		}
	case p.Patient != "":
		who.Reference = elem.Opt("Patient/" + p.Patient)
	}
	if p.Subject != "" {
		who.Identifier = &r4.Identifier{System: elem.Opt(SubjectSystem), Value: elem.Opt(p.Subject)}
		who.Display = elem.Opt(p.Subject)
	}
	if who.Reference == nil && who.Identifier == nil && who.Display == nil {
		who.Display = elem.Opt("unknown subject")
	}
	author := r4.ProvenanceAgent{Type: participant("author", "Author"), Who: who}
	if p.Role != "" {
		author.Role = []r4.CodeableConcept{{Text: elem.Opt(string(p.Role))}}
	}
	if p.Organization != "" {
		author.OnBehalfOf = &r4.Reference{Type: elem.Opt("Organization"),
			Identifier: &r4.Identifier{System: elem.Opt(ODSSystem), Value: elem.Opt(p.Organization)}}
	}
	agents := []r4.ProvenanceAgent{author}
	if p.ClientID != "" && p.ClientID != p.Subject {
		agents = append(agents, r4.ProvenanceAgent{Type: participant("enterer", "Enterer"),
			Who: r4.Reference{Type: elem.Opt("Device"), Identifier: &r4.Identifier{System: elem.Opt(ClientSystem), Value: elem.Opt(p.ClientID)},
				Display: elem.Opt("client " + p.ClientID)}})
	}
	return agents
}

func participant(code, display string) *r4.CodeableConcept {
	return &r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(participantSystem), Code: elem.Opt(code), Display: elem.Opt(display)}}}
}

// syncRequestStatus keeps ServiceRequest.status at its R4 code: revoked
// when cancelled, completed when completed, active otherwise.
func (s *Service) syncRequestStatus(ctx context.Context, tx *write.Tx, ref string, st State) error {
	want := "active"
	switch st {
	case Cancelled:
		want = "revoked"
	case Completed:
		want = "completed"
	}
	res, err := readRef(ctx, tx, ref)
	if err != nil {
		return err
	}
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	if cur, _ := obj.String("status"); cur == want {
		return nil
	}
	obj.Set("status", want)
	// Part of the Task's move: whoever may move the Task may do it.
	ctx = write.AsConsequence(ctx, write.Consequence{Type: res.Type, ID: res.ID, Grant: write.WithCause, Of: "its Task's move"})
	_, _, err = tx.PutWith(ctx, res.Type, res.ID, obj, 0, own)
	return err
}

// referralTask returns the workflow Task of a referral ("ServiceRequest/id").
func (s *Service) referralTask(ctx context.Context, tx store.Reader, ref string) (*fhir.Resource, error) {
	tasks, err := find(ctx, tx, s.reg, "Task", "focus="+ref+"&code="+TaskCodeSystem+"|"+TaskCode)
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "%s has no referral workflow Task", ref)
	}
	return tasks[0], nil
}

// referralTaskView is referralTask with the Task read.
func (s *Service) referralTaskView(ctx context.Context, tx store.Reader, ref string) (*fhir.Resource, taskView, error) {
	task, err := s.referralTask(ctx, tx, ref)
	if err != nil {
		return nil, taskView{}, err
	}
	var tv taskView
	if err := decode(task.JSON, &tv, "Task"); err != nil {
		return nil, taskView{}, err
	}
	return task, tv, nil
}

// moveTask moves a referral's Task to st with a reason, applying patch to
// the Task's JSON too (owner and the like). The Task rule checks the move.
func (s *Service) moveTask(ctx context.Context, tx *write.Tx, task *fhir.Resource, st State, why string, patch func(*fhir.Object)) (*fhir.Resource, error) {
	obj, err := fhir.ParseObject(task.JSON)
	if err != nil {
		return nil, err
	}
	obj.Set("businessStatus", stateConcept(st))
	if why != "" {
		obj.Set("statusReason", r4.CodeableConcept{Text: elem.Opt(why)})
	} else {
		obj.Delete("statusReason")
	}
	obj.Set("lastModified", tx.Now().Format(fhir.InstantFormat))
	if patch != nil {
		patch(obj)
	}
	res, _, err := tx.PutWith(ctx, "Task", task.ID, obj, 0, own)
	return res, err
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
