package pas

// Outbound: the changes made through Signpost that the PAS must hear of.
//
// The instance is an adapters.Watcher of Appointment, ServiceRequest and
// Task: its Watch runs in the write transaction of every such write,
// after the domain's rules. For a signpost-confirmed instance (the notify
// profile) it notes what happened to the appointments and referrals the
// PAS owns, and just before the transaction commits (write.Tx.BeforeCommit)
// queues one message per event in the store's outbox, in the same
// transaction: a change that rolls back sends nothing, one that commits
// is never forgotten. Once committed, the dispatcher is woken
// (write.Tx.AfterCommit) and delivers the messages in order per key. An
// appointment's message is queued as a record of the event and built
// when it is sent, as of the commit (deferred.go); a referral's as ER7.
//
// What concerns the instance: an appointment whose slot's Schedule is for
// one of Settings.Services (for an appointment recorded without slots, a
// HealthcareService taking part); a referral whose performer (or, before
// a move, its Task's owner) is one of them, or a service or organisation
// of the instance's trust (its ODS code).
//
// What is sent, for an appointment (SIU, keyed "Appointment/<id>"):
//
//   - booked (created booked, or a hold confirmed): SIU^S12;
//   - rescheduled: SIU^S13. Signpost's $reschedule cancels the appointment
//     and books a copy that replaces it (extension replaces) in one
//     transaction; to the PAS that is one appointment moved, so the pair
//     gives one S13 and no S15. An appointment keeps, towards the PAS, the
//     placer id (SCH-1) and the ordering key of the first appointment of
//     its chain of replacements: the PAS sees one appointment throughout,
//     and its messages stay in order across reschedules;
//   - start, end or slots changed in place while booked: SIU^S13;
//   - another change to a booked appointment (participants, service,
//     description, a status such as arrived or fulfilled): SIU^S14;
//   - cancelled, entered in error or deleted: SIU^S15;
//   - no-show: SIU^S26.
//
// A hold (pending) is not sent: the PAS hears of the booking when it is
// confirmed, and nothing of a hold released.
//
// For a referral (REF^I13, keyed "ServiceRequest/<id>"): its Task moving
// to accepted (RF1-1 A), rejected (R) or redirected. A redirection to a
// service the instance also serves leaves the referral with the trust
// (P, pending), one elsewhere takes it away (R); RF1-10 says
// "redirected" and where to.
//
// Changes the instance made itself (the PAS's own messages, applied as
// the instance's principal, and everything they caused) are not sent
// back to it. A pas-confirmed instance hands every change to
// watchRequest (confirm.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// ContentType is the media type of the HL7 v2 messages the outbox holds.
const ContentType = "x-application/hl7-v2+er7"

// maxChain bounds how far a chain of replaced appointments is followed.
const maxChain = 100

// Watched implements adapters.Watcher.
func (a *Adapter) Watched() []string { return []string{"Appointment", "ServiceRequest", "Task"} }

// Watch implements adapters.Watcher: see the file's comment.
func (a *Adapter) Watch(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if a.env.FromSelf(ctx) {
		return nil
	}
	if a.set.Mode == ModePASConfirmed {
		return a.watchRequest(ctx, tx, c)
	}
	if a.dispatcher == nil { // no send address: nothing is sent
		return nil
	}
	switch c.Type {
	case "Appointment":
		return a.watchAppointment(ctx, tx, c)
	case "Task":
		return a.watchTask(ctx, tx, c)
	}
	return nil
}

// outgoing is what one transaction will send the PAS, in order.
type outgoing struct {
	appts []*apptEvent
	refs  []*ReferralSubject
	// seen caches the Slots and Schedules read in the transaction: what
	// the messages read of them (a slot's schedule, a schedule's actors)
	// does not change while a booking's transaction runs, and reading
	// them once each keeps the booking's cost down.
	seen map[string]*fhir.Resource
}

// cached is a store.Reader that reads Slots and Schedules once.
type cached struct {
	store.Reader
	seen map[string]*fhir.Resource
}

// Read implements store.Reader.
func (c cached) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	if typ != "Slot" && typ != "Schedule" {
		return c.Reader.Read(ctx, typ, id)
	}
	if res, ok := c.seen[typ+"/"+id]; ok {
		return res, nil
	}
	res, err := c.Reader.Read(ctx, typ, id)
	if err == nil {
		c.seen[typ+"/"+id] = res
	}
	return res, err
}

// apptEvent is one appointment event noted in the transaction.
type apptEvent struct {
	event    string
	res      *fhir.Resource // the version announced (res.Version its number)
	status   string         // the status announced instead of res's, if any
	replaces string         // the id of the appointment it replaces, if any
	dropped  bool           // folded into a reschedule
}

// outKey is the write.Tx.Local key of an instance's outgoing messages.
type outKey struct{ a *Adapter }

// pending returns the transaction's outgoing messages, arranging on first
// use for them to be queued before it commits.
func (a *Adapter) pending(tx *write.Tx) *outgoing {
	return tx.Local(outKey{a}, func() any {
		o := &outgoing{seen: map[string]*fhir.Resource{}}
		tx.BeforeCommit(func(ctx context.Context) error { return a.flush(ctx, tx, o) })
		return o
	}).(*outgoing)
}

// apptState is what Watch reads of an Appointment version.
type apptState struct {
	Status    string         `json:"status"`
	Slot      []r4.Reference `json:"slot"`
	Extension []r4.Extension `json:"extension"`
	body      []byte
	raw       map[string]any // body decoded, by members (members)
}

// known are the statuses of an appointment the PAS has heard of.
var known = []string{"booked", "arrived", "checked-in", "fulfilled", "noshow"}

// compared are the members whose change is a modification (S14), and
// moved those whose change is a reschedule (S13).
var (
	compared = []string{"status", "participant", "serviceCategory", "serviceType", "specialty", "appointmentType",
		"reasonCode", "reasonReference", "priority", "description", "comment", "patientInstruction", "basedOn", "minutesDuration"}
	moved = []string{"start", "end", "slot"}
)

func readAppt(b []byte) (*apptState, error) {
	var s apptState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	s.body = b
	return &s, nil
}

// members returns the appointment's members decoded (nil if it cannot be).
func (s *apptState) members() map[string]any {
	if s.raw == nil {
		_ = json.Unmarshal(s.body, &s.raw)
	}
	return s.raw
}

// differ reports whether any of keys differs between o and n.
func differ(o, n *apptState, keys []string) bool {
	om, nm := o.members(), n.members()
	for _, k := range keys {
		if !reflect.DeepEqual(om[k], nm[k]) {
			return true
		}
	}
	return false
}

// appointmentEvent is the SIU trigger event of the change from o to n
// (either nil: created, deleted), or "" for none.
func appointmentEvent(o, n *apptState) string {
	wasKnown := o != nil && slices.Contains(known, o.Status)
	switch {
	case n == nil:
		if wasKnown {
			return EventCancelled
		}
	case !wasKnown:
		if n.Status == "booked" {
			return EventBooked
		}
	case n.Status == "cancelled" || n.Status == "entered-in-error":
		return EventCancelled
	case n.Status == "noshow" && o.Status != "noshow":
		return EventNoShow
	case slices.Contains(known, n.Status):
		if differ(o, n, moved) {
			return EventRescheduled
		}
		if differ(o, n, compared) {
			return EventModified
		}
	}
	return ""
}

// watchAppointment notes an appointment event that concerns the instance.
func (a *Adapter) watchAppointment(ctx context.Context, tx *write.Tx, c *write.Change) error {
	var o, n *apptState
	var err error
	if c.Old != nil {
		if o, err = readAppt(c.Old.JSON); err != nil {
			return fmt.Errorf("Appointment/%s: %w", c.ID, err)
		}
	}
	res := &fhir.Resource{Type: "Appointment", ID: c.ID}
	if c.New != nil {
		res.JSON = c.New.Bytes()
		if n, err = readAppt(res.JSON); err != nil {
			return fmt.Errorf("Appointment/%s: %w", c.ID, err)
		}
	}
	event := appointmentEvent(o, n)
	if event == "" {
		return nil
	}
	var slots []r4.Reference
	if o != nil {
		slots = append(slots, o.Slot...)
	}
	if n != nil {
		slots = append(slots, n.Slot...)
	}
	out := a.pending(tx)
	mine, err := a.ownsAppointment(ctx, cached{tx, out.seen}, slots, res, c.Old)
	if err != nil || !mine {
		return err
	}
	ev := &apptEvent{event: event, res: res}
	switch {
	case n == nil: // deleted: announced as the last version, entered in error
		res.JSON, res.Version, ev.status = c.Old.JSON, c.Old.Version, "entered-in-error"
	case c.Old != nil: // the version this write makes
		res.Version = c.Old.Version + 1
	default:
		if res.Version, err = queuedVersion(ctx, tx, c.ID); err != nil {
			return err
		}
	}
	if n != nil {
		ev.replaces = replaced(n.Extension)
	}
	out.appts = append(out.appts, ev)
	return nil
}

// replaced is the id of the appointment an appointment replaces, or "".
func replaced(exts []r4.Extension) string {
	for _, e := range elem.Extensions(exts, booking.ExtReplaces) {
		if e.ValueReference != nil {
			if typ, id, ok := fhir.SplitReference(elem.Str(e.ValueReference.Reference)); ok && typ == "Appointment" {
				return id
			}
		}
	}
	return ""
}

// ownsAppointment reports whether the PAS owns the appointment: one of
// its slots is on a Schedule of one of the instance's services, or (for
// one recorded without slots) such a service takes part.
func (a *Adapter) ownsAppointment(ctx context.Context, tx store.Reader, slots []r4.Reference, res *fhir.Resource, old *fhir.Resource) (bool, error) {
	seen := map[string]bool{}
	for _, ref := range slots {
		r := elem.Str(ref.Reference)
		if seen[r] {
			continue
		}
		seen[r] = true
		typ, id, ok := fhir.SplitReference(r)
		if !ok || typ != "Slot" {
			continue
		}
		sl, err := readOrNil(ctx, tx, "Slot", id)
		if err != nil {
			return false, err
		}
		if sl == nil {
			continue
		}
		var sv slotView
		if err := json.Unmarshal(sl.JSON, &sv); err != nil {
			return false, fmt.Errorf("Slot/%s: %w", id, err)
		}
		styp, sid, ok := fhir.SplitReference(elem.Str(sv.Schedule.Reference))
		if !ok || styp != "Schedule" {
			continue
		}
		if svc, err := a.scheduleService(ctx, tx, sid); err != nil || svc != "" {
			return err == nil, err
		}
	}
	if len(slots) > 0 {
		return false, nil
	}
	for _, b := range [][]byte{res.JSON, jsonOf(old)} {
		var v struct {
			Participant []struct {
				Actor r4.Reference `json:"actor"`
			} `json:"participant"`
		}
		if len(b) == 0 || json.Unmarshal(b, &v) != nil {
			continue
		}
		for _, p := range v.Participant {
			if a.isService(elem.Str(p.Actor.Reference)) {
				return true, nil
			}
		}
	}
	return false, nil
}

func jsonOf(r *fhir.Resource) []byte {
	if r == nil {
		return nil
	}
	return r.JSON
}

// isService reports whether ref names one of the instance's services.
func (a *Adapter) isService(ref string) bool {
	typ, id, ok := fhir.SplitReference(ref)
	return ok && typ == "HealthcareService" && a.services[id]
}

// taskState is what Watch reads of a referral Task.
type taskState struct {
	Code           r4.CodeableConcept `json:"code"`
	BusinessStatus r4.CodeableConcept `json:"businessStatus"`
	Focus          r4.Reference       `json:"focus"`
	Owner          r4.Reference       `json:"owner"`
	Extension      []r4.Extension     `json:"extension"`
}

func (t *taskState) state() referral.State {
	return referral.State(elem.CodeIn(t.BusinessStatus, referral.StateSystem))
}

// watchTask notes a referral accepted, rejected or redirected that
// concerns the instance.
func (a *Adapter) watchTask(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var o, n taskState
	if c.Old != nil {
		if err := json.Unmarshal(c.Old.JSON, &o); err != nil {
			return fmt.Errorf("Task/%s: %w", c.ID, err)
		}
	}
	if err := json.Unmarshal(c.New.Bytes(), &n); err != nil {
		return fmt.Errorf("Task/%s: %w", c.ID, err)
	}
	if !elem.HasCoding(n.Code, referral.TaskCodeSystem, referral.TaskCode) {
		return nil
	}
	to := n.state()
	if to == o.state() || (to != referral.Accepted && to != referral.Rejected && to != referral.Redirected) {
		return nil
	}
	typ, id, ok := fhir.SplitReference(elem.Str(n.Focus.Reference))
	if !ok || typ != "ServiceRequest" {
		return nil
	}
	sr, err := readOrNil(ctx, tx, "ServiceRequest", id)
	if err != nil || sr == nil {
		return err
	}
	var v struct {
		Subject   r4.Reference   `json:"subject"`
		Requester r4.Reference   `json:"requester"`
		Performer []r4.Reference `json:"performer"`
	}
	if err := json.Unmarshal(sr.JSON, &v); err != nil {
		return fmt.Errorf("ServiceRequest/%s: %w", id, err)
	}
	// Whose it was: the referral's performer (a redirection changes it
	// after the Task moves) and the Task's owner before the move.
	var with string
	for _, ref := range append(slices.Clone(v.Performer), o.Owner) {
		mine, err := a.ownsProvider(ctx, tx, elem.Str(ref.Reference))
		if err != nil {
			return err
		}
		if mine {
			with = elem.Str(ref.Reference)
			break
		}
	}
	if with == "" {
		return nil
	}
	rs := &ReferralSubject{Referral: sr}
	switch to {
	case referral.Accepted:
		rs.Status = ReferralAccepted
	case referral.Rejected:
		rs.Status = ReferralRejected
	case referral.Redirected:
		target := elem.Str(n.Owner.Reference)
		for _, e := range elem.Extensions(n.Extension, referral.RedirectedExtension) {
			if e.ValueReference != nil {
				target = elem.Str(e.ValueReference.Reference)
			}
		}
		rs.Status = ReferralRejected
		if stays, err := a.ownsProvider(ctx, tx, target); err != nil {
			return err
		} else if stays {
			rs.Status = ReferralPending
		}
		rs.ReasonCode, rs.ReasonText = "redirected", "Redirected to "+target
	}
	if ptyp, pid, ok := fhir.SplitReference(elem.Str(v.Subject.Reference)); ok && ptyp == "Patient" {
		if rs.Patient, err = readOrNil(ctx, tx, "Patient", pid); err != nil {
			return err
		}
	}
	if rs.RequesterID, rs.RequesterName, err = a.provider(ctx, tx, elem.Str(v.Requester.Reference)); err != nil {
		return err
	}
	if rs.PerformerID, rs.PerformerName, err = a.provider(ctx, tx, with); err != nil {
		return err
	}
	out := a.pending(tx)
	out.refs = append(out.refs, rs)
	return nil
}

// ownsProvider reports whether ref (a HealthcareService or an
// Organization) is the instance's: one of its services, a service its
// trust provides, or its trust (by ODS code).
func (a *Adapter) ownsProvider(ctx context.Context, tx *write.Tx, ref string) (bool, error) {
	if a.isService(ref) {
		return true, nil
	}
	typ, id, ok := fhir.SplitReference(ref)
	if !ok {
		return false, nil
	}
	switch typ {
	case "HealthcareService":
		hs, err := readOrNil(ctx, tx, typ, id)
		if err != nil || hs == nil {
			return false, err
		}
		var v struct {
			ProvidedBy r4.Reference `json:"providedBy"`
		}
		if err := json.Unmarshal(hs.JSON, &v); err != nil {
			return false, fmt.Errorf("%s: %w", ref, err)
		}
		if otyp, _, ok := fhir.SplitReference(elem.Str(v.ProvidedBy.Reference)); !ok || otyp != "Organization" {
			return false, nil
		}
		return a.ownsProvider(ctx, tx, elem.Str(v.ProvidedBy.Reference))
	case "Organization":
		org, err := readOrNil(ctx, tx, typ, id)
		if err != nil || org == nil {
			return false, err
		}
		var v struct {
			Identifier []r4.Identifier `json:"identifier"`
		}
		if err := json.Unmarshal(org.JSON, &v); err != nil {
			return false, fmt.Errorf("%s: %w", ref, err)
		}
		ods := a.env.Principal.Organization
		for _, i := range v.Identifier {
			if elem.Str(i.System) == referral.ODSSystem && ods != "" && elem.Str(i.Value) == ods {
				return true, nil
			}
		}
	}
	return false, nil
}

// provider returns, for a PRD segment, the identifier (an organisation's
// ODS code, else the resource's id) and name of ref.
func (a *Adapter) provider(ctx context.Context, tx *write.Tx, ref string) (id, name string, err error) {
	typ, rid, ok := fhir.SplitReference(ref)
	if !ok {
		return "", "", nil
	}
	res, err := readOrNil(ctx, tx, typ, rid)
	if err != nil || res == nil {
		return "", "", err
	}
	var v struct {
		Name       any             `json:"name"` // a string, or a Practitioner's HumanNames
		Identifier []r4.Identifier `json:"identifier"`
	}
	_ = json.Unmarshal(res.JSON, &v)
	id = rid
	if ods := identifierOf(v.Identifier, referral.ODSSystem); ods != "" {
		id = ods
	}
	if s, ok := v.Name.(string); ok {
		name = s
	}
	return id, name, nil
}

// flush queues the transaction's messages in the outbox: it runs just
// before the transaction commits.
func (a *Adapter) flush(ctx context.Context, tx *write.Tx, o *outgoing) error {
	ob, ok := tx.Tx.(store.OutboxTx)
	if !ok {
		return fmt.Errorf("adapter %s: the store's transactions keep no outbox", a.env.Name)
	}
	// A cancellation and the booking that replaces it are a reschedule.
	for _, ev := range o.appts {
		if ev.event != EventBooked || ev.replaces == "" {
			continue
		}
		for _, prev := range o.appts {
			if prev.res.ID == ev.replaces && prev.event == EventCancelled && !prev.dropped {
				prev.dropped, ev.event = true, EventRescheduled
			}
		}
	}
	sent := 0
	for _, ev := range o.appts {
		if ev.dropped {
			continue
		}
		placer, err := a.placer(ctx, cached{tx, o.seen}, ev.res.ID, ev.replaces)
		if err != nil {
			return err
		}
		// The message is built when it is sent (deferred.go).
		if err := a.enqueueEvent(ctx, ob, queuedEvent{Event: ev.event, Appointment: ev.res.ID, Version: ev.res.Version,
			Status: ev.status, Placer: placer, At: tx.Now()}); err != nil {
			return err
		}
		sent++
	}
	b := a.builder()
	for _, rs := range o.refs {
		m, err := b.REF(rs)
		if err != nil {
			return fmt.Errorf("adapter %s: REF^I13 of %s: %w", a.env.Name, rs.Referral.Reference(), err)
		}
		if err := a.enqueue(ctx, ob, rs.Referral.Reference(), m); err != nil {
			return err
		}
		sent++
	}
	if sent > 0 {
		tx.AfterCommit(func(context.Context) error { a.dispatcher.Wake(); return nil })
	}
	return nil
}

// placer is the placer appointment id (SCH-1) of appointment id, which
// replaces the appointment replaces (or none): the first appointment of
// its chain of replacements that the PAS owns (one moved in from another
// service starts a chain of its own).
func (a *Adapter) placer(ctx context.Context, rd store.Reader, id, replaces string) (string, error) {
	for range maxChain {
		if replaces == "" {
			return id, nil
		}
		prev, err := readOrNil(ctx, rd, "Appointment", replaces)
		if err != nil {
			return "", err
		}
		if prev == nil {
			return id, nil
		}
		var v struct {
			Slot      []r4.Reference `json:"slot"`
			Extension []r4.Extension `json:"extension"`
		}
		if err := json.Unmarshal(prev.JSON, &v); err != nil {
			return "", fmt.Errorf("Appointment/%s: %w", replaces, err)
		}
		if mine, err := a.ownsAppointment(ctx, rd, v.Slot, prev, nil); err != nil {
			return "", err
		} else if !mine {
			return id, nil
		}
		id, replaces = replaces, replaced(v.Extension)
	}
	return id, nil
}

// enqueue queues m for the PAS under key.
func (a *Adapter) enqueue(ctx context.Context, ob store.OutboxTx, key string, m *hl7v2.Message) error {
	_, err := ob.Enqueue(ctx, store.Message{Destination: a.env.Name, Key: key, ControlID: m.ControlID(),
		ContentType: ContentType, Payload: m.Encode(), Created: a.env.Now()})
	if err != nil {
		return fmt.Errorf("adapter %s: queueing %s for the PAS: %w", a.env.Name, key, err)
	}
	return nil
}

// Wake nudges the dispatcher to look for messages now: after an operator
// replays a dead letter, say. It does nothing without a send address.
func (a *Adapter) Wake() {
	if a.dispatcher != nil {
		a.dispatcher.Wake()
	}
}
