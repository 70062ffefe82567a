package pas

// Messages about appointments are built at send time, not in the write
// transaction.
//
// The transaction that books, moves or cancels an appointment queues, in
// the outbox and in the same transaction as the change, a small record of
// what happened (EventContentType): the trigger event, decided from the
// versions before and after the change; the appointment's id and the
// version the message announces; the placer id (SCH-1, ARQ-1), which is
// also the ordering key; the status announced when it is not the
// version's (a deleted appointment is announced as entered-in-error); and
// the commit's time. The control id (MSH-10) is fixed then, in the
// outbox row. The single writer thus does no more than decide the event
// and insert a short row; reading the patient, the slots, the service and
// the referral, and building the ER7, happen in the dispatcher, outside
// the writer, each time the message is sent.
//
// What the message says is what was true at the commit, however late it
// is sent: the appointment is read at the version recorded (the store
// keeps every version), and what it points at (slots, schedule, service,
// patient, referral, practitioners) as it was at the commit's time (asOf:
// the newest version whose lastUpdated is not after it). Every write of a
// transaction carries the transaction's time, at millisecond precision,
// and the store's one writer takes that time in commit order; so the
// version read is the one current at the commit, except that a change
// committed later within the same millisecond shows as well.
//
// A resend builds the same bytes: MSH-7 is the commit's time and MSH-10
// the row's control id. A record that cannot be built (its appointment
// version gone, the builder refuses it) is rejected, becoming a dead
// letter with the reason; a store error while building is retried like a
// failed send.
//
// Referral messages (REF^I13) are queued as ER7, built in the
// transaction: their content is what the Task's transition decided there.
// The sender passes ER7 payloads through as they are (so are messages
// queued by an earlier release).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// EventContentType is the media type of the outbox records of appointment
// events, built into their HL7 v2 message at send time.
const EventContentType = "application/vnd.signpost.pas-event+json"

// queuedEvent is the outbox record of one appointment event.
type queuedEvent struct {
	// Event is the trigger event: SIU (EventBooked … EventNoShow) or SRM
	// (EventRequestModify, EventRequestCancel).
	Event       string `json:"event"`
	Appointment string `json:"appointment"` // the Appointment's id
	Version     int64  `json:"version"`     // the version announced
	// Status, when not "", is announced instead of the version's.
	Status string `json:"status,omitempty"`
	// Placer is the placer appointment id (Subject.PlacerID).
	Placer string `json:"placer"`
	// At is the commit's time (write.Tx.Now): MSH-7, and when the
	// resources the appointment points at are read as of.
	At time.Time `json:"at"`
}

// enqueueEvent queues ev in ob, under the key of its placer id, with a
// fresh control id.
func (a *Adapter) enqueueEvent(ctx context.Context, ob store.OutboxTx, ev queuedEvent) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	key := "Appointment/" + ev.Placer
	_, err = ob.Enqueue(ctx, store.Message{Destination: a.env.Name, Key: key, ControlID: NewControlID(),
		ContentType: EventContentType, Payload: payload, Created: a.env.Now()})
	if err != nil {
		return fmt.Errorf("adapter %s: queueing %s for the PAS: %w", a.env.Name, key, err)
	}
	return nil
}

// queuedVersion is the version of Appointment/id that a write in tx whose
// change has no current version (c.Old == nil) creates: one more than a
// deleted one's tombstone, else 1.
func queuedVersion(ctx context.Context, tx *write.Tx, id string) (int64, error) {
	res, err := tx.Read(ctx, "Appointment", id)
	switch {
	case fhir.KindOf(err) == fhir.NotFound:
		return 1, nil
	case err == nil || fhir.KindOf(err) == fhir.Gone:
		return res.Version + 1, nil
	}
	return 0, err
}

// sender is the instance's dispatch.Sender: it builds an event record's
// message and sends it, and ER7 payloads as they are, through dispatch.HL7.
type sender struct {
	a   *Adapter
	hl7 dispatch.HL7
}

// Send implements dispatch.Sender.
func (s sender) Send(ctx context.Context, m store.Queued) (dispatch.Outcome, error) {
	if m.ContentType == EventContentType {
		raw, err := s.a.render(ctx, m)
		var bad unbuildable
		if errors.As(err, &bad) {
			return dispatch.Outcome{Result: dispatch.Rejected, Reason: bad.Error()}, nil
		}
		if err != nil {
			return dispatch.Outcome{}, fmt.Errorf("building the message: %w", err)
		}
		m.ContentType, m.Payload = ContentType, raw
	}
	return s.hl7.Send(ctx, m)
}

// unbuildable is the error of a record that can never be built.
type unbuildable struct{ err error }

func (u unbuildable) Error() string { return "the message cannot be built: " + u.err.Error() }

// render builds the ER7 of event record m: see the file's comment. Its
// error is unbuildable when building again cannot help.
func (a *Adapter) render(ctx context.Context, m store.Queued) ([]byte, error) {
	var ev queuedEvent
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		return nil, unbuildable{fmt.Errorf("the record: %w", err)}
	}
	if ev.Appointment == "" || ev.Version < 1 || ev.At.IsZero() {
		return nil, unbuildable{fmt.Errorf("the record names no appointment version or time")}
	}
	appt, err := a.readVersion(ctx, ev.Appointment, ev.Version)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil, unbuildable{err}
	} else if err != nil {
		return nil, err
	}
	if ev.Status != "" {
		obj, err := fhir.ParseObject(appt.JSON)
		if err != nil {
			return nil, unbuildable{err}
		}
		obj.Set("status", ev.Status)
		appt = &fhir.Resource{Type: appt.Type, ID: appt.ID, Version: appt.Version, LastUpdated: appt.LastUpdated, JSON: obj.Bytes()}
	}
	s, err := LoadSubject(ctx, asOf{rd: a.store, at: ev.At}, appt)
	if err != nil {
		return nil, err
	}
	s.PlacerID = ev.Placer
	b := a.builder()
	b.Now = func() time.Time { return ev.At }
	b.ControlID = m.ControlID
	var msg interface{ Encode() []byte }
	switch ev.Event {
	case EventRequestBooking, EventRequestModify, EventRequestCancel:
		msg, err = b.SRM(ev.Event, s)
	default:
		msg, err = b.SIU(ev.Event, s)
	}
	if err != nil {
		return nil, unbuildable{fmt.Errorf("%s of Appointment/%s: %w", ev.Event, ev.Appointment, err)}
	}
	return msg.Encode(), nil
}

// readVersion reads version of Appointment/id: usually still the current
// one, which the store answers from its caches; else from its history.
func (a *Adapter) readVersion(ctx context.Context, id string, version int64) (*fhir.Resource, error) {
	if cur, err := a.store.Read(ctx, "Appointment", id); err == nil && cur.Version == version {
		return cur, nil
	}
	return a.store.ReadVersion(ctx, "Appointment", id, version)
}

// asOf is a store.Reader of resources as they were at a commit's time at:
// a read gives the newest version whose lastUpdated is not after at (a
// deleted one gives fhir.Gone, one not yet created fhir.NotFound).
// Searches are not answered: they would see the present.
type asOf struct {
	rd store.Reader
	at time.Time
}

// Read implements store.Reader.
func (r asOf) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	cur, err := r.rd.Read(ctx, typ, id)
	switch k := fhir.KindOf(err); {
	case err == nil || k == fhir.Gone:
		if cur != nil && !cur.LastUpdated.After(r.at) {
			return cur, err // the usual case: unchanged since
		}
	case k != fhir.NotFound:
		return nil, err
	}
	// Changed (or created) since: the newest version before at's next
	// millisecond, lastUpdated being written to the millisecond.
	page, err := r.rd.History(ctx, store.HistoryQuery{Type: typ, ID: id, Before: r.at.Truncate(time.Millisecond).Add(time.Millisecond), Count: 1})
	if err != nil {
		return nil, err
	}
	if len(page.Versions) == 0 {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s did not exist at %s", typ, id, r.at.Format(time.RFC3339Nano))
	}
	v := page.Versions[0]
	if v.Deleted {
		return v, fhir.Errorf(fhir.Gone, "deleted", "", "%s/%s was deleted at %s", typ, id, r.at.Format(time.RFC3339Nano))
	}
	return v, nil
}

// ReadVersion implements store.Reader: a version is the same at any time.
func (r asOf) ReadVersion(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	return r.rd.ReadVersion(ctx, typ, id, version)
}

// History implements store.Reader: the versions up to at.
func (r asOf) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	if end := r.at.Truncate(time.Millisecond).Add(time.Millisecond); q.Before.IsZero() || q.Before.After(end) {
		q.Before = end
	}
	return r.rd.History(ctx, q)
}

// Search implements store.Reader: it refuses, as a search would see the
// present, not the resources as they were at.
func (r asOf) Search(context.Context, *search.Query) (*store.Page, error) {
	return nil, errors.New("pas: a search cannot be answered as of a past time")
}
