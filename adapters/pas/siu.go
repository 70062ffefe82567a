package pas

// SIU: the PAS's scheduling messages, applied to Appointments and Slots
// as the HL7 v2-to-FHIR implementation guide maps them (SCH, AIS, AIL,
// AIP, NTE; table 0278 for the filler status):
//
//   - S12 (booked in the PAS): an Appointment booked in the slots of the
//     clinic's schedule (AIL-3, through settings.clinics) that tile its
//     time (AIL-6 with AIL-9, else AIS-4 with AIS-7, else SCH-11), which
//     become busy; when the PAS booked outside the published slots (none
//     overlaps), a Slot is created for the booking. The PAS's filler id
//     (SCH-2) becomes an identifier of system FillerSystem, the UBRN in
//     SCH-26 an identifier that links the referral (as a client's booking
//     naming a UBRN does).
//   - S13 (rescheduled): as Appointment/$reschedule does, the appointment
//     is cancelled and a copy booked in the new slots, pointing at it with
//     the replaces extension; S14 (modified) reschedules when the time or
//     clinic changed, else updates the comment (NTE);
//   - S15 (cancelled): status cancelled (SCH-6 the reason), slots freed;
//     S17 (deleted): entered-in-error, slots freed; S26: noshow.
//
// An appointment is found by its filler id (SCH-2), else by Signpost's id
// as the placer id (SCH-1). Every write takes the write path, so the
// booking rules hold for the PAS as for a client: a slot already taken,
// an appointment in the past or a move the amendment rules forbid
// refuse the message. Only appointments and schedules of the services the
// PAS owns (settings.services) may be touched.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// siuBooked applies SIU^S12.
func (a *Adapter) siuBooked(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	if err := needSegments(m, "SCH", "PID"); err != nil {
		return "", err
	}
	filler := m.Get("SCH-2.1")
	if filler == "" {
		return "", reject("SCH-2", hl7v2.CodeRequiredMissing, "SCH-2 (filler appointment id) is empty: the PAS's id is needed to find the appointment later")
	}
	if st := m.Get("SCH-25.1"); st != "" && !strings.EqualFold(st, "Booked") {
		return "", reject("SCH-25", hl7v2.CodeTableValue, "S12 books an appointment: filler status %q is not Booked", st)
	}
	if found, err := a.byFiller(ctx, tx, filler); err != nil {
		return "", err
	} else if found != nil {
		return "", reject("SCH-2", hl7v2.CodeDuplicateKey, "filler id %s is already Appointment/%s: send S13 or S14 to change it", filler, found.ID)
	}
	if placer := m.Get("SCH-1.1"); placer != "" && fhir.ValidID(placer) {
		if res, err := tx.Read(ctx, "Appointment", placer); err == nil {
			if live(res) {
				return fmt.Sprintf("Appointment/%s was booked in Signpost: nothing to apply", placer), nil
			}
		}
	}
	pat, err := a.patientOf(ctx, tx, m)
	if err != nil {
		return "", err
	}
	sched, service, err := a.scheduleOf(ctx, tx, m)
	if err != nil {
		return "", err
	}
	t, err := a.timingOf(m)
	if err != nil {
		return "", err
	}
	slots, err := a.slotsFor(ctx, tx, sched, t)
	if err != nil {
		return "", err
	}
	appt := a.appointmentFrom(m, filler, pat.ID, service, slots)
	obj, err := toObject(appt)
	if err != nil {
		return "", err
	}
	if _, err := a.env.Writes.Prepare(ctx, "Appointment", obj); err != nil {
		return "", notMirrored("SCH-26", err, sched, filler, t)
	}
	res, err := tx.Create(ctx, "Appointment", obj)
	if err != nil {
		return "", notMirrored("SCH-2", err, sched, filler, t)
	}
	return "", a.noteApplied("booked", res)
}

// noteApplied is a hook for the log: what an inbound message did.
func (a *Adapter) noteApplied(what string, res *fhir.Resource) error {
	a.env.Logger.Debug("pas inbound", "applied", what, "resource", res.Type+"/"+res.ID)
	return nil
}

// siuRescheduled applies SIU^S13.
func (a *Adapter) siuRescheduled(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	cur, err := a.appointmentOf(ctx, tx, m)
	if err != nil {
		return "", err
	}
	return "", a.reschedule(ctx, tx, m, cur)
}

// siuModified applies SIU^S14: a reschedule when the time or the clinic
// changed, else the comment.
func (a *Adapter) siuModified(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	cur, err := a.appointmentOf(ctx, tx, m)
	if err != nil {
		return "", err
	}
	var have struct {
		Start, End string
		Slot       []r4.Reference
	}
	_ = json.Unmarshal(cur.JSON, &have)
	if m.Get("AIL-6") != "" || m.Get("AIS-4") != "" || m.Get("SCH-11.4") != "" {
		t, err := a.timingOf(m)
		if err != nil {
			return "", err
		}
		moved := !sameInstant(have.Start, t.start) || (!t.end.IsZero() && !sameInstant(have.End, t.end))
		if sched, _, err := a.scheduleOf(ctx, tx, m); err == nil && !moved && len(have.Slot) > 0 {
			if was, err := slotSchedule(ctx, tx, elem.Str(have.Slot[0].Reference)); err == nil && was != sched {
				moved = true
			}
		}
		if moved {
			return "", a.reschedule(ctx, tx, m, cur)
		}
	}
	obj, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return "", err
	}
	note := notes(m)
	if old, _ := obj.String("comment"); note == "" || old == note {
		return "no change to apply", nil
	}
	obj.Set("comment", note)
	_, _, err = tx.Put(ctx, "Appointment", cur.ID, obj, cur.Version)
	return "", at("SCH-2", err)
}

// reschedule cancels cur and books a copy of it in the slots m names, in
// the transaction tx (as Appointment/$reschedule does).
func (a *Adapter) reschedule(ctx context.Context, tx *write.Tx, m *hl7v2.Message, cur *fhir.Resource) error {
	var have struct {
		Status string
		Slot   []r4.Reference
	}
	_ = json.Unmarshal(cur.JSON, &have)
	if have.Status != "booked" {
		return failure("SCH-2", hl7v2.CodeInternal, "only a booked appointment can be rescheduled; Appointment/%s is %s", cur.ID, have.Status)
	}
	t, err := a.timingOf(m)
	if err != nil {
		return err
	}
	var sched, service string
	if m.Segment("AIL", 1) != nil {
		if sched, service, err = a.scheduleOf(ctx, tx, m); err != nil {
			return err
		}
	} else if len(have.Slot) > 0 { // the same clinic
		if sched, err = slotSchedule(ctx, tx, elem.Str(have.Slot[0].Reference)); err != nil {
			return at("SCH-2", err)
		}
	} else {
		return reject("AIL-3", hl7v2.CodeRequiredMissing, "AIL-3 (clinic) is needed to move an appointment that holds no slots")
	}
	old, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return err
	}
	old.Set("status", "cancelled")
	old.Set("cancelationReason", r4.CodeableConcept{Text: elem.Opt(reasonText(m, "Rescheduled in the PAS"))})
	if _, _, err := tx.Put(ctx, "Appointment", cur.ID, old, cur.Version); err != nil {
		return at("SCH-2", err)
	}
	slots, err := a.slotsFor(ctx, tx, sched, t)
	if err != nil {
		return err
	}
	nw, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return err
	}
	for _, k := range []string{"id", "meta", "start", "end", "minutesDuration", "created", "cancelationReason"} {
		nw.Delete(k)
	}
	var refs []r4.Reference
	for _, s := range slots {
		refs = append(refs, elem.Ref("Slot/"+s.id))
	}
	nw.Set("slot", refs)
	nw.SetAfter("status", "start", slots[0].start.UTC().Format(time.RFC3339))
	nw.SetAfter("start", "end", slots[len(slots)-1].end.UTC().Format(time.RFC3339))
	if service != "" {
		setServiceParticipant(nw, service)
	}
	if filler := m.Get("SCH-2.1"); filler != "" {
		if err := nw.SetIdentifier(FillerSystem(a.env.Name), filler); err != nil {
			return err
		}
	}
	if note := notes(m); note != "" {
		nw.Set("comment", note)
	}
	if err := setReplaces(nw, cur.ID); err != nil {
		return err
	}
	res, err := tx.Create(ctx, "Appointment", nw)
	if err != nil {
		return at("AIL-6", err)
	}
	return a.noteApplied("rescheduled", res)
}

// siuCancelled applies SIU^S15.
func (a *Adapter) siuCancelled(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	return a.setStatus(ctx, tx, m, "cancelled")
}

// siuDeleted applies SIU^S17 (table 0278 Deleted: entered-in-error).
func (a *Adapter) siuDeleted(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	return a.setStatus(ctx, tx, m, "entered-in-error")
}

// siuNoShow applies SIU^S26.
func (a *Adapter) siuNoShow(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	return a.setStatus(ctx, tx, m, "noshow")
}

// setStatus moves the appointment m names to status; the booking rules
// free its slots when it leaves the live statuses.
func (a *Adapter) setStatus(ctx context.Context, tx *write.Tx, m *hl7v2.Message, status string) (string, error) {
	cur, err := a.appointmentOf(ctx, tx, m)
	if err != nil {
		if status == "cancelled" || status == "entered-in-error" {
			// A booking Signpost did not mirror (unmirrored.go) frees its time.
			if text, rerr := a.releaseTime(ctx, tx, m.Get("SCH-2.1")); rerr != nil || text != "" {
				return text, rerr
			}
		}
		return "", err
	}
	obj, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return "", err
	}
	if s, _ := obj.String("status"); s == status {
		return fmt.Sprintf("Appointment/%s is already %s", cur.ID, status), nil
	}
	obj.Set("status", status)
	if status == "cancelled" {
		obj.Set("cancelationReason", r4.CodeableConcept{Text: elem.Opt(reasonText(m, "Cancelled in the PAS"))})
	}
	res, _, err := tx.Put(ctx, "Appointment", cur.ID, obj, cur.Version)
	if err != nil {
		return "", at("SCH-2", err)
	}
	return "", a.noteApplied(status, res)
}

// reasonText is SCH-6 (event reason) as text, or def.
func reasonText(m *hl7v2.Message, def string) string {
	for _, p := range []string{"SCH-6.2", "SCH-6.1"} {
		if v := m.Get(p); v != "" {
			return v
		}
	}
	return def
}

// needSegments rejects a message missing one of names.
func needSegments(m *hl7v2.Message, names ...string) error {
	for _, n := range names {
		if m.Segment(n, 1) == nil {
			return reject("", hl7v2.CodeSegmentSequence, "the %s segment is missing", n)
		}
	}
	return nil
}

// appointmentOf finds the appointment m names, one of the PAS's services.
func (a *Adapter) appointmentOf(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (*fhir.Resource, error) {
	if err := needSegments(m, "SCH"); err != nil {
		return nil, err
	}
	filler, placer := m.Get("SCH-2.1"), m.Get("SCH-1.1")
	if filler == "" && placer == "" {
		return nil, reject("SCH-2", hl7v2.CodeRequiredMissing, "SCH-1 and SCH-2 are empty: the appointment cannot be identified")
	}
	var res *fhir.Resource
	var err error
	if filler != "" {
		if res, err = a.byFiller(ctx, tx, filler); err != nil {
			return nil, err
		}
	}
	if res == nil && placer != "" && fhir.ValidID(placer) {
		if res, err = a.byPlacer(ctx, tx, placer); err != nil {
			return nil, err
		}
	}
	if res == nil {
		what := "filler id " + filler
		if filler == "" {
			what = "placer id " + placer
		}
		return nil, failure("SCH-2", hl7v2.CodeUnknownKey, "no appointment has %s", what)
	}
	owned, err := a.ownsStored(ctx, tx, res)
	if err != nil {
		return nil, err
	}
	if !owned {
		return nil, reject("SCH-2", hl7v2.CodeInternal, "Appointment/%s is not at a service the PAS owns (settings.services)", res.ID)
	}
	return res, nil
}

// byFiller finds the appointment with the PAS's filler id: the live one
// when a reschedule left a cancelled one beside it, else the latest.
func (a *Adapter) byFiller(ctx context.Context, tx *write.Tx, filler string) (*fhir.Resource, error) {
	page, err := tx.Search(ctx, &search.Query{Type: "Appointment", Count: 100, Filter: []search.Expr{
		search.TokenIn{Param: "identifier", System: FillerSystem(a.env.Name), HasSystem: true, Codes: []string{filler}}}})
	if err != nil || len(page.Resources) == 0 {
		return nil, err
	}
	all := page.Resources
	sort.SliceStable(all, func(i, j int) bool { return all[i].LastUpdated.After(all[j].LastUpdated) })
	for _, r := range all {
		if live(r) {
			return r, nil
		}
	}
	return all[0], nil
}

// byPlacer finds the appointment Signpost sent as placer id (SCH-1): that
// appointment or, when it was rescheduled, the one that replaced it, and
// so on (outbound messages keep the first placer id of a reschedule
// chain, outbound.go). Nil when there is none.
func (a *Adapter) byPlacer(ctx context.Context, tx *write.Tx, placer string) (*fhir.Resource, error) {
	res, err := tx.Read(ctx, "Appointment", placer)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	for range maxChain {
		if live(res) {
			return res, nil
		}
		page, err := tx.Search(ctx, &search.Query{Type: "Appointment", Count: 1, Filter: []search.Expr{
			search.RefIn{Param: "replaces", Refs: []search.Ref{{Type: "Appointment", ID: res.ID}}}}})
		if err != nil {
			return nil, err
		}
		if len(page.Resources) == 0 {
			return res, nil
		}
		res = page.Resources[0]
	}
	return res, nil
}

// live reports whether an appointment holds its slots.
func live(res *fhir.Resource) bool {
	var s struct{ Status string }
	_ = json.Unmarshal(res.JSON, &s)
	switch s.Status {
	case "booked", "pending", "arrived", "checked-in":
		return true
	}
	return false
}

// ownsStored reports whether the stored appointment res is at a service
// the PAS owns (ownsAppointment, by its slots).
func (a *Adapter) ownsStored(ctx context.Context, tx *write.Tx, res *fhir.Resource) (bool, error) {
	var ap struct{ Slot []r4.Reference }
	if err := json.Unmarshal(res.JSON, &ap); err != nil {
		return false, err
	}
	return a.ownsAppointment(ctx, tx, ap.Slot, res, nil)
}

// scheduleService returns the service of Schedule/id the PAS owns, or "".
func (a *Adapter) scheduleService(ctx context.Context, rd store.Reader, id string) (string, error) {
	res, err := readOrNil(ctx, rd, "Schedule", id)
	if err != nil || res == nil {
		return "", err
	}
	var sc scheduleView
	if err := json.Unmarshal(res.JSON, &sc); err != nil {
		return "", fmt.Errorf("Schedule/%s: %w", id, err)
	}
	for _, ac := range sc.Actor {
		if typ, sid, ok := fhir.SplitReference(elem.Str(ac.Reference)); ok && typ == "HealthcareService" && a.services[sid] {
			return sid, nil
		}
	}
	return "", nil
}

// scheduleOf returns the schedule of the clinic in AIL-3 and the PAS's
// service it belongs to.
func (a *Adapter) scheduleOf(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (schedule, service string, err error) {
	clinic := m.Get("AIL-3.1")
	if clinic == "" {
		return "", "", reject("AIL-3", hl7v2.CodeRequiredMissing, "AIL-3 (the clinic) is empty or the AIL segment is missing")
	}
	id, ok := a.set.Clinics[clinic]
	if !ok {
		return "", "", reject("AIL-3", hl7v2.CodeTableValue, "clinic %q is not mapped to a schedule (settings.clinics)", clinic)
	}
	svc, err := a.scheduleService(ctx, tx, id)
	if err != nil {
		return "", "", err
	}
	if svc == "" {
		return "", "", reject("AIL-3", hl7v2.CodeInternal, "clinic %q: Schedule/%s does not exist or is not of a service the PAS owns (settings.services)", clinic, id)
	}
	return id, svc, nil
}

// timing is when a message books: start, and end when it says.
type timing struct {
	start, end time.Time
	at         string // the field the start came from
}

// timingOf reads the appointment's time: AIL-6 and AIL-9/10, else AIS-4
// and AIS-7/8, else SCH-11 (TQ: start and end in components 4 and 5) and
// SCH-9/10.
func (a *Adapter) timingOf(m *hl7v2.Message) (timing, error) {
	type src struct{ start, dur, units string }
	for _, s := range []src{{"AIL-6", "AIL-9", "AIL-10"}, {"AIS-4", "AIS-7", "AIS-8"}, {"SCH-11.4", "SCH-9", "SCH-10"}} {
		v := m.Get(s.start)
		if v == "" {
			continue
		}
		start, err := hl7v2.ParseTime(v, a.env.Location)
		if err != nil {
			return timing{}, reject(s.start, hl7v2.CodeDataType, "%v", err)
		}
		t := timing{start: start, at: s.start}
		if d := m.Get(s.dur); d != "" {
			n, err := strconv.Atoi(d)
			if err != nil || n <= 0 {
				return timing{}, reject(s.dur, hl7v2.CodeDataType, "duration %q is not a positive whole number", d)
			}
			unit, ok := durationUnit(m.Get(s.units + ".1"))
			if !ok {
				return timing{}, reject(s.units, hl7v2.CodeTableValue, "duration units %q are not known (MIN, S, H, D)", m.Get(s.units+".1"))
			}
			t.end = start.Add(time.Duration(n) * unit)
		} else if s.start == "SCH-11.4" && m.Get("SCH-11.5") != "" {
			end, err := hl7v2.ParseTime(m.Get("SCH-11.5"), a.env.Location)
			if err != nil {
				return timing{}, reject("SCH-11.5", hl7v2.CodeDataType, "%v", err)
			}
			t.end = end
		}
		if !t.end.IsZero() && !t.end.After(t.start) {
			return timing{}, reject(s.dur, hl7v2.CodeDataType, "the appointment ends before it starts")
		}
		return t, nil
	}
	return timing{}, reject("AIL-6", hl7v2.CodeRequiredMissing, "no start time: AIL-6, AIS-4 and SCH-11.4 are all empty")
}

// durationUnit reads a duration unit code (ISO+ or ANSI+; MIN when empty).
func durationUnit(u string) (time.Duration, bool) {
	switch strings.ToUpper(u) {
	case "", "MIN", "M":
		return time.Minute, true
	case "S", "SEC":
		return time.Second, true
	case "H", "HR", "HOUR":
		return time.Hour, true
	case "D", "DAY":
		return 24 * time.Hour, true
	}
	return 0, false
}

// aSlot is a slot a booking takes.
type aSlot struct {
	id         string
	start, end time.Time
}

// slotsFor returns the free slots of schedule that tile t, oldest first,
// or a new Slot for t when no slot overlaps it (the PAS booked outside its
// published slots). A slot that overlaps t and is not free is AE (taken);
// slots that overlap t without tiling it are AE too.
func (a *Adapter) slotsFor(ctx context.Context, tx *write.Tx, schedule string, t timing) ([]aSlot, error) {
	until, from := t.end, t.start.Add(-24*time.Hour)
	if until.IsZero() {
		until = t.start.Add(time.Microsecond)
	}
	page, err := tx.Search(ctx, &search.Query{Type: "Slot", Count: 200, Filter: []search.Expr{
		search.RefIn{Param: "schedule", Refs: []search.Ref{{Type: "Schedule", ID: schedule}}},
		search.DateMatch{Param: "start", Prefix: search.Lt, Low: until.UnixMicro(), High: until.UnixMicro() + 1},
		// No slot lasts a day: the lower bound keeps the search to the
		// slots around t instead of every earlier one.
		search.DateMatch{Param: "start", Prefix: search.Sa, Low: from.UnixMicro() - 1, High: from.UnixMicro()},
		search.DateMatch{Param: "end", Prefix: search.Sa, Low: t.start.UnixMicro(), High: t.start.UnixMicro() + 1},
	}})
	if err != nil {
		return nil, err
	}
	var slots []aSlot
	for _, res := range page.Resources {
		var s struct{ Status, Start, End string }
		if err := json.Unmarshal(res.JSON, &s); err != nil {
			return nil, err
		}
		st, err1 := time.Parse(time.RFC3339, s.Start)
		en, err2 := time.Parse(time.RFC3339, s.End)
		if err1 != nil || err2 != nil || !st.Before(until) || !en.After(t.start) {
			continue
		}
		if s.Status != "free" {
			return nil, failure(t.at, hl7v2.CodeRecordLocked, "Slot/%s (%s to %s) is already %s", res.ID, s.Start, s.End, s.Status)
		}
		slots = append(slots, aSlot{res.ID, st, en})
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].start.Before(slots[j].start) })
	if len(slots) == 0 {
		if t.end.IsZero() {
			return nil, reject(t.at, hl7v2.CodeRequiredMissing, "no published slot starts at %s and the message gives no duration to create one", t.start.UTC().Format(time.RFC3339))
		}
		obj, err := toObject(map[string]any{"resourceType": "Slot", "status": "free",
			"schedule": elem.Ref("Schedule/" + schedule), "comment": "created for a booking made in the PAS",
			"start": t.start.UTC().Format(time.RFC3339), "end": t.end.UTC().Format(time.RFC3339)})
		if err != nil {
			return nil, err
		}
		res, err := tx.Create(ctx, "Slot", obj)
		if err != nil {
			return nil, at(t.at, err)
		}
		return []aSlot{{res.ID, t.start, t.end}}, nil
	}
	tiles := slots[0].start.Equal(t.start)
	for i := 1; i < len(slots); i++ {
		tiles = tiles && slots[i].start.Equal(slots[i-1].end)
	}
	if t.end.IsZero() {
		tiles = tiles && len(slots) == 1
	} else {
		tiles = tiles && slots[len(slots)-1].end.Equal(t.end)
	}
	if !tiles {
		return nil, failure(t.at, hl7v2.CodeRecordLocked, "the booking from %s overlaps published slots (Slot/%s from %s) without matching their times",
			t.start.UTC().Format(time.RFC3339), slots[0].id, slots[0].start.UTC().Format(time.RFC3339))
	}
	return slots, nil
}

// appointmentFrom builds the Appointment an S12 books.
func (a *Adapter) appointmentFrom(m *hl7v2.Message, filler, patient, service string, slots []aSlot) *r4.Appointment {
	start, end := slots[0].start, slots[len(slots)-1].end
	minutes := int(end.Sub(start) / time.Minute)
	appt := &r4.Appointment{
		Identifier: []r4.Identifier{{System: elem.Opt(FillerSystem(a.env.Name)), Value: elem.Opt(filler)}},
		Status:     r4.AppointmentStatusBooked,
		Start:      elem.Opt(start.UTC().Format(time.RFC3339)),
		End:        elem.Opt(end.UTC().Format(time.RFC3339)),
		Created:    elem.Opt(a.env.Now().UTC().Format("2006-01-02")),
		Comment:    elem.Opt(notes(m)),
		Participant: []r4.AppointmentParticipant{
			{Actor: &r4.Reference{Reference: elem.Opt("Patient/" + patient)}, Status: r4.ParticipationStatusAccepted},
			{Actor: &r4.Reference{Reference: elem.Opt("HealthcareService/" + service)}, Status: r4.ParticipationStatusAccepted},
		},
	}
	if minutes > 0 {
		appt.MinutesDuration = &minutes
	}
	for _, s := range slots {
		appt.Slot = append(appt.Slot, elem.Ref("Slot/"+s.id))
	}
	for _, rep := range repetitions(m, "SCH-26") { // the placer order number: the referral's UBRN
		if v := m.Get(rep + ".1"); v != "" {
			appt.Identifier = append(appt.Identifier, r4.Identifier{System: elem.Opt(referral.UBRNSystem), Value: elem.Opt(v)})
		}
	}
	if cc := codeable(m, "AIS-3"); cc != nil {
		appt.ServiceType = []r4.CodeableConcept{*cc}
	}
	if cc := codeable(m, "SCH-8"); cc != nil {
		appt.AppointmentType = cc
	}
	if cc := codeable(m, "SCH-7"); cc != nil && m.Get("SCH-7.3") != "HL70277" {
		appt.ReasonCode = []r4.CodeableConcept{*cc}
	}
	for i := range m.All("AIP") { // personnel: a logical reference (Signpost keeps no Practitioners of the PAS's)
		seg := fmt.Sprintf("AIP[%d]", i+1)
		id := m.Get(seg + "-3.1")
		if id == "" {
			continue
		}
		name := strings.TrimSpace(strings.Join(nonEmpty(m.Get(seg+"-3.6"), m.Get(seg+"-3.3"), m.Get(seg+"-3.2")), " "))
		p := r4.AppointmentParticipant{Actor: &r4.Reference{Type: elem.Opt("Practitioner"),
			Identifier: &r4.Identifier{Value: elem.Opt(id)}, Display: elem.Opt(name)}, Status: r4.ParticipationStatusAccepted}
		if cc := codeable(m, seg+"-4"); cc != nil {
			p.Type = []r4.CodeableConcept{*cc}
		}
		appt.Participant = append(appt.Participant, p)
	}
	return appt
}

// repetitions returns the paths of the repetitions of the field at path
// ("SCH-26" → "SCH-26[1]", …).
func repetitions(m *hl7v2.Message, path string) []string {
	var out []string
	for i := range m.Count(path) {
		out = append(out, fmt.Sprintf("%s[%d]", path, i+1))
	}
	return out
}

// codeable maps a CWE (code^text^system) to a CodeableConcept; nil when
// empty. HL7 tables (HL7nnnn) become their terminology.hl7.org systems.
func codeable(m *hl7v2.Message, path string) *r4.CodeableConcept {
	code, text, sys := m.Get(path+".1"), m.Get(path+".2"), m.Get(path+".3")
	if code == "" && text == "" {
		return nil
	}
	cc := &r4.CodeableConcept{Text: elem.Opt(text)}
	if code != "" {
		c := r4.Coding{Code: elem.Opt(code), Display: elem.Opt(text)}
		if n, ok := strings.CutPrefix(sys, "HL7"); ok && len(n) == 4 {
			c.System = elem.Opt("http://terminology.hl7.org/CodeSystem/v2-" + n)
		}
		cc.Coding = []r4.Coding{c}
	}
	if cc.Text == nil {
		cc.Text = elem.Opt(code)
	}
	return cc
}

// notes joins the NTE comments (NTE-3) of the message.
func notes(m *hl7v2.Message) string {
	var out []string
	for i := range m.All("NTE") {
		if v := m.Get(fmt.Sprintf("NTE[%d]-3", i+1)); v != "" {
			out = append(out, v)
		}
	}
	return strings.Join(out, "\n")
}

func nonEmpty(vals ...string) []string {
	return slices.DeleteFunc(vals, func(s string) bool { return s == "" })
}

// sameInstant compares an RFC 3339 instant with t.
func sameInstant(s string, t time.Time) bool {
	v, err := time.Parse(time.RFC3339, s)
	return err == nil && v.Equal(t)
}

// setServiceParticipant makes service the appointment's HealthcareService
// participant.
func setServiceParticipant(obj *fhir.Object, service string) {
	var parts []map[string]any
	_ = json.Unmarshal(obj.Get("participant"), &parts)
	ref := "HealthcareService/" + service
	for _, p := range parts {
		if act, ok := p["actor"].(map[string]any); ok {
			if r, _ := act["reference"].(string); strings.HasPrefix(r, "HealthcareService/") {
				act["reference"] = ref
				obj.Set("participant", parts)
				return
			}
		}
	}
	obj.Set("participant", append(parts, map[string]any{"actor": elem.Ref(ref), "status": "accepted"}))
}
