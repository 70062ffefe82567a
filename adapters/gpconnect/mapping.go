package gpconnect

// The adapter's use of the STU3 ↔ R4 mapping (package stu3): reading a
// free-slot search, building the Appointment the practice books and the
// Patient it registers, and reading the practice's errors.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// practice is the mapping of the instance's practice; refs maps Signpost
// references to the practice's (a Signpost Patient to the practice's).
func (a *Adapter) practice(refs map[string]string) stu3.Practice {
	return stu3.Practice{ODS: a.set.ODSCode, Refs: refs}
}

// readSearchset maps a free-slot searchset and adds its Schedules, Slots,
// Practitioners and Locations to found. A slot the practice lists as
// anything but free is ignored (GP Connect returns free slots only).
func (a *Adapter) readSearchset(body []byte, found *free) error {
	var b stu3.Bundle
	if err := json.Unmarshal(body, &b); err != nil {
		return fmt.Errorf("the practice's searchset cannot be read: %w", err)
	}
	res, err := a.practice(nil).SlotSearchToR4(&b)
	if err != nil {
		return fmt.Errorf("the practice's searchset cannot be mapped: %w", err)
	}
	for i := range res.Schedules {
		s := &res.Schedules[i]
		ps := &practiceSchedule{id: elem.Str(s.Id)}
		for _, c := range s.ServiceCategory {
			if t := elem.Str(c.Text); t != "" {
				ps.category = append(ps.category, t)
			}
			for _, cd := range c.Coding {
				ps.category = append(ps.category, elem.Str(cd.Code))
			}
		}
		if ps.r4, err = asMap(s); err != nil {
			return err
		}
		found.schedules[ps.id] = ps
	}
	for i := range res.Slots {
		s := &res.Slots[i]
		if s.Status != r4.SlotStatusFree {
			continue
		}
		start, err1 := time.Parse(time.RFC3339, s.Start)
		end, err2 := time.Parse(time.RFC3339, s.End)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("the practice's Slot %s has no start or end Signpost can read", elem.Str(s.Id))
		}
		_, sched, _ := cutRef(elem.Str(s.Schedule.Reference))
		ps := &practiceSlot{id: elem.Str(s.Id), schedule: sched, start: start, end: end}
		if ps.r4, err = asMap(s); err != nil {
			return err
		}
		found.slots[ps.id] = ps
	}
	for i := range res.Practitioners {
		m, err := asMap(&res.Practitioners[i])
		if err != nil {
			return err
		}
		found.others = append(found.others, m)
	}
	for i := range res.Locations {
		l := res.Locations[i]
		// The practice's organisations are not copied (Signpost's
		// directory has its own): apply points its locations at the
		// organisation providing the practice's services.
		l.ManagingOrganization = nil
		m, err := asMap(&l)
		if err != nil {
			return err
		}
		found.others = append(found.others, m)
	}
	return nil
}

// cutRef splits "Type/id".
func cutRef(ref string) (typ, id string, ok bool) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:], true
		}
	}
	return "", "", false
}

// asMap is v's JSON as a map.
func asMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// practiceError reads the practice's error answer.
func practiceError(resp *response) *stu3.Error {
	return stu3.ParseError(resp.status, resp.body)
}

// duplicate reports whether the practice refused a booking as a duplicate
// (409 DUPLICATE_REJECTED: the slot is taken).
func duplicate(e *stu3.Error) bool {
	return errors.Is(e, &stu3.Error{Code: stu3.CodeDuplicateRejected})
}

// bookingAppointment is the STU3 Appointment asking the practice to book
// b for its patient (the practice's id patient): the Signpost appointment
// mapped, booked, with a description (GP Connect requires one), the
// slot's location as a participant, and the organisation of the
// principal who asked as the booking organisation.
func (a *Adapter) bookingAppointment(b *gpBooking, patient string) (*stu3.Appointment, error) {
	var appt r4.Appointment
	if err := json.Unmarshal(b.appt, &appt); err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, p := range appt.Participant {
		if p.Actor != nil {
			if typ, _, ok := cutRef(elem.Str(p.Actor.Reference)); ok && typ == "Patient" {
				refs[elem.Str(p.Actor.Reference)] = "Patient/" + patient
			}
		}
	}
	appt.Status = r4.AppointmentStatusBooked
	if elem.Str(appt.Description) == "" {
		appt.Description = elem.Opt("Appointment booked through Signpost")
	}
	if appt.Created == nil {
		appt.Created = elem.Opt(a.env.Now().UTC().Format(time.RFC3339))
	}
	if appt.Start == nil || appt.End == nil {
		appt.Start, appt.End = elem.Opt(b.start), elem.Opt(b.end)
	}
	for _, loc := range b.locations {
		appt.Participant = append(appt.Participant, r4.AppointmentParticipant{
			Actor: &r4.Reference{Reference: elem.Opt(loc)}, Status: r4.ParticipationStatusAccepted})
	}
	return a.practice(refs).AppointmentFromR4(&appt, stu3.AppointmentOptions{BookingOrganization: a.bookingOrganization(b)})
}

// bookingOrganization is the organisation of the principal who asked, as
// GP Connect's booking organisation: its ODS code, name, telephone and
// the consumer's organisation type.
func (a *Adapter) bookingOrganization(b *gpBooking) *stu3.Organization {
	ods, name := unknownIdentifier, b.orgName
	if b.who != nil && b.who.Organization != "" {
		ods = b.who.Organization
	}
	if name == "" {
		name = ods
	}
	o := &stu3.Organization{
		Identifier: []stu3.Identifier{{System: stu3.ODSOrganizationSystem, Value: ods}},
		Name:       name,
		Type:       []stu3.CodeableConcept{{Coding: []stu3.Coding{{System: stu3.OrganisationTypeSystem, Code: a.set.OrganisationType}}}},
	}
	if b.orgPhone != "" {
		o.Telecom = stu3.List[stu3.ContactPoint]{{System: "phone", Value: b.orgPhone, Use: "work"}}
	}
	return o
}

// temporaryPatient is the STU3 Patient registering b's patient at the
// practice.
func (a *Adapter) temporaryPatient(b *gpBooking) (*stu3.Patient, error) {
	var p r4.Patient
	if err := json.Unmarshal(b.patient, &p); err != nil {
		return nil, err
	}
	return a.practice(nil).PatientFromR4(&p)
}

// edited is the practice's appointment cur (STU3, as read) with m's
// change: cancelled with its reason, or its comment and description
// amended.
func (a *Adapter) edited(cur map[string]any, m *message) (map[string]any, error) {
	switch m.Op {
	case opCancel:
		cur["status"] = "cancelled"
		exts, _ := cur["extension"].([]any)
		var keep []any
		for _, x := range exts {
			if xm, ok := x.(map[string]any); ok && xm["url"] == stu3.ExtCancellationReason {
				continue
			}
			keep = append(keep, x)
		}
		reason := m.Reason
		if reason == "" {
			reason = "Cancelled through Signpost"
		}
		cur["extension"] = append(keep, map[string]any{"url": stu3.ExtCancellationReason, "valueString": reason})
	case opAmend:
		setOrDelete(cur, "comment", m.Comment)
		if m.Description != "" {
			cur["description"] = m.Description
		}
	default:
		return nil, fmt.Errorf("unknown operation %q", m.Op)
	}
	return cur, nil
}

func setOrDelete(m map[string]any, k, v string) {
	if v == "" {
		delete(m, k)
		return
	}
	m[k] = v
}
