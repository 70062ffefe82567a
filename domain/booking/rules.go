package booking

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// own is the write.PutOptions of the writes booking itself makes (a slot
// claimed or freed by an appointment, a participant status set from an
// AppointmentResponse): the rules that guard against clients let them
// pass. It applies to that write only, not to the writes its rules make.
var own = write.PutOptions{By: "booking"}

// isOwn reports whether booking itself makes the write c.
func isOwn(c *write.Change) bool { return c.By == own.By }

// prepareAppointment fills start and end of a booking from its slots when
// the client left them out, before validation requires them (app-3).
func (b *Service) prepareAppointment(ctx context.Context, r store.Reader, obj *fhir.Object) (bool, error) {
	if obj.Has("start") && obj.Has("end") {
		return false, nil
	}
	a, err := decode[appointment](obj.Bytes())
	if err != nil || !a.live() || len(a.Slot) == 0 {
		return false, nil
	}
	ids, err := a.slotIDs()
	if err != nil {
		return false, nil // the rule reports it
	}
	var first, last *slot
	var firstT, lastT time.Time
	for i, id := range ids {
		res, err := r.Read(ctx, "Slot", id)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return false, fhir.Errorf(fhir.Unprocessable, "not-found", "Appointment.slot["+itoa(i)+"]", "Slot/%s does not exist", id)
		} else if err != nil {
			return false, err
		}
		s, err := decode[slot](res.JSON)
		if err != nil {
			return false, nil
		}
		st, ok1 := parseInstant(s.Start)
		en, ok2 := parseInstant(s.End)
		if !ok1 || !ok2 {
			return false, nil
		}
		if first == nil || st.Before(firstT) {
			first, firstT = s, st
		}
		if last == nil || en.After(lastT) {
			last, lastT = s, en
		}
	}
	if !obj.Has("start") {
		obj.SetAfter("status", "start", first.Start)
	}
	if !obj.Has("end") {
		obj.SetAfter("start", "end", last.End)
	}
	return true, nil
}

// appointmentRule keeps an Appointment's slots in step with its status and
// enforces the booking and amendment rules; a write carrying an unused
// Idempotency-Key records its result.
func (b *Service) appointmentRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if err := b.appointmentRules(ctx, tx, c); err != nil {
		return err
	}
	return b.rememberWrite(ctx, tx, c, isOwn(c) || newlyAwaiting(c))
}

func (b *Service) appointmentRules(ctx context.Context, tx *write.Tx, c *write.Change) error {
	var old *appointment
	var oldObj *fhir.Object
	if c.Old != nil {
		var err error
		if old, err = decode[appointment](c.Old.JSON); err != nil {
			return err
		}
		if oldObj, err = fhir.ParseObject(c.Old.JSON); err != nil {
			return err
		}
	}
	if c.New == nil { // a delete frees what the appointment held
		if old != nil && old.live() {
			return b.release(ctx, tx, old)
		}
		return nil
	}
	nw, err := decode[appointment](c.New.Bytes())
	if err != nil {
		return err
	}
	if old != nil {
		if err := checkAmend(isOwn(c), oldObj, c.New, old, nw); err != nil {
			return err
		}
	}
	if nw.Status == "cancelled" && nw.CancelationReason == nil {
		return fhir.Errorf(fhir.Unprocessable, "required", "Appointment.cancelationReason",
			"a cancelled appointment needs a cancelationReason")
	}
	wasLive := old != nil && old.live()
	switch {
	case !wasLive && nw.live():
		removeExtension(c.New, ExtAwaitingConfirmation) // server-owned: claim sets it
		return b.claim(ctx, tx, c, nw)
	case wasLive && !nw.live():
		removeExtension(c.New, ExtAwaitingConfirmation) // nothing left to confirm
		return b.release(ctx, tx, old)
	case wasLive && nw.live() && old.Status == "pending":
		return b.confirm(ctx, tx, c, old, nw)
	}
	removeExtension(c.New, ExtAwaitingConfirmation) // only a pending booking awaits
	return nil
}

// claim books (or holds) the slots of an appointment that did not hold
// any: every slot must exist and be free, all in one schedule, contiguous,
// bookable and not in the past; they become busy (or busy-tentative).
func (b *Service) claim(ctx context.Context, tx *write.Tx, c *write.Change, a *appointment) error {
	if len(a.Slot) == 0 {
		return nil // not a slot booking: an appointment recorded without slots
	}
	ids, err := a.slotIDs()
	if err != nil {
		return err
	}
	type claimed struct {
		res        *fhir.Resource
		slot       *slot
		start, end time.Time
	}
	var slots []claimed
	seen := map[string]bool{}
	for i, id := range ids {
		at := "Appointment.slot[" + itoa(i) + "]"
		if seen[id] {
			return fhir.Errorf(fhir.Unprocessable, "invalid", at, "Slot/%s is referenced twice", id)
		}
		seen[id] = true
		res, err := tx.Read(ctx, "Slot", id)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return fhir.Errorf(fhir.Unprocessable, "not-found", at, "Slot/%s does not exist", id)
		} else if err != nil {
			return err
		}
		s, err := decode[slot](res.JSON)
		if err != nil {
			return err
		}
		if s.Status != "free" {
			// Settled by the slot's state alone: a precheck answers it
			// without waiting for the store's writer (write.Tx.Refuse).
			return tx.Refuse(b.refused(tx, fhir.Errorf(fhir.Conflict, "conflict", at, "Slot/%s is not available: it is %s", id, s.Status).
				WithDetails(ErrSlotNotAvailable)))
		}
		st, ok1 := parseInstant(s.Start)
		en, ok2 := parseInstant(s.End)
		if !ok1 || !ok2 {
			return fhir.Errorf(fhir.Unprocessable, "invalid", at, "Slot/%s has no valid start and end", id)
		}
		if len(slots) > 0 && elem.Str(s.Schedule.Reference) != elem.Str(slots[0].slot.Schedule.Reference) {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", at,
				"Slot/%s belongs to %s, not %s: an appointment's slots must share one schedule", id, elem.Str(s.Schedule.Reference), elem.Str(slots[0].slot.Schedule.Reference))
		}
		slots = append(slots, claimed{res, s, st, en})
	}
	if tx.Probing() {
		// Every slot is free now: the transaction checks the rest, and
		// books them or finds them taken meanwhile.
		return tx.EndPrecheck()
	}
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].start.Before(slots[j].start) })
	for i := 1; i < len(slots); i++ {
		if !slots[i].start.Equal(slots[i-1].end) {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.slot",
				"the slots are not contiguous: Slot/%s ends at %s, Slot/%s starts at %s",
				slots[i-1].res.ID, slots[i-1].slot.End, slots[i].res.ID, slots[i].slot.Start)
		}
	}
	start, end := slots[0].start, slots[len(slots)-1].end
	if t, ok := parseInstant(a.Start); !ok || !t.Equal(start) {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.start",
			"start %q must equal the start of the first slot, %s", a.Start, slots[0].slot.Start)
	}
	if t, ok := parseInstant(a.End); !ok || !t.Equal(end) {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.end",
			"end %q must equal the end of the last slot, %s", a.End, slots[len(slots)-1].slot.End)
	}
	if start.Before(tx.Now()) {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.start",
			"the appointment starts at %s, in the past", a.Start)
	}
	if a.Status != "pending" && a.patient() == "" {
		return fhir.Errorf(fhir.Unprocessable, "required", "Appointment.participant",
			"a booked appointment needs a participant whose actor is the Patient")
	}
	if err := b.checkSchedule(ctx, tx, elem.Str(slots[0].slot.Schedule.Reference), start, end); err != nil {
		return err
	}
	if a.Status == "booked" { // a booking another system confirms waits for it
		cf, err := b.confirmerOf(ctx, tx, elem.Str(slots[0].slot.Schedule.Reference))
		if err != nil {
			return err
		}
		if cf != nil && cf.asks(ctx, tx, c) {
			if err := awaitConfirmation(c, a, cf); err != nil {
				return err
			}
		}
	}
	target := slotStatus(a.Status)
	for _, s := range slots {
		if err := setSlotStatus(ctx, tx, s.res, target); err != nil {
			return err
		}
	}
	b.booked(tx, target)
	if a.Status == "pending" {
		expires := tx.Now().Add(b.cfg.HoldFor)
		return setExtension(c.New, r4.Extension{Url: ExtHoldExpires, ValueInstant: elem.Opt(expires.UTC().Format(time.RFC3339Nano))})
	}
	return nil
}

// checkSchedule checks that the schedule exists, is active, offers the
// period within its planning horizon and is for a directly bookable
// service.
func (b *Service) checkSchedule(ctx context.Context, tx store.Reader, ref string, start, end time.Time) error {
	id, ok := refID(ref, "Schedule")
	if !ok {
		return fhir.Errorf(fhir.Unprocessable, "invalid", "Slot.schedule", "the slots' schedule %q is not a Schedule of this server", ref)
	}
	res, err := tx.Read(ctx, "Schedule", id)
	if err != nil {
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return fhir.Errorf(fhir.Unprocessable, "not-found", "Appointment.slot", "the slots' Schedule/%s does not exist", id)
		}
		return err
	}
	sc, err := b.schedules.Get(res.JSON)
	if err != nil {
		return err
	}
	if sc.Active != nil && !*sc.Active {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.slot", "Schedule/%s is not active", id).WithDetails(ErrNotBookable)
	}
	if !b.inHorizon(sc, start, end) {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.slot",
			"the slots lie outside the planning horizon of Schedule/%s", id).WithDetails(ErrSlotNotAvailable)
	}
	for _, actor := range sc.Actor {
		hid, ok := refID(elem.Str(actor.Reference), "HealthcareService")
		if !ok {
			continue
		}
		hres, err := tx.Read(ctx, "HealthcareService", hid)
		if err != nil {
			continue // an unknown service carries no marking
		}
		if hs, err := b.services.Get(hres.JSON); err == nil && hs.indirectlyBookable() {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.slot",
				"HealthcareService/%s is indirectly bookable: the provider books its appointments", hid).WithDetails(ErrNotBookable)
		}
	}
	return nil
}

// inHorizon reports whether [start, end) lies within the schedule's
// planning horizon (always, when it has none).
func (b *Service) inHorizon(sc *schedule, start, end time.Time) bool {
	return inHorizon(sc, start, end, b.cfg.Location)
}

// inHorizon reports whether [start, end) lies within sc's planning
// horizon, whose date-only bounds are read in loc.
func inHorizon(sc *schedule, start, end time.Time, loc *time.Location) bool {
	if sc.PlanningHorizon == nil {
		return true
	}
	if h := elem.Str(sc.PlanningHorizon.Start); h != "" {
		if lo, _, err := search.DateRange(h, loc); err == nil && start.UnixMicro() < lo {
			return false
		}
	}
	if h := elem.Str(sc.PlanningHorizon.End); h != "" {
		if _, hi, err := search.DateRange(h, loc); err == nil && end.UnixMicro() > hi {
			return false
		}
	}
	return true
}

// confirm handles a live appointment staying live after a hold: when the
// hold is confirmed its slots become busy; while it stays pending its
// expiry stays the server's.
//
// A booking another system confirms (ConfirmedBy) stays pending, its hold
// renewed, until that system's own write books it; a client's write
// cannot book it meanwhile.
func (b *Service) confirm(ctx context.Context, tx *write.Tx, c *write.Change, old, nw *appointment) error {
	ext := old.ext(ExtHoldExpires)
	waiting := old.ext(ExtAwaitingConfirmation)
	if nw.Status == "pending" {
		if waiting != nil {
			if err := setExtension(c.New, *waiting); err != nil {
				return err
			}
		} else {
			removeExtension(c.New, ExtAwaitingConfirmation)
		}
		if ext != nil {
			return setExtension(c.New, *ext)
		}
		return nil
	}
	cf, err := b.confirmerOfSlots(ctx, tx, nw)
	if err != nil {
		return err
	}
	switch {
	case cf != nil && cf.asks(ctx, tx, c) && waiting != nil:
		return fhir.Errorf(fhir.Conflict, "conflict", "Appointment.status",
			"Appointment/%s awaits confirmation by %s: it is booked when %s accepts it", c.ID, elem.Str(waiting.ValueString), cf.by).WithDetails(ErrNotAmendable)
	case cf != nil && cf.asks(ctx, tx, c): // a hold being booked: the other system decides
		if err := awaitConfirmation(c, nw, cf); err != nil {
			return err
		}
		expires := tx.Now().Add(b.cfg.HoldFor)
		return setExtension(c.New, r4.Extension{Url: ExtHoldExpires, ValueInstant: elem.Opt(expires.UTC().Format(time.RFC3339Nano))})
	}
	removeExtension(c.New, ExtAwaitingConfirmation)
	if ext != nil {
		if t, ok := parseInstant(elem.Str(ext.ValueInstant)); ok && !tx.Now().Before(t) {
			return b.refused(tx, fhir.Errorf(fhir.Conflict, "conflict", "Appointment",
				"the hold expired at %s; its slots may have been taken", elem.Str(ext.ValueInstant)).WithDetails(ErrHoldExpired))
		}
	}
	if nw.patient() == "" {
		return fhir.Errorf(fhir.Unprocessable, "required", "Appointment.participant",
			"a booked appointment needs a participant whose actor is the Patient")
	}
	removeExtension(c.New, ExtHoldExpires)
	ids, err := nw.slotIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		res, err := tx.Read(ctx, "Slot", id)
		if err != nil {
			return err
		}
		if err := setSlotStatus(ctx, tx, res, slotStatus(nw.Status)); err != nil {
			return err
		}
	}
	b.booked(tx, slotStatus(nw.Status))
	return nil
}

// release frees the slots an appointment held.
func (b *Service) release(ctx context.Context, tx *write.Tx, a *appointment) error {
	ids, err := a.slotIDs()
	if err != nil {
		return nil // it never held them
	}
	for _, id := range ids {
		res, err := tx.Read(ctx, "Slot", id)
		if err != nil {
			continue // deleted since: nothing to free
		}
		s, err := decode[slot](res.JSON)
		if err != nil {
			return err
		}
		if s.Status == "busy" || s.Status == "busy-tentative" {
			if err := setSlotStatus(ctx, tx, res, "free"); err != nil {
				return err
			}
		}
	}
	return nil
}

func setSlotStatus(ctx context.Context, tx *write.Tx, res *fhir.Resource, status string) error {
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	if cur, _ := obj.String("status"); cur == status {
		return nil
	}
	obj.Set("status", status)
	// Claiming or freeing its slots is part of writing the appointment:
	// whoever may write the appointment may do it.
	ctx = write.AsConsequence(ctx, write.Consequence{Type: "Slot", ID: res.ID, Grant: write.WithCause, Of: "the appointment holding it"})
	_, _, err = tx.PutWith(ctx, "Slot", res.ID, obj, res.Version, own)
	return err
}

// The amendment rules (GP Connect): on a booked appointment only these
// members may change, plus status along attendanceMoves.
var amendable = map[string]bool{"resourceType": true, "id": true, "meta": true, "text": true,
	"description": true, "comment": true, "patientInstruction": true, "extension": true}

var statusMoves = map[string][]string{
	"pending":    {"pending", "booked", "cancelled", "entered-in-error"},
	"booked":     {"booked", "arrived", "checked-in", "fulfilled", "noshow", "cancelled", "entered-in-error"},
	"arrived":    {"arrived", "checked-in", "fulfilled", "noshow", "cancelled", "entered-in-error"},
	"checked-in": {"checked-in", "arrived", "fulfilled", "noshow", "cancelled", "entered-in-error"},
	"fulfilled":  {"fulfilled", "entered-in-error"},
	"noshow":     {"noshow", "entered-in-error"},
}

// checkAmend applies the amendment rules to a change of an existing
// appointment, listing every member that may not change.
//
// GP Connect's amendment rules protect a booking of slots: what was booked
// (the slots, times, participants, service) stays as booked, and a move
// is a reschedule. An appointment recorded without slots (status booked,
// the record of a booking made elsewhere) holds nothing here, and R4 puts
// no limit on updating an Appointment, so it may be amended freely, except
// that its status moves as any appointment's do, it cannot gain slots by
// amendment while it is live (slots are claimed when an appointment
// becomes live: $reschedule it, or book a new appointment), and once
// cancelled it is final.
func checkAmend(byBooking bool, oldObj, newObj *fhir.Object, old, nw *appointment) error {
	var issues []fhir.Issue
	bad := func(key, format string, args ...any) {
		issues = append(issues, fhir.Issue{Code: "business-rule", Details: ErrNotAmendable,
			Diagnostics: "Appointment." + key + ": " + sprintf(format, args...), Expression: []string{"Appointment." + key}})
	}
	keys := unionKeys(oldObj, newObj)
	switch {
	case len(old.Slot) == 0 && old.Status != "cancelled" && old.Status != "entered-in-error":
		if moves, ok := statusMoves[old.Status]; ok && !slices.Contains(moves, nw.Status) {
			bad("status", "an appointment that is %s cannot become %s", old.Status, nw.Status)
		}
		if old.live() && len(nw.Slot) > 0 { // a live appointment's slots were claimed when it became live
			bad("slot", "an appointment recorded without slots cannot gain them by amendment; use Appointment/$reschedule or book a new appointment")
		}
		if len(issues) > 0 {
			return &fhir.Error{Kind: fhir.Unprocessable, Issues: issues}
		}
		return nil
	}
	switch old.Status {
	case "cancelled", "entered-in-error":
		for _, k := range keys {
			if k != "meta" && k != "id" && !sameJSON(oldObj.Get(k), newObj.Get(k)) {
				bad(k, "a %s appointment cannot be changed", old.Status)
			}
		}
	case "pending":
		if !slices.Contains(statusMoves[old.Status], nw.Status) {
			bad("status", "a held appointment can become booked or cancelled, not %s", nw.Status)
		}
		for _, k := range []string{"slot", "start", "end"} {
			if !sameJSON(oldObj.Get(k), newObj.Get(k)) {
				bad(k, "cannot change while the appointment is held; use $reschedule after booking")
			}
		}
	case "booked", "arrived", "checked-in", "fulfilled", "noshow":
		for _, k := range keys {
			switch {
			case amendable[k], sameJSON(oldObj.Get(k), newObj.Get(k)):
			case k == "status":
				if !slices.Contains(statusMoves[old.Status], nw.Status) {
					bad(k, "an appointment that is %s cannot become %s", old.Status, nw.Status)
				}
			case k == "cancelationReason" && nw.Status == "cancelled":
			case k == "participant" && byBooking && sameParticipants(oldObj.Get(k), newObj.Get(k)):
			case k == "slot" || k == "start" || k == "end":
				bad(k, "cannot be amended; use Appointment/$reschedule to move a booking")
			default:
				bad(k, "cannot be amended on a booked appointment: only description, comment, patientInstruction and extensions can change")
			}
		}
	}
	if len(issues) > 0 {
		return &fhir.Error{Kind: fhir.Unprocessable, Issues: issues}
	}
	return nil
}

func unionKeys(a, b *fhir.Object) []string {
	keys := append([]string(nil), a.Keys()...)
	for _, k := range b.Keys() {
		if !a.Has(k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// sameJSON compares two JSON values by meaning (member order and spacing
// aside).
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameParticipants compares participant lists ignoring their status.
func sameParticipants(a, b json.RawMessage) bool {
	var x, y []map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil || len(x) != len(y) {
		return false
	}
	for i := range x {
		delete(x[i], "status")
		delete(y[i], "status")
	}
	return reflect.DeepEqual(x, y)
}

// setExtension sets ext on obj, replacing any extension with its url. Other
// extensions keep their bytes.
func setExtension(obj *fhir.Object, ext r4.Extension) error {
	removeExtension(obj, ext.Url)
	var exts []json.RawMessage
	if raw := obj.Get("extension"); raw != nil {
		if err := json.Unmarshal(raw, &exts); err != nil {
			return fhir.Errorf(fhir.Invalid, "structure", "Appointment.extension", "extension must be an array")
		}
	}
	b, err := json.Marshal(ext)
	if err != nil {
		return err
	}
	exts = append(exts, b)
	obj.Set("extension", exts)
	return nil
}

func removeExtension(obj *fhir.Object, url string) {
	raw := obj.Get("extension")
	if raw == nil {
		return
	}
	var exts []json.RawMessage
	if json.Unmarshal(raw, &exts) != nil {
		return
	}
	keep := exts[:0]
	for _, e := range exts {
		var head struct{ URL string }
		if json.Unmarshal(e, &head) == nil && head.URL == url {
			continue
		}
		keep = append(keep, e)
	}
	if len(keep) == len(exts) {
		return
	}
	if len(keep) == 0 {
		obj.Delete("extension")
		return
	}
	obj.Set("extension", keep)
}

// slotRule guards slots that appointments hold: clients may not free,
// move or delete them while a live appointment uses them. It also keeps
// free slots within their schedule's planning horizon (slotInHorizon).
func (b *Service) slotRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if isOwn(c) {
		return nil
	}
	if err := b.slotInHorizon(ctx, tx, c); err != nil {
		return err
	}
	if c.Old == nil {
		return nil
	}
	old, err := decode[slot](c.Old.JSON)
	if err != nil {
		return err
	}
	if old.Status != "busy" && old.Status != "busy-tentative" {
		return nil
	}
	if c.New != nil {
		nw, err := decode[slot](c.New.Bytes())
		if err != nil {
			return err
		}
		if nw.Status == old.Status && nw.Start == old.Start && nw.End == old.End && elem.Str(nw.Schedule.Reference) == elem.Str(old.Schedule.Reference) {
			return nil
		}
	}
	holders, err := b.holders(ctx, tx, c.ID, "")
	if err != nil || len(holders) == 0 {
		return err
	}
	what := "changed"
	if c.New == nil {
		what = "deleted"
	}
	return fhir.Errorf(fhir.Conflict, "conflict", "Slot", "Slot/%s cannot be %s: Appointment/%s holds it",
		c.ID, what, holders[0].ID).WithDetails(ErrSlotInUse)
}

// slotInHorizon refuses a free slot, new, moved or newly freed by a
// client, that ends in the future outside its schedule's planning horizon:
// the horizon is the period the schedule's slots cover, a slot outside it
// can never be booked, and so it must never be offered, by a Slot search
// any more than by $find. (Slots freed by a cancellation are the server's
// own writes and were inside the horizon when booked.)
func (b *Service) slotInHorizon(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	nw, err := decode[slot](c.New.Bytes())
	if err != nil || nw.Status != "free" {
		return err
	}
	if c.Old != nil {
		if old, err := decode[slot](c.Old.JSON); err == nil && old.Status == "free" && old.Start == nw.Start && old.End == nw.End && elem.Str(old.Schedule.Reference) == elem.Str(nw.Schedule.Reference) {
			return nil
		}
	}
	start, err1 := time.Parse(time.RFC3339, nw.Start)
	end, err2 := time.Parse(time.RFC3339, nw.End)
	id, ok := refID(elem.Str(nw.Schedule.Reference), "Schedule")
	if err1 != nil || err2 != nil || !ok || !end.After(tx.Now()) {
		return nil // validation reports bad instants; past slots are never offered
	}
	res, err := tx.Read(ctx, "Schedule", id)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil // a missing schedule has no horizon
	} else if err != nil {
		return err
	}
	sc, err := b.schedules.Get(res.JSON)
	if err != nil || b.inHorizon(sc, start, end) {
		return err
	}
	return fhir.Errorf(fhir.Unprocessable, "business-rule", "Slot.start",
		"free Slot/%s (%s to %s) lies outside the planning horizon of Schedule/%s, so it could never be booked: widen the horizon first",
		c.ID, nw.Start, nw.End, id)
}

// scheduleRule refuses to delete a schedule whose slots live appointments
// hold, and to narrow a planning horizon past future free slots.
func (b *Service) scheduleRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New != nil {
		return b.horizonCoversFreeSlots(ctx, tx, c)
	}
	if c.Old == nil {
		return nil
	}
	found, err := b.search1(ctx, tx, "Appointment", url.Values{"slot.schedule": {"Schedule/" + c.ID}, "status": {liveStatuses}})
	if err != nil || found == nil {
		return err
	}
	return fhir.Errorf(fhir.Conflict, "conflict", "Schedule", "Schedule/%s cannot be deleted: Appointment/%s uses its slots",
		c.ID, found.ID).WithDetails(ErrSlotInUse)
}

// horizonCoversFreeSlots refuses a schedule's planning horizon when one
// of its free slots that has not ended would fall outside it (see
// slotInHorizon): the provider marks those busy-unavailable or deletes
// them first. Past slots do not count, so a rolling horizon can move on.
// A schedule created with an id may already have slots (they outlive a
// deleted schedule), so creations are checked too.
func (b *Service) horizonCoversFreeSlots(ctx context.Context, tx *write.Tx, c *write.Change) error {
	nw, err := decode[schedule](c.New.Bytes())
	if err != nil || nw.PlanningHorizon == nil {
		return err
	}
	if c.Old != nil {
		if old, err := decode[schedule](c.Old.JSON); err == nil && old.PlanningHorizon != nil && samePeriod(old.PlanningHorizon, nw.PlanningHorizon) {
			return nil
		}
	}
	now := tx.Now()
	// The searches find a superset of the slots outside (a slot ending
	// exactly at the horizon's end matches end=gt at the end's precision);
	// each candidate is then judged as slotInHorizon judges it.
	var outside []url.Values
	if h := elem.Str(nw.PlanningHorizon.Start); h != "" {
		outside = append(outside, url.Values{"start": {"lt" + h}, "end": {"gt" + now.UTC().Format(time.RFC3339)}})
	}
	if h := elem.Str(nw.PlanningHorizon.End); h != "" {
		outside = append(outside, url.Values{"end": {"gt" + h}})
	}
	for _, params := range outside {
		params.Set("schedule", "Schedule/"+c.ID)
		params.Set("status", "free")
		q, err := b.search.Parse("Slot", params, search.ParseOptions{Strict: true, DefaultCount: 100, MaxCount: 100})
		if err != nil {
			return err
		}
		for {
			page, err := tx.Search(ctx, q)
			if err != nil {
				return err
			}
			for _, res := range page.Resources {
				s, err := decode[slot](res.JSON)
				if err != nil || s.Status != "free" {
					continue
				}
				start, ok1 := parseInstant(s.Start)
				end, ok2 := parseInstant(s.End)
				if ok1 && ok2 && end.After(now) && !b.inHorizon(nw, start, end) {
					return fhir.Errorf(fhir.Unprocessable, "business-rule", "Schedule.planningHorizon",
						"free Slot/%s of Schedule/%s lies outside the new planning horizon; mark such slots busy-unavailable or delete them first", res.ID, c.ID)
				}
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
	}
	return nil
}

// responseRule applies an AppointmentResponse to the appointment: the
// responding participant's status becomes the response's.
func (b *Service) responseRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var r struct {
		Appointment       r4.Reference  `json:"appointment"`
		Actor             *r4.Reference `json:"actor"`
		ParticipantStatus string        `json:"participantStatus"`
	}
	if err := json.Unmarshal(c.New.Bytes(), &r); err != nil {
		return fhir.Errorf(fhir.Invalid, "structure", "AppointmentResponse", "cannot read the response: %v", err)
	}
	id, ok := refID(elem.Str(r.Appointment.Reference), "Appointment")
	if !ok {
		return fhir.Errorf(fhir.Unprocessable, "invalid", "AppointmentResponse.appointment", "%q is not an Appointment of this server", elem.Str(r.Appointment.Reference))
	}
	res, err := b.repo.ReadAs(ctx, tx, "Appointment", id) // one the caller cannot read does not exist
	if err != nil {
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return fhir.Errorf(fhir.Unprocessable, "not-found", "AppointmentResponse.appointment", "Appointment/%s does not exist", id)
		}
		return err
	}
	if r.Actor == nil {
		return nil // a response for no one in particular changes no participant
	}
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	var parts []json.RawMessage
	if raw := obj.Get("participant"); raw != nil {
		if err := json.Unmarshal(raw, &parts); err != nil {
			return err
		}
	}
	for i, raw := range parts {
		p, err := fhir.ParseObject(raw)
		if err != nil {
			return err
		}
		var actor r4.Reference
		if json.Unmarshal(p.Get("actor"), &actor) != nil || !sameRef(elem.Str(actor.Reference), elem.Str(r.Actor.Reference)) {
			continue
		}
		if cur, _ := p.String("status"); cur == r.ParticipantStatus {
			return nil
		}
		p.Set("status", r.ParticipantStatus)
		parts[i] = p.Bytes()
		obj.Set("participant", parts)
		_, _, err = tx.PutWith(ctx, "Appointment", id, obj, res.Version, own)
		return err
	}
	return fhir.Errorf(fhir.Unprocessable, "business-rule", "AppointmentResponse.actor",
		"%s is not a participant of Appointment/%s", elem.Str(r.Actor.Reference), id)
}

// sameRef compares two literal references by their Type/id tail.
func sameRef(a, b string) bool {
	tail := func(s string) string {
		if i := strings.Index(s, "/_history/"); i >= 0 {
			s = s[:i]
		}
		parts := strings.Split(s, "/")
		if len(parts) >= 2 {
			return parts[len(parts)-2] + "/" + parts[len(parts)-1]
		}
		return s
	}
	return a != "" && tail(a) == tail(b)
}

// holders returns the live appointments holding Slot/id, except the one
// named except.
func (b *Service) holders(ctx context.Context, r store.Reader, id, except string) ([]*fhir.Resource, error) {
	all, err := b.searchAll(ctx, r, "Appointment", url.Values{"slot": {"Slot/" + id}, "status": {liveStatuses}}, 0)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, res := range all {
		if res.ID != except {
			out = append(out, res)
		}
	}
	return out, nil
}

// search1 returns one match of a search, or nil.
func (b *Service) search1(ctx context.Context, r store.Reader, typ string, params url.Values) (*fhir.Resource, error) {
	all, err := b.searchAll(ctx, r, typ, params, 1)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return all[0], nil
}

// searchAll returns every match of a search (at most limit when limit > 0),
// following pages.
func (b *Service) searchAll(ctx context.Context, r store.Reader, typ string, params url.Values, limit int) ([]*fhir.Resource, error) {
	q, err := b.search.Parse(typ, params, search.ParseOptions{Strict: true, DefaultCount: 500, MaxCount: 1000})
	if err != nil {
		return nil, err
	}
	if limit > 0 && limit < q.Count {
		q.Count = limit
	}
	var out []*fhir.Resource
	for {
		page, err := r.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Resources...)
		if page.Next == "" || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		q.Cursor = page.Next
	}
}
