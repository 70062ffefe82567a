package gpconnect

// Changes made in Signpost to appointments the practice booked, sent to
// the practice through the outbox (store.OutboxTx, queued in the change's
// own transaction; delivered by adapters/dispatch, in order per
// appointment, retried with back-off, a refusal a dead letter in the
// operator view):
//
//   - a cancellation (status cancelled or noshow-free, or a delete) as
//     GP Connect's cancel (the practice's appointment read, then PUT with
//     status cancelled and the cancellation reason);
//   - an amendment of the fields GP Connect lets a consumer amend
//     (comment, description) as its amend; a change of anything else the
//     practice booked (start, end, slot, patient) is refused (422): cancel
//     and book again;
//   - the reconciliation of a booking the practice may have made but
//     Signpost did not keep (confirm.go): a cancellation that, when the
//     practice's appointment id is not known, first finds it among the
//     patient's appointments by slot.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// MessageType is the outbox content type of the instance's messages.
const MessageType = "application/vnd.signpost.gpconnect+json"

// The operations of a message.
const (
	opCancel = "cancel"
	opAmend  = "amend"
)

// message is one change to send to the practice (an outbox payload).
type message struct {
	Op          string `json:"op"`
	Appointment string `json:"appointment,omitempty"` // the practice's id; "" for a reconciliation that must find it
	Patient     string `json:"patient,omitempty"`     // the practice's patient id (to find it)
	Slot        string `json:"slot,omitempty"`        // the practice's slot id (to find it)
	Start       string `json:"start,omitempty"`       // the slot's start (to find it)
	Reason      string `json:"reason,omitempty"`      // a cancellation's reason
	Comment     string `json:"comment,omitempty"`     // an amendment's comment
	Description string `json:"description,omitempty"` // … and description
	Who         who    `json:"who"`                   // the principal who asked, for the JWT
}

// who is the part of a principal the JWT names.
type who struct {
	Subject      string `json:"sub,omitempty"`
	ClientID     string `json:"client,omitempty"`
	Organization string `json:"org,omitempty"`
	Role         string `json:"role,omitempty"`
}

func whoOf(p *auth.Principal) who {
	if p == nil {
		return who{}
	}
	return who{Subject: p.Subject, ClientID: p.ClientID, Organization: p.Organization, Role: string(p.Role)}
}

func (w who) principal() *auth.Principal {
	return &auth.Principal{Subject: w.Subject, ClientID: w.ClientID, Organization: w.Organization, Role: auth.Role(w.Role)}
}

// cancelMessage is the cancellation of the practice's appointment
// practiceAppt ("" to find it by b's patient and slot), asked by p.
func (a *Adapter) cancelMessage(p *auth.Principal, practiceAppt, patient string, b *gpBooking, reason string) *message {
	return &message{Op: opCancel, Appointment: practiceAppt, Patient: patient, Slot: b.slot, Start: b.start, Reason: reason, Who: whoOf(p)}
}

// Watched implements adapters.Watcher.
func (a *Adapter) Watched() []string { return []string{"Appointment"} }

// Watch implements adapters.Watcher: a booking newly awaiting the
// instance is asked of the practice (confirm.go); a change to an
// appointment the practice booked goes to it through the outbox.
func (a *Adapter) Watch(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.Type != "Appointment" || a.env.FromSelf(ctx) {
		return nil
	}
	if c.New != nil && booking.AwaitsConfirmation(c.New.Bytes()) == a.env.Name &&
		(c.Old == nil || booking.AwaitsConfirmation(c.Old.JSON) == "") {
		return a.watchBooking(ctx, tx, c)
	}
	if c.Old == nil || !booking.HoldsSlots(c.Old.JSON) {
		return nil
	}
	var old gpAppointment
	if err := json.Unmarshal(c.Old.JSON, &old); err != nil {
		return err
	}
	practiceAppt := a.practiceID(old.Identifier, AppointmentSystem)
	if practiceAppt == "" {
		return nil
	}
	p, _ := auth.FromContext(ctx)
	if c.New == nil || !booking.HoldsSlots(c.New.Bytes()) {
		reason := "Cancelled through Signpost"
		if c.New != nil {
			var nw gpAppointment
			if err := json.Unmarshal(c.New.Bytes(), &nw); err != nil {
				return err
			}
			if r := nw.reason(); r != "" {
				reason = r
			}
		}
		return a.enqueue(ctx, tx, c.ID, &message{Op: opCancel, Appointment: practiceAppt, Reason: reason, Who: whoOf(p)})
	}
	var nw gpAppointment
	if err := json.Unmarshal(c.New.Bytes(), &nw); err != nil {
		return err
	}
	if nw.Start != old.Start || nw.End != old.End || !slices.Equal(refs(nw.Slot), refs(old.Slot)) || !slices.Equal(nw.patients(), old.patients()) {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment",
			"Appointment/%s is booked at GP practice %s, where only its comment and description can be amended: cancel it and book again", c.ID, a.set.ODSCode).
			WithDetails(booking.ErrNotAmendable)
	}
	if nw.Comment == old.Comment && nw.Description == old.Description {
		return nil
	}
	return a.enqueue(ctx, tx, c.ID, &message{Op: opAmend, Appointment: practiceAppt, Comment: nw.Comment, Description: nw.Description, Who: whoOf(p)})
}

// gpAppointment is the part of an R4 Appointment the instance compares.
type gpAppointment struct {
	Status            string              `json:"status"`
	Identifier        []r4.Identifier     `json:"identifier"`
	Start             string              `json:"start"`
	End               string              `json:"end"`
	Comment           string              `json:"comment"`
	Description       string              `json:"description"`
	Slot              []r4.Reference      `json:"slot"`
	CancelationReason *r4.CodeableConcept `json:"cancelationReason"`
	Participant       []struct {
		Actor *r4.Reference `json:"actor"`
	} `json:"participant"`
}

// reason is the cancellation reason's text (or first coding's display or
// code).
func (g *gpAppointment) reason() string {
	cr := g.CancelationReason
	if cr == nil {
		return ""
	}
	if t := elem.Str(cr.Text); t != "" {
		return t
	}
	for _, c := range cr.Coding {
		if d := elem.Str(c.Display); d != "" {
			return d
		}
		if d := elem.Str(c.Code); d != "" {
			return d
		}
	}
	return ""
}

func (g *gpAppointment) patients() []string {
	var out []string
	for _, p := range g.Participant {
		if p.Actor != nil {
			if typ, _, ok := fhir.SplitReference(elem.Str(p.Actor.Reference)); ok && typ == "Patient" {
				out = append(out, elem.Str(p.Actor.Reference))
			}
		}
	}
	return out
}

func refs(rs []r4.Reference) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = elem.Str(r.Reference)
	}
	return out
}

// enqueue queues m in tx's outbox, keyed by the Signpost appointment (so
// an appointment's messages reach the practice in order), and wakes the
// dispatcher once tx commits.
func (a *Adapter) enqueue(ctx context.Context, tx *write.Tx, appointmentID string, m *message) error {
	ob, ok := tx.Tx.(store.OutboxTx)
	if !ok {
		return fmt.Errorf("adapter %s: the store's transactions keep no outbox", a.env.Name)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := ob.Enqueue(ctx, store.Message{Destination: a.env.Name, Key: "Appointment/" + appointmentID,
		ControlID: uuid.NewString(), ContentType: MessageType, Payload: payload, Created: tx.Now()}); err != nil {
		return err
	}
	tx.AfterCommit(func(context.Context) error { a.Wake(); return nil })
	return nil
}

// sender delivers the instance's messages to the practice
// (dispatch.Sender).
type sender struct{ a *Adapter }

// Send implements dispatch.Sender: a 2xx answer delivers the message; a
// practice's 4xx refusal (other than a version conflict) makes it a dead
// letter; a 409 version conflict, a 5xx or no answer retries it.
func (s sender) Send(ctx context.Context, q store.Queued) (dispatch.Outcome, error) {
	var m message
	if err := json.Unmarshal(q.Payload, &m); err != nil {
		return dispatch.Outcome{Result: dispatch.Rejected, Reason: "unreadable message: " + err.Error()}, nil
	}
	a := s.a
	p := m.Who.principal()
	if m.Appointment == "" {
		id, out, err := a.findAppointment(ctx, p, &m)
		if err != nil || out != nil {
			return deref(out), err
		}
		if id == "" {
			return dispatch.Outcome{Result: dispatch.Accepted, Reason: "the practice holds no appointment on the slot: nothing to cancel"}, nil
		}
		m.Appointment = id
	}
	interaction := stu3.InteractionCancelAppointment
	if m.Op == opAmend {
		interaction = stu3.InteractionAmendAppointment
	}
	cur, etag, out, err := a.readAppointment(ctx, p, m.Appointment)
	if err != nil || out != nil {
		return deref(out), err
	}
	if m.Op == opCancel && cur["status"] == "cancelled" {
		return dispatch.Outcome{Result: dispatch.Accepted}, nil
	}
	body, err := a.edited(cur, &m)
	if err != nil {
		return dispatch.Outcome{Result: dispatch.Rejected, Reason: err.Error()}, nil
	}
	resp, err := a.client.do(ctx, request{interaction: interaction, method: http.MethodPut,
		path: "Appointment/" + url.PathEscape(m.Appointment), body: body, who: p, ifMatch: etag})
	if err != nil {
		return dispatch.Outcome{}, err
	}
	return outcome(resp), nil
}

func deref(o *dispatch.Outcome) dispatch.Outcome {
	if o == nil {
		return dispatch.Outcome{}
	}
	return *o
}

// outcome is what becomes of a message the practice answered resp to.
func outcome(resp *response) dispatch.Outcome {
	switch {
	case resp.status/100 == 2:
		return dispatch.Outcome{Result: dispatch.Accepted}
	case resp.status == http.StatusConflict || resp.status == http.StatusPreconditionFailed || resp.status == http.StatusTooManyRequests || resp.status >= 500:
		return dispatch.Outcome{Result: dispatch.Failed, Reason: practiceError(resp).Error()}
	}
	return dispatch.Outcome{Result: dispatch.Rejected, Reason: practiceError(resp).Error()}
}

// readAppointment reads the practice's appointment id (STU3) and its
// version's ETag; a non-2xx answer is an outcome.
func (a *Adapter) readAppointment(ctx context.Context, p *auth.Principal, id string) (map[string]any, string, *dispatch.Outcome, error) {
	resp, err := a.client.do(ctx, request{interaction: stu3.InteractionReadAppointment, method: http.MethodGet, path: "Appointment/" + url.PathEscape(id), who: p})
	if err != nil {
		return nil, "", nil, err
	}
	if resp.status != http.StatusOK {
		o := outcome(resp)
		return nil, "", &o, nil
	}
	var cur map[string]any
	if err := json.Unmarshal(resp.body, &cur); err != nil {
		return nil, "", &dispatch.Outcome{Result: dispatch.Failed, Reason: "the practice's appointment cannot be read: " + err.Error()}, nil
	}
	return cur, resp.header.Get("ETag"), nil, nil
}

// findAppointment finds the practice's booked appointment of m's patient
// on m's slot ("" when there is none) among the patient's appointments
// on the slot's day.
func (a *Adapter) findAppointment(ctx context.Context, p *auth.Principal, m *message) (string, *dispatch.Outcome, error) {
	if m.Patient == "" || m.Slot == "" {
		return "", nil, nil
	}
	start, err := time.Parse(time.RFC3339, m.Start)
	if err != nil {
		return "", &dispatch.Outcome{Result: dispatch.Rejected, Reason: fmt.Sprintf("the slot's start %q cannot be read", m.Start)}, nil
	}
	day := start.Format(time.DateOnly)
	q := url.Values{"start": {"ge" + day, "le" + start.AddDate(0, 0, 1).Format(time.DateOnly)}}
	resp, err := a.client.do(ctx, request{interaction: stu3.InteractionPatientAppointments, method: http.MethodGet, path: "Patient/" + url.PathEscape(m.Patient) + "/Appointment", query: q, who: p})
	if err != nil {
		return "", nil, err
	}
	if resp.status != http.StatusOK {
		o := outcome(resp)
		return "", &o, nil
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				ResourceType string         `json:"resourceType"`
				ID           string         `json:"id"`
				Status       string         `json:"status"`
				Slot         []r4.Reference `json:"slot"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(resp.body, &bundle); err != nil {
		return "", &dispatch.Outcome{Result: dispatch.Failed, Reason: "the patient's appointments cannot be read: " + err.Error()}, nil
	}
	for _, e := range bundle.Entry {
		r := e.Resource
		if r.ResourceType != "Appointment" || r.Status == "cancelled" {
			continue
		}
		for _, s := range r.Slot {
			if _, id, ok := fhir.SplitReference(elem.Str(s.Reference)); ok && id == m.Slot {
				return r.ID, nil, nil
			}
		}
	}
	return "", nil, nil
}
