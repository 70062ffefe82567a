package pas

// The HL7 v2 messages Signpost sends a PAS, built from what the write
// transaction reads: SIU^S12/S13/S14/S15/S26 (the notify profile,
// signpost-confirmed), SRM^S01/S03/S04 (the request profile,
// pas-confirmed) and REF^I13 (a referral's status, both profiles).
//
// The segments follow the HL7 v2-to-FHIR implementation guide's mappings
// (SCH, AIS, AIL, AIP, PID, table 0278) read in reverse:
//
//   - SCH-1 (ARQ-1) placer appointment id: the Appointment's id (of the
//     first of a chain of reschedules, Subject.PlacerID), with Signpost's
//     application (MSH-3) as namespace;
//   - SCH-2 (ARQ-2) filler appointment id: the PAS's id, once known, kept
//     on the Appointment as an identifier of system FillerSystem(instance)
//     ("urn:signpost:adapter:<instance>:filler"), with the PAS's
//     application (MSH-5) as namespace;
//   - SCH-25 filler status: Appointment.status through table 0278;
//   - SCH-26 (ARQ-24) placer order number: the UBRN of the referral the
//     appointment is based on, namespace "UBRN";
//   - PID-3: the NHS number (assigning authority NHS, type NH) and the PAS
//     number (the PAS's facility as assigning authority, type PI);
//   - AIS-3: the appointment's service type (its first coding), else the
//     HealthcareService whose schedule holds the slot (its id and name, in
//     the local coding system 99SPHS);
//   - AIL-3: the PAS clinic code the instance's settings map to the slot's
//     Schedule (PL-1), with the PAS's facility (PL-4);
//   - AIP-3: each Practitioner taking part (its first identifier, else its
//     id, with its name).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// The trigger events of the messages Signpost sends.
const (
	// Notify profile (SIU, signpost-confirmed).
	EventBooked      = "S12" // notification of new appointment booking
	EventRescheduled = "S13" // notification of appointment rescheduling
	EventModified    = "S14" // notification of appointment modification
	EventCancelled   = "S15" // notification of appointment cancellation
	EventNoShow      = "S26" // notification that patient did not show up
	// Request profile (SRM, pas-confirmed).
	EventRequestBooking = "S01" // request new appointment booking
	EventRequestModify  = "S03" // request appointment modification
	EventRequestCancel  = "S04" // request appointment cancellation
	// Referral (REF).
	EventReferralModified = "I13" // modify patient referral
)

// UBRNNamespace is the namespace (EI-2) of the UBRN in SCH-26 and ARQ-24.
const UBRNNamespace = "UBRN"

// ServiceCodingSystem is the local coding system (AIS-3.3) of a service
// identified by its HealthcareService id when the appointment carries no
// service type.
const ServiceCodingSystem = "99SPHS"

// Subject is what a message about one appointment is built from: the
// appointment and what it points at, as read in the write transaction.
// Only Appointment is required.
type Subject struct {
	Appointment  *fhir.Resource   // the version the message announces
	Slots        []*fhir.Resource // its slots, in its order
	Schedule     *fhir.Resource   // the first slot's schedule
	Service      *fhir.Resource   // the HealthcareService the schedule is for
	Patient      *fhir.Resource   // the patient taking part
	Referral     *fhir.Resource   // the ServiceRequest it is based on, if any
	Practitioner []*fhir.Resource // the practitioners taking part
	// PlacerID is the placer appointment id (SCH-1, ARQ-1); "" means the
	// Appointment's id. An appointment that replaces another (Signpost's
	// $reschedule) keeps the first one's, so the PAS sees one appointment.
	PlacerID string
}

// placer is s's placer appointment id.
func (s *Subject) placer() string {
	if s.PlacerID != "" {
		return s.PlacerID
	}
	return s.Appointment.ID
}

// LoadSubject reads, through rd (the write transaction), what the
// messages about appt need. A reference that cannot be read is left out
// (the message omits what it would have said), but a store error other
// than a missing or deleted resource is returned.
func LoadSubject(ctx context.Context, rd store.Reader, appt *fhir.Resource) (*Subject, error) {
	var a apptView
	if err := json.Unmarshal(appt.JSON, &a); err != nil {
		return nil, fmt.Errorf("Appointment/%s: %w", appt.ID, err)
	}
	s := &Subject{Appointment: appt}
	read := func(ref string, want ...string) (*fhir.Resource, error) {
		typ, id, ok := fhir.SplitReference(ref)
		if !ok || (len(want) > 0 && !slices.Contains(want, typ)) {
			return nil, nil
		}
		return readOrNil(ctx, rd, typ, id)
	}
	for _, ref := range a.Slot {
		res, err := read(elem.Str(ref.Reference), "Slot")
		if err != nil {
			return nil, err
		}
		if res != nil {
			s.Slots = append(s.Slots, res)
		}
	}
	if len(s.Slots) > 0 {
		var sl slotView
		if err := json.Unmarshal(s.Slots[0].JSON, &sl); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Slots[0].Reference(), err)
		}
		sched, err := read(elem.Str(sl.Schedule.Reference), "Schedule")
		if err != nil {
			return nil, err
		}
		s.Schedule = sched
		if sched != nil {
			var sv scheduleView
			if err := json.Unmarshal(sched.JSON, &sv); err != nil {
				return nil, fmt.Errorf("%s: %w", sched.Reference(), err)
			}
			for _, actor := range sv.Actor {
				res, err := read(elem.Str(actor.Reference), "HealthcareService")
				if err != nil {
					return nil, err
				}
				if res != nil {
					s.Service = res
					break
				}
			}
		}
	}
	for _, p := range a.Participant {
		ref := elem.Str(p.Actor.Reference)
		typ, _, _ := fhir.SplitReference(ref)
		switch typ {
		case "Patient":
			if s.Patient == nil {
				res, err := read(ref)
				if err != nil {
					return nil, err
				}
				s.Patient = res
			}
		case "Practitioner":
			res, err := read(ref)
			if err != nil {
				return nil, err
			}
			if res != nil {
				s.Practitioner = append(s.Practitioner, res)
			}
		case "HealthcareService":
			if s.Service == nil {
				res, err := read(ref)
				if err != nil {
					return nil, err
				}
				s.Service = res
			}
		}
	}
	for _, b := range a.BasedOn {
		res, err := read(elem.Str(b.Reference), "ServiceRequest")
		if err != nil {
			return nil, err
		}
		if res != nil {
			s.Referral = res
			break
		}
	}
	return s, nil
}

// Builder builds the messages one instance sends.
type Builder struct {
	Instance string   // the instance's name (FillerSystem)
	Settings Settings // with their defaults filled in
	// Location is the timezone times are written in (with their offset);
	// nil writes UTC.
	Location *time.Location
	Now      func() time.Time // MSH-7; nil: time.Now
	// ControlID is MSH-10; "" gives a fresh one (NewControlID). A message
	// built again for a resend keeps the control id it was queued with.
	ControlID string
}

// builder returns the instance's Builder.
func (a *Adapter) builder() Builder {
	return Builder{Instance: a.env.Name, Settings: a.set, Location: a.env.Location, Now: a.env.Now}
}

// NewControlID returns a fresh message control id (MSH-10): 20 random hex
// digits, the most MSH-10 holds in v2.3 to v2.5.
func NewControlID() string {
	var b [10]byte
	rand.Read(b[:]) // never fails: crypto/rand crashes the program rather than return an error
	return hex.EncodeToString(b[:])
}

// SIU builds the SIU message of trigger event (EventBooked …
// EventNoShow) about s: MSH, SCH, TQ1 (v2.5 and later), PID, PV1, RGS,
// AIS, AIL, AIP.
func (b Builder) SIU(event string, s *Subject) (*hl7v2.Message, error) {
	switch event {
	case EventBooked, EventRescheduled, EventModified, EventCancelled, EventNoShow:
	default:
		return nil, fmt.Errorf("pas: SIU^%s is not a notification Signpost sends", event)
	}
	a, err := b.view(s)
	if err != nil {
		return nil, err
	}
	m, err := b.header("SIU", event, "SIU_S12")
	if err != nil {
		return nil, err
	}
	w := writer{m: m}
	b.sch(&w, event, s, a)
	if b.Settings.Version >= "2.5" {
		w.set("TQ1-1", "1")
		w.set("TQ1-7", b.time(a.start))
		w.set("TQ1-8", b.time(a.end))
	}
	b.pid(&w, s)
	b.pv1(&w, s)
	b.resources(&w, a.status, s, a)
	return w.done()
}

// SRM builds the SRM request of trigger event (EventRequestBooking,
// EventRequestModify, EventRequestCancel) about s: MSH, ARQ, PID, PV1,
// RGS, AIS, AIL, AIP.
func (b Builder) SRM(event string, s *Subject) (*hl7v2.Message, error) {
	switch event {
	case EventRequestBooking, EventRequestModify, EventRequestCancel:
	default:
		return nil, fmt.Errorf("pas: SRM^%s is not a request Signpost sends", event)
	}
	a, err := b.view(s)
	if err != nil {
		return nil, err
	}
	m, err := b.header("SRM", event, "SRM_S01")
	if err != nil {
		return nil, err
	}
	w := writer{m: m}
	w.set("ARQ-1.1", s.placer())
	w.set("ARQ-1.2", b.Settings.Application)
	if f := filler(a, b.Instance); f != "" {
		w.set("ARQ-2.1", f)
		w.set("ARQ-2.2", b.Settings.PASApplication)
	}
	b.reason(&w, "ARQ-6", event, a)
	b.appointmentType(&w, "ARQ-8", a)
	if mins := a.minutes(); mins > 0 {
		w.set("ARQ-9", strconv.Itoa(mins))
		w.set("ARQ-10.1", "min")
	}
	w.set("ARQ-11.1", b.time(a.start))
	w.set("ARQ-11.2", b.time(a.end))
	w.set("ARQ-15.1", b.Settings.Application) // placer contact: Signpost
	w.set("ARQ-19.1", b.Settings.Application) // entered by: Signpost
	if u := ubrn(s.Referral); u != "" {
		w.set("ARQ-24.1", u)
		w.set("ARQ-24.2", UBRNNamespace)
	}
	b.pid(&w, s)
	b.pv1(&w, s)
	status := a.status
	if event == EventRequestCancel {
		status = "cancelled"
	}
	b.resources(&w, status, s, a)
	return w.done()
}

// ReferralStatus is a referral's status for the PAS, HL7 table 0283.
type ReferralStatus string

// Table 0283's codes.
const (
	ReferralAccepted ReferralStatus = "A"
	ReferralPending  ReferralStatus = "P"
	ReferralRejected ReferralStatus = "R"
	ReferralExpired  ReferralStatus = "E"
)

// ReferralSubject is what a referral message is built from.
type ReferralSubject struct {
	Referral *fhir.Resource // the ServiceRequest
	Patient  *fhir.Resource // its subject
	Status   ReferralStatus // RF1-1
	// Reason is RF1-10 (the referral reason, here why its status changed):
	// a code and a text, such as "redirected" and "Redirected to
	// HealthcareService/x". Empty for none.
	ReasonCode, ReasonText string
	// Requester and Performer are the referring organisation's and the
	// referred-to service's ids and names, for the PRD segments (RP and
	// RT); empty ones are left out.
	RequesterID, RequesterName string
	PerformerID, PerformerName string
}

// REF builds REF^I13 (modify patient referral) about r: MSH, RF1 (status
// from table 0283, the UBRN as originating referral id), PRD (referring
// and referred-to provider), PID.
func (b Builder) REF(r *ReferralSubject) (*hl7v2.Message, error) {
	m, err := b.header("REF", EventReferralModified, "REF_I12")
	if err != nil {
		return nil, err
	}
	w := writer{m: m}
	w.set("RF1-1.1", string(r.Status))
	w.set("RF1-1.2", referralStatusText[r.Status])
	w.set("RF1-1.3", "HL70283")
	if u := ubrn(r.Referral); u != "" {
		w.set("RF1-6.1", u)
		w.set("RF1-6.2", UBRNNamespace)
	}
	w.set("RF1-9", b.time(b.now()))
	if r.ReasonCode != "" || r.ReasonText != "" {
		w.set("RF1-10.1", r.ReasonCode)
		w.set("RF1-10.2", r.ReasonText)
	}
	w.set("RF1-11.1", r.Referral.ID)
	w.set("RF1-11.2", b.Settings.Application)
	n := 0
	for _, p := range []struct{ role, id, name string }{{"RP", r.RequesterID, r.RequesterName}, {"RT", r.PerformerID, r.PerformerName}} {
		if p.id == "" && p.name == "" {
			continue
		}
		n++
		seg := fmt.Sprintf("PRD[%d]", n)
		w.set(seg+"-1.1", p.role)
		w.set(seg+"-2.1", p.name)
		w.set(seg+"-7.1", p.id)
	}
	b.pid(&w, &Subject{Patient: r.Patient})
	return w.done()
}

var referralStatusText = map[ReferralStatus]string{
	ReferralAccepted: "Accepted", ReferralPending: "Pending", ReferralRejected: "Rejected", ReferralExpired: "Expired",
}

// header starts a message of type code^event^structure with MSH filled
// from the settings and its control id (Builder.ControlID, else a fresh one).
func (b Builder) header(code, event, structure string) (*hl7v2.Message, error) {
	m, err := hl7v2.NewMessage(hl7v2.DefaultDelimiters)
	if err != nil {
		return nil, err
	}
	w := writer{m: m}
	w.set("MSH-3.1", b.Settings.Application)
	w.set("MSH-4.1", b.Settings.Facility)
	w.set("MSH-5.1", b.Settings.PASApplication)
	w.set("MSH-6.1", b.Settings.PASFacility)
	w.set("MSH-7", b.time(b.now()))
	w.set("MSH-9.1", code)
	w.set("MSH-9.2", event)
	if b.Settings.Version >= "2.3.1" {
		w.set("MSH-9.3", structure)
	}
	ctl := b.ControlID
	if ctl == "" {
		ctl = NewControlID()
	}
	w.set("MSH-10", ctl)
	w.set("MSH-11.1", "P")
	w.set("MSH-12.1", b.Settings.Version)
	if w.err != nil {
		return nil, w.err
	}
	return m, nil
}

// sch writes the SCH segment.
func (b Builder) sch(w *writer, event string, s *Subject, a *apptView) {
	w.set("SCH-1.1", s.placer())
	w.set("SCH-1.2", b.Settings.Application)
	if f := filler(a, b.Instance); f != "" {
		w.set("SCH-2.1", f)
		w.set("SCH-2.2", b.Settings.PASApplication)
	}
	b.reason(w, "SCH-6", event, a)
	b.appointmentType(w, "SCH-8", a)
	if mins := a.minutes(); mins > 0 {
		w.set("SCH-9", strconv.Itoa(mins))
		w.set("SCH-10.1", "min")
	}
	w.set("SCH-11.4", b.time(a.start))
	w.set("SCH-11.5", b.time(a.end))
	w.set("SCH-25.1", FillerStatus(a.status))
	w.set("SCH-25.3", "HL70278")
	if u := ubrn(s.Referral); u != "" {
		w.set("SCH-26.1", u)
		w.set("SCH-26.2", UBRNNamespace)
	}
}

// reason writes the event reason (SCH-6, ARQ-6): the cancellation reason
// of a cancelled appointment, else the event's name.
func (b Builder) reason(w *writer, path, event string, a *apptView) {
	text := eventText[event]
	if a.CancelationReason != nil && (event == EventCancelled || event == EventRequestCancel) {
		if t := conceptText(*a.CancelationReason); t != "" {
			text = t
		}
	}
	w.set(path+".1", event)
	w.set(path+".2", text)
}

var eventText = map[string]string{
	EventBooked: "Booked", EventRescheduled: "Rescheduled", EventModified: "Modified",
	EventCancelled: "Cancelled", EventNoShow: "Did not attend",
	EventRequestBooking: "Booking requested", EventRequestModify: "Modification requested",
	EventRequestCancel: "Cancellation requested",
}

// appointmentType writes Appointment.appointmentType (SCH-8, ARQ-8).
func (b Builder) appointmentType(w *writer, path string, a *apptView) {
	if a.AppointmentType == nil || len(a.AppointmentType.Coding) == 0 {
		return
	}
	c := a.AppointmentType.Coding[0]
	w.set(path+".1", elem.Str(c.Code))
	w.set(path+".2", elem.Str(c.Display))
	w.set(path+".3", codingSystem(elem.Str(c.System)))
}

// pid writes PID (nothing without a patient).
func (b Builder) pid(w *writer, s *Subject) {
	if s.Patient == nil {
		return
	}
	var p struct {
		Identifier []r4.Identifier `json:"identifier"`
		Name       []r4.HumanName  `json:"name"`
		BirthDate  *string         `json:"birthDate"`
		Gender     string          `json:"gender"`
		Address    []r4.Address    `json:"address"`
	}
	if err := json.Unmarshal(s.Patient.JSON, &p); err != nil {
		w.fail(fmt.Errorf("%s: %w", s.Patient.Reference(), err))
		return
	}
	w.set("PID-1", "1")
	rep := 0
	for _, want := range []string{referral.NHSNumberSystem, b.Settings.PASNumberSystem} {
		for _, id := range p.Identifier {
			if elem.Str(id.System) != want || elem.Str(id.Value) == "" {
				continue
			}
			rep++
			f := fmt.Sprintf("PID-3[%d]", rep)
			w.set(f+".1", elem.Str(id.Value))
			if want == referral.NHSNumberSystem {
				w.set(f+".4", "NHS")
				w.set(f+".5", "NH")
			} else {
				w.set(f+".4", b.Settings.PASFacility)
				w.set(f+".5", "PI")
			}
			break
		}
	}
	if rep == 0 { // PID-3 is required: the patient's id in Signpost
		w.set("PID-3.1", s.Patient.ID)
		w.set("PID-3.4", b.Settings.Application)
		w.set("PID-3.5", "PT")
	}
	if n := bestName(p.Name); n != nil {
		w.set("PID-5.1", elem.Str(n.Family))
		if len(n.Given) > 0 {
			w.set("PID-5.2", n.Given[0])
		}
		if len(n.Given) > 1 {
			w.set("PID-5.3", strings.Join(n.Given[1:], " "))
		}
		if len(n.Prefix) > 0 {
			w.set("PID-5.5", n.Prefix[0])
		}
		w.set("PID-5.7", "L")
	}
	if p.BirthDate != nil {
		w.set("PID-7", strings.ReplaceAll(*p.BirthDate, "-", ""))
	}
	w.set("PID-8", administrativeSex[p.Gender])
	if len(p.Address) > 0 {
		ad := p.Address[0]
		if len(ad.Line) > 0 {
			w.set("PID-11.1", ad.Line[0])
		}
		if len(ad.Line) > 1 {
			w.set("PID-11.2", strings.Join(ad.Line[1:], ", "))
		}
		w.set("PID-11.3", elem.Str(ad.City))
		w.set("PID-11.4", elem.Str(ad.District))
		w.set("PID-11.5", elem.Str(ad.PostalCode))
		w.set("PID-11.6", elem.Str(ad.Country))
	}
}

// administrativeSex is table 0001 from Patient.gender (AdministrativeSex
// mapping, reversed).
var administrativeSex = map[string]string{"male": "M", "female": "F", "other": "O", "unknown": "U"}

// bestName picks the official name, else the usual one, else the first.
func bestName(names []r4.HumanName) *r4.HumanName {
	for _, use := range []string{"official", "usual"} {
		for i := range names {
			if names[i].Use != nil && names[i].Use.Code() == use {
				return &names[i]
			}
		}
	}
	if len(names) > 0 {
		return &names[0]
	}
	return nil
}

// pv1 writes PV1: an outpatient visit at the clinic.
func (b Builder) pv1(w *writer, s *Subject) {
	if s.Patient == nil {
		return
	}
	w.set("PV1-1", "1")
	w.set("PV1-2", "O")
	if c := b.clinic(s); c != "" {
		w.set("PV1-3.1", c)
		w.set("PV1-3.4", b.Settings.PASFacility)
	}
}

// resources writes RGS, AIS, AIL and AIP, each with the appointment's
// start and duration and the filler status of status.
func (b Builder) resources(w *writer, status string, s *Subject, a *apptView) {
	start, mins := b.time(a.start), ""
	if n := a.minutes(); n > 0 {
		mins = strconv.Itoa(n)
	}
	fs := FillerStatus(status)
	w.set("RGS-1", "1")
	w.set("AIS-1", "1")
	if len(a.ServiceType) > 0 && len(a.ServiceType[0].Coding) > 0 {
		c := a.ServiceType[0].Coding[0]
		w.set("AIS-3.1", elem.Str(c.Code))
		w.set("AIS-3.2", elem.Str(c.Display))
		w.set("AIS-3.3", codingSystem(elem.Str(c.System)))
	} else if s.Service != nil {
		var hs struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(s.Service.JSON, &hs)
		w.set("AIS-3.1", s.Service.ID)
		w.set("AIS-3.2", hs.Name)
		w.set("AIS-3.3", ServiceCodingSystem)
	}
	w.set("AIS-4", start)
	if mins != "" {
		w.set("AIS-7", mins)
		w.set("AIS-8.1", "min")
	}
	w.set("AIS-10.1", fs)
	if c := b.clinic(s); c != "" || s.Schedule != nil {
		w.set("AIL-1", "1")
		if c == "" {
			c = s.Schedule.ID // not mapped: the PAS learns Signpost's schedule id
		}
		w.set("AIL-3.1", c)
		w.set("AIL-3.4", b.Settings.PASFacility)
		w.set("AIL-6", start)
		if mins != "" {
			w.set("AIL-9", mins)
			w.set("AIL-10.1", "min")
		}
		w.set("AIL-12.1", fs)
	}
	for i, pr := range s.Practitioner {
		var p r4.Practitioner
		if err := json.Unmarshal(pr.JSON, &p); err != nil {
			w.fail(fmt.Errorf("%s: %w", pr.Reference(), err))
			return
		}
		seg := fmt.Sprintf("AIP[%d]", i+1)
		w.set(seg+"-1", strconv.Itoa(i+1))
		id := pr.ID
		if len(p.Identifier) > 0 && elem.Str(p.Identifier[0].Value) != "" {
			id = elem.Str(p.Identifier[0].Value)
		}
		w.set(seg+"-3.1", id)
		if n := bestName(p.Name); n != nil {
			w.set(seg+"-3.2", elem.Str(n.Family))
			if len(n.Given) > 0 {
				w.set(seg+"-3.3", n.Given[0])
			}
		}
		w.set(seg+"-4.1", "ATND")
		w.set(seg+"-4.2", "attender")
		w.set(seg+"-4.3", "HL70443")
		w.set(seg+"-6", start)
		if mins != "" {
			w.set(seg+"-9", mins)
			w.set(seg+"-10.1", "min")
		}
		w.set(seg+"-12.1", fs)
	}
}

// clinic is the PAS clinic code of s's schedule: the key Settings.Clinics
// maps to it, or "".
func (b Builder) clinic(s *Subject) string {
	if s.Schedule == nil {
		return ""
	}
	best := ""
	for code, sched := range b.Settings.Clinics {
		if sched == s.Schedule.ID && (best == "" || code < best) { // several codes: the first in order, so messages are stable
			best = code
		}
	}
	return best
}

// FillerStatus is the table 0278 filler status of an Appointment status
// (the FillerStatusCodes mapping, reversed); "" for one it has none for
// (proposed, arrived).
func FillerStatus(status string) string {
	switch status {
	case "pending":
		return "Pending"
	case "waitlist":
		return "Waitlist"
	case "booked":
		return "Booked"
	case "checked-in":
		return "Started"
	case "fulfilled":
		return "Complete"
	case "cancelled":
		return "Cancelled"
	case "entered-in-error":
		return "Deleted"
	case "noshow":
		return "Noshow"
	}
	return ""
}

// codingSystem is the HL7 v2 coding system name for a FHIR system: SNOMED
// CT's is SCT; any other URI is written as it is.
func codingSystem(system string) string {
	if system == "http://snomed.info/sct" {
		return "SCT"
	}
	return system
}

func (b Builder) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// time writes t as an HL7 date/time in the builder's location; "" for
// the zero time.
func (b Builder) time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	loc := b.Location
	if loc == nil {
		loc = time.UTC
	}
	return hl7v2.FormatTime(t.In(loc))
}

// view reads s's appointment.
func (b Builder) view(s *Subject) (*apptView, error) {
	if s == nil || s.Appointment == nil {
		return nil, fmt.Errorf("pas: a message about an appointment needs the appointment")
	}
	var a apptView
	if err := json.Unmarshal(s.Appointment.JSON, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Appointment.Reference(), err)
	}
	var err error
	if a.Start != "" {
		if a.start, err = time.Parse(time.RFC3339, a.Start); err != nil {
			return nil, fmt.Errorf("%s: start: %w", s.Appointment.Reference(), err)
		}
	}
	if a.End != "" {
		if a.end, err = time.Parse(time.RFC3339, a.End); err != nil {
			return nil, fmt.Errorf("%s: end: %w", s.Appointment.Reference(), err)
		}
	}
	a.status = a.Status
	return &a, nil
}

// apptView is what the messages read of an Appointment.
type apptView struct {
	Status            string               `json:"status"`
	Start             string               `json:"start"`
	End               string               `json:"end"`
	MinutesDuration   int                  `json:"minutesDuration"`
	Slot              []r4.Reference       `json:"slot"`
	BasedOn           []r4.Reference       `json:"basedOn"`
	ServiceType       []r4.CodeableConcept `json:"serviceType"`
	AppointmentType   *r4.CodeableConcept  `json:"appointmentType"`
	CancelationReason *r4.CodeableConcept  `json:"cancelationReason"`
	Identifier        []r4.Identifier      `json:"identifier"`
	Participant       []struct {
		Actor  r4.Reference `json:"actor"`
		Status string       `json:"status"`
	} `json:"participant"`

	status     string
	start, end time.Time
}

// minutes is the appointment's length in minutes.
func (a *apptView) minutes() int {
	if a.MinutesDuration > 0 {
		return a.MinutesDuration
	}
	if !a.start.IsZero() && a.end.After(a.start) {
		return int(a.end.Sub(a.start) / time.Minute)
	}
	return 0
}

// scheduleView is what LoadSubject reads of a Schedule (and slotView,
// feed.go, of a Slot).
type scheduleView struct {
	Actor []r4.Reference `json:"actor"`
}

// filler is the PAS's id of the appointment for instance, or "".
func filler(a *apptView, instance string) string {
	return identifierOf(a.Identifier, FillerSystem(instance))
}

// ubrn is the referral's UBRN, or "".
func ubrn(sr *fhir.Resource) string {
	if sr == nil {
		return ""
	}
	return identifierIn(sr.JSON, referral.UBRNSystem)
}

// conceptText is a concept's text, else its first coding's display or code.
func conceptText(c r4.CodeableConcept) string {
	if t := elem.Str(c.Text); t != "" {
		return t
	}
	for _, cd := range c.Coding {
		if d := elem.Str(cd.Display); d != "" {
			return d
		}
		return elem.Str(cd.Code)
	}
	return ""
}

// writer sets fields of a message in order, keeping the first error.
type writer struct {
	m   *hl7v2.Message
	err error
}

// set writes value at path; an empty value writes nothing (the segment is
// still created when path starts one, so required segments appear).
func (w *writer) set(path, value string) {
	if w.err != nil {
		return
	}
	p, err := parsePath(path)
	if err != nil {
		w.err = err
		return
	}
	if value == "" && w.m.Segment(p.Segment, p.SegRep) != nil {
		return
	}
	if err := w.m.SetPath(p, value); err != nil {
		w.err = err
	}
}

// paths caches the parsed paths the builders write: the same few dozen
// for every message, parsed once.
var paths sync.Map // string → hl7v2.Path

func parsePath(s string) (hl7v2.Path, error) {
	if p, ok := paths.Load(s); ok {
		return p.(hl7v2.Path), nil
	}
	p, err := hl7v2.ParsePath(s)
	if err != nil {
		return p, err
	}
	paths.Store(s, p)
	return p, nil
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) done() (*hl7v2.Message, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.m, nil
}
