package offer

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// waiter is a patient waiting for an earlier slot for one referral.
type waiter struct {
	patient    string         // "Patient/id"
	referral   string         // "ServiceRequest/id"
	rank       int            // 0 two-week-wait, 1 urgent, 2 routine
	authored   time.Time      // the referral's authoredOn: older first
	request    *fhir.Resource // the request Task; nil for a referral on the slot-issues worklist
	current    string         // "Appointment/id": the booking an offer must beat; "" for a slot issue
	currentAt  time.Time      // its start
	earliest   time.Time      // the request's window: zero for none
	latest     time.Time      // exclusive; zero for none
	done       bool           // offered a slot in this round
	unsuitable map[string]bool
}

// waiting returns the patients waiting for an earlier slot, in the order
// offers go to them: two-week-wait referrals, then urgent, then routine;
// within each, the oldest referral first (its authoredOn, then its id).
func (o *Service) waiting(ctx context.Context, r store.Reader, now time.Time) ([]*waiter, error) {
	var out []*waiter
	seen := map[string]bool{}
	reqs, err := o.searchAll(ctx, r, "Task", url.Values{"code": {CodeSystem + "|" + TaskCode}, "status": {"requested,in-progress"}})
	if err != nil {
		return nil, err
	}
	for _, res := range reqs {
		t, err := decode[request](res.JSON)
		if err != nil || !t.isRequest() || !t.active() {
			continue
		}
		id, ok := refID(elem.Str(t.Focus.Reference), "Appointment")
		if !ok {
			continue
		}
		cur, err := r.Read(ctx, "Appointment", id)
		if err != nil {
			continue
		}
		a, err := decode[appointment](cur.JSON)
		if err != nil || a.Status != "booked" || a.referral() == "" {
			continue
		}
		at, ok := a.start()
		if !ok || !at.After(now) {
			continue
		}
		w := &waiter{patient: a.patient(), referral: a.referral(), request: res, current: "Appointment/" + id, currentAt: at}
		if t.Restriction != nil && t.Restriction.Period != nil {
			if v := elem.Str(t.Restriction.Period.Start); v != "" {
				if lo, _, err := search.DateRange(v, o.cfg.Location); err == nil {
					w.earliest = time.UnixMicro(lo)
				}
			}
			if v := elem.Str(t.Restriction.Period.End); v != "" {
				if _, hi, err := search.DateRange(v, o.cfg.Location); err == nil {
					w.latest = time.UnixMicro(hi)
				}
			}
		}
		out = append(out, w)
	}
	issues, err := o.searchAll(ctx, r, "Task", url.Values{"code": {referral.TaskCodeSystem + "|" + referral.TaskCode},
		"business-status": {referral.StateSystem + "|" + string(referral.SlotIssue)}})
	if err != nil {
		return nil, err
	}
	for _, res := range issues {
		t, err := decode[request](res.JSON)
		if err != nil {
			continue
		}
		if _, ok := refID(elem.Str(t.Focus.Reference), "ServiceRequest"); ok {
			out = append(out, &waiter{referral: canonical(elem.Str(t.Focus.Reference))})
		}
	}
	kept := out[:0]
	for _, w := range out {
		id, _ := refID(w.referral, "ServiceRequest")
		sr, err := r.Read(ctx, "ServiceRequest", id)
		if err != nil || seen[w.referral] {
			continue
		}
		seen[w.referral] = true
		v, err := decode[referralView](sr.JSON)
		if err != nil {
			continue
		}
		w.rank = v.rank()
		w.authored = sr.LastUpdated
		if lo, _, err := search.DateRange(v.AuthoredOn, o.cfg.Location); err == nil && v.AuthoredOn != "" {
			w.authored = time.UnixMicro(lo)
		}
		if w.patient == "" {
			w.patient = canonical(elem.Str(v.Subject.Reference))
		}
		if w.patient != "" {
			kept = append(kept, w)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool {
		a, b := kept[i], kept[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if !a.authored.Equal(b.authored) {
			return a.authored.Before(b.authored)
		}
		return a.referral < b.referral
	})
	return kept, nil
}

// OfferSlots offers each of the slots (ids), in order of their start, to
// the first waiting patient it suits (see the package doc). It returns the
// offers made. A slot that is no longer free, or that nobody waiting may
// have, is left as it is. The server calls it once a transaction that
// freed slots has committed; it is exported for tests and tools.
func (o *Service) OfferSlots(ctx context.Context, ids []string) ([]string, error) {
	if o.cfg.Off || len(ids) == 0 {
		return nil, nil
	}
	st := o.repo.Store()
	now := time.Now()
	ws, err := o.waiting(ctx, st, now)
	if err != nil || len(ws) == 0 {
		return nil, err
	}
	type freed struct {
		res   *fhir.Resource
		s     *slot
		start time.Time
	}
	var slots []freed
	for _, id := range ids {
		res, err := st.Read(ctx, "Slot", id)
		if err != nil {
			continue
		}
		s, err := decode[slot](res.JSON)
		if err != nil || s.Status != "free" {
			continue
		}
		start, err := time.Parse(time.RFC3339Nano, s.Start)
		if err != nil || !start.After(now) {
			continue
		}
		slots = append(slots, freed{res, s, start})
	}
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].start.Before(slots[j].start) })
	plans := map[string]*booking.Plan{}
	var made []string
	for _, f := range slots {
		services, err := o.services(ctx, st, f.s)
		if err != nil {
			return made, err
		}
		id, err := o.offerSlot(ctx, ws, plans, f.res, f.s, f.start, services)
		if err != nil {
			return made, err
		}
		if id != "" {
			made = append(made, id)
		}
	}
	return made, nil
}

// services returns the HealthcareServices of a slot's schedule.
func (o *Service) services(ctx context.Context, r store.Reader, s *slot) ([]string, error) {
	id, ok := refID(elem.Str(s.Schedule.Reference), "Schedule")
	if !ok {
		return nil, nil
	}
	res, err := r.Read(ctx, "Schedule", id)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	sc, err := decode[struct {
		Actor []r4.Reference `json:"actor"`
	}](res.JSON)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range sc.Actor {
		if typ, hid, ok := fhir.SplitReference(elem.Str(a.Reference)); ok && typ == "HealthcareService" {
			out = append(out, "HealthcareService/"+hid)
		}
	}
	return out, nil
}

// errSkip: the waiter cannot have this offer now (its state changed, or
// it holds another offer); the next is tried.
var errSkip = errors.New("offer: skipped")

// offerSlot offers one free slot to the first waiter it suits, and
// returns the offer's id ("" when none was made).
func (o *Service) offerSlot(ctx context.Context, ws []*waiter, plans map[string]*booking.Plan, res *fhir.Resource, s *slot, start time.Time, services []string) (string, error) {
	st := o.repo.Store()
	for _, w := range ws {
		if w.done || w.unsuitable[res.ID] {
			continue
		}
		if w.current != "" && !start.Before(w.currentAt) {
			continue // not earlier than their booking
		}
		if (!w.earliest.IsZero() && start.Before(w.earliest)) || (!w.latest.IsZero() && !start.Before(w.latest)) {
			continue // outside the window they asked for
		}
		if !o.suits(ctx, plans, w, start, services) {
			continue
		}
		before, err := o.searchAll(ctx, st, "Appointment", url.Values{"slot": {"Slot/" + res.ID}, "patient": {w.patient}})
		if err != nil {
			return "", err
		}
		if slices.ContainsFunc(before, isOffer) {
			continue // offered to them before: they declined it or let it expire
		}
		id, err := o.make(ctx, w, res.ID, s)
		switch {
		case err == nil:
			w.done = true
			o.cfg.Logger.Info("earlier-slot offer made", "appointment", id, "slot", res.ID, "referral", w.referral)
			return id, nil
		case errors.Is(err, errSkip):
			continue
		case fhir.KindOf(err) == fhir.Conflict:
			return "", nil // the slot was taken meanwhile: nothing left to offer
		default:
			// The write path refused this offer (the referral's rules, a
			// service's guidance…): the next patient may still have it.
			o.cfg.Logger.Warn("earlier-slot offer refused", "slot", res.ID, "referral", w.referral, "error", err)
			if w.unsuitable == nil {
				w.unsuitable = map[string]bool{}
			}
			w.unsuitable[res.ID] = true
		}
	}
	return "", nil
}

// suits reports whether a slot starting at start at services suits the
// waiter's referral, as the referral service judges it for $find
// (booking.Referrals.Plan): one of the services is among those a booking
// for the referral may be at, and a two-week-wait referral's wait is not
// breached.
func (o *Service) suits(ctx context.Context, plans map[string]*booking.Plan, w *waiter, start time.Time, services []string) bool {
	id, _ := refID(w.referral, "ServiceRequest")
	plan, ok := plans[id]
	if !ok {
		var err error
		if plan, err = o.referrals.Plan(ctx, o.repo.Store(), id); err != nil {
			plan = nil
		}
		plans[id] = plan
	}
	if plan == nil || plan.Notice != nil || (!plan.Until.IsZero() && !start.Before(plan.Until)) {
		return false
	}
	if w.patient != "Patient/"+plan.Patient {
		return false
	}
	for _, svc := range services {
		if slices.Contains(plan.Services, svc) {
			return true
		}
	}
	return false
}

// isOffer reports whether an Appointment is (or was) an offer.
func isOffer(res *fhir.Resource) bool {
	a, err := decode[appointment](res.JSON)
	return err == nil && a.offerOf() != nil
}

// liveOffer returns a pending offer the patient holds, if any.
func (o *Service) liveOffer(ctx context.Context, r store.Reader, patient string) (*fhir.Resource, error) {
	held, err := o.searchAll(ctx, r, "Appointment", url.Values{"patient": {patient}, "status": {"pending"}})
	if err != nil {
		return nil, err
	}
	for _, res := range held {
		if isOffer(res) {
			return res, nil
		}
	}
	return nil, nil
}

// make writes the offer of the slot to w in one transaction: the hold,
// its announcement and the request's move to offered. The checks made
// while choosing w are made again inside it.
func (o *Service) make(ctx context.Context, w *waiter, slotID string, s *slot) (string, error) {
	apptID, commID := write.NewID(), write.NewID()
	err := o.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		if held, err := o.liveOffer(ctx, tx, w.patient); err != nil {
			return err
		} else if held != nil {
			return errSkip // one offer at a time
		}
		ext := offerExt{Referral: w.referral, Communication: "Communication/" + commID}
		if w.request != nil {
			cur, err := tx.Read(ctx, "Task", w.request.ID)
			if err != nil {
				return errSkip
			}
			t, err := decode[request](cur.JSON)
			if err != nil || !t.active() {
				return errSkip
			}
			bid, _ := refID(w.current, "Appointment")
			bk, err := tx.Read(ctx, "Appointment", bid)
			if err != nil {
				return errSkip
			}
			if a, err := decode[appointment](bk.JSON); err != nil || a.Status != "booked" {
				return errSkip
			}
			ext.Replaces, ext.Request = w.current, "Task/"+cur.ID
			if err := o.moveRequest(ctx, tx, cur, "in-progress", Offered, "Appointment/"+apptID, "", write.Consequence{}); err != nil {
				return err
			}
		} else {
			ext.SlotIssue = true
			id, _ := refID(w.referral, "ServiceRequest")
			tasks, err := o.searchAll(ctx, tx, "Task", url.Values{"focus": {"ServiceRequest/" + id},
				"code":            {referral.TaskCodeSystem + "|" + referral.TaskCode},
				"business-status": {referral.StateSystem + "|" + string(referral.SlotIssue)}})
			if err != nil {
				return err
			}
			if len(tasks) == 0 {
				return errSkip // no longer on the slot-issues worklist
			}
		}
		obj, err := o.offerAppointment(ctx, tx, w, slotID, s, ext)
		if err != nil {
			return err
		}
		res, _, err := tx.PutWith(ctx, "Appointment", apptID, obj, 0, own)
		if err != nil {
			return err
		}
		comm, err := o.announcement(ctx, tx, w, res, s)
		if err != nil {
			return err
		}
		_, _, err = tx.PutWith(ctx, "Communication", commID, comm, 0, own)
		return err
	})
	if err != nil {
		return "", err
	}
	return apptID, nil
}

// offerAppointment builds the offer: a pending Appointment of the slot for
// the patient, who has not yet answered (needs-action), with the slot's
// service and the offer Extension.
func (o *Service) offerAppointment(ctx context.Context, tx *write.Tx, w *waiter, slotID string, s *slot, ext offerExt) (*fhir.Object, error) {
	obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Appointment"}`))
	obj.Set("status", "pending")
	if len(s.ServiceType) > 0 {
		obj.Set("serviceType", s.ServiceType)
	}
	if len(s.Specialty) > 0 {
		obj.Set("specialty", s.Specialty)
	}
	obj.Set("description", "Earlier appointment offered: accept it with $book, or decline it with $decline-offer")
	obj.Set("start", s.Start)
	obj.Set("end", s.End)
	obj.Set("slot", []r4.Reference{elem.Ref("Slot/" + slotID)})
	pref := elem.Ref(w.patient)
	parts := []r4.AppointmentParticipant{{Actor: &pref, Status: r4.ParticipationStatusNeedsAction}}
	services, err := o.services(ctx, tx, s)
	if err != nil {
		return nil, err
	}
	for _, svc := range services {
		ref := elem.Ref(svc)
		parts = append(parts, r4.AppointmentParticipant{Actor: &ref, Status: r4.ParticipationStatusAccepted})
	}
	obj.Set("participant", parts)
	if err := setExt(obj, ext.extension()); err != nil {
		return nil, err
	}
	return obj, nil
}

// announcement is the Communication telling the patient of the offer res.
func (o *Service) announcement(ctx context.Context, tx *write.Tx, w *waiter, res *fhir.Resource, s *slot) (*fhir.Object, error) {
	a, err := decode[struct {
		Extension []r4.Extension `json:"extension"`
	}](res.JSON)
	if err != nil {
		return nil, err
	}
	expires := ""
	for _, e := range elem.Extensions(a.Extension, booking.ExtHoldExpires) {
		expires = elem.Str(e.ValueInstant)
	}
	where := "the service"
	if svcs, _ := o.services(ctx, tx, s); len(svcs) > 0 {
		if hs, err := tx.Read(ctx, "HealthcareService", svcs[0][len("HealthcareService/"):]); err == nil {
			if v, err := decode[struct {
				Name string `json:"name"`
			}](hs.JSON); err == nil && v.Name != "" {
				where = v.Name
			}
		}
	}
	start, _ := time.Parse(time.RFC3339Nano, s.Start)
	until, _ := time.Parse(time.RFC3339Nano, expires)
	text := fmt.Sprintf("An earlier appointment is available for you: %s on %s. It is held for you until %s. "+
		"To take it, accept the offer (Appointment/%s); your current booking, if any, is then cancelled. If you do not want it, decline the offer so that it can go to someone else.",
		where, start.In(o.cfg.Location).Format("Monday 2 January 2006 at 15:04"), until.In(o.cfg.Location).Format("15:04 on 2 January"), res.ID)
	comm := map[string]any{
		"resourceType": "Communication",
		"status":       "preparation",
		"category": []any{map[string]any{"coding": []any{map[string]any{"system": CodeSystem, "code": CommunicationCategory,
			"display": "Earlier-slot offer"}}}},
		"subject":   elem.Ref(w.patient),
		"recipient": []any{elem.Ref(w.patient)},
		"about":     []any{elem.Ref("Appointment/" + res.ID)},
		"basedOn":   []any{elem.Ref(w.referral)},
		"payload":   []any{map[string]any{"contentString": text}},
	}
	if w.request != nil {
		comm["basedOn"] = []any{elem.Ref(w.referral), elem.Ref("Task/" + w.request.ID)}
	}
	return fhir.ParseObject(mustJSON(comm))
}

// canonical returns "Type/id" of a reference.
func canonical(ref string) string {
	if typ, id, ok := fhir.SplitReference(ref); ok {
		return typ + "/" + id
	}
	return ref
}
