package stu3

import (
	"fmt"
	"strings"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// SlotToR4 maps a practice's Slot to a Signpost Slot: id ID(ODS, id), the
// practice's id as a SlotSystem identifier, the schedule reference in
// Signpost's id space, the delivery channel extension kept.
func (p Practice) SlotToR4(s *Slot) (*r4.Slot, error) {
	var e errs
	checkType(&e, s.ResourceType, "Slot")
	id, err := ID(p.ODS, s.ID)
	e.add("Slot.id", err)
	out := &r4.Slot{
		Id:              opt(id),
		Identifier:      p.identifiers4(&e, "Slot.identifier", s.Identifier, SlotSystem, s.ID),
		Extension:       p.extensions4(&e, "Slot.extension", s.Extension),
		ServiceCategory: concept4(&e, "Slot.serviceCategory", s.ServiceCategory),
		ServiceType:     conv[[]r4.CodeableConcept](&e, "Slot.serviceType", s.ServiceType),
		Specialty:       conv[[]r4.CodeableConcept](&e, "Slot.specialty", s.Specialty),
		AppointmentType: conv[*r4.CodeableConcept](&e, "Slot.appointmentType", s.AppointmentType),
		Start:           required(&e, "Slot.start", s.Start),
		End:             required(&e, "Slot.end", s.End),
		Overbooked:      s.Overbooked,
		Comment:         opt(s.Comment),
	}
	required(&e, "Slot.schedule", s.Schedule.Reference)
	out.Schedule = *p.reference4(&e, "Slot.schedule", &s.Schedule)
	if st := code4[r4.SlotStatus](&e, "Slot.status", s.Status, true); st != nil {
		out.Status = *st
	}
	return out, e.err()
}

// SlotFromR4 maps a Signpost Slot of the practice back to the practice's
// Slot.
func (p Practice) SlotFromR4(s *r4.Slot) (*Slot, error) {
	var e errs
	id := p.practiceIDFrom(s.Identifier, SlotSystem, s.Id)
	if id == "" {
		e.addf("Slot.identifier", "no %s identifier of practice %s", SlotSystem, p.ODS)
	}
	out := &Slot{
		ResourceType:    "Slot",
		ID:              id,
		Meta:            meta3(ProfileSlot),
		Extension:       p.extensions3(&e, "Slot.extension", s.Extension),
		Identifier:      p.identifiers3(&e, "Slot.identifier", s.Identifier),
		ServiceCategory: concept3(&e, "Slot.serviceCategory", s.ServiceCategory),
		ServiceType:     conv[[]CodeableConcept](&e, "Slot.serviceType", s.ServiceType),
		Specialty:       conv[[]CodeableConcept](&e, "Slot.specialty", s.Specialty),
		AppointmentType: conv[*CodeableConcept](&e, "Slot.appointmentType", s.AppointmentType),
		Status:          s.Status.Code(),
		Start:           s.Start,
		End:             s.End,
		Overbooked:      s.Overbooked,
		Comment:         str(s.Comment),
	}
	if r := p.reference3(&e, "Slot.schedule", &s.Schedule); r != nil {
		out.Schedule = *r
	} else {
		e.addf("Slot.schedule", "%s is not a schedule of practice %s", str(s.Schedule.Reference), p.ODS)
	}
	return out, e.err()
}

// ScheduleToR4 maps a practice's Schedule to a Signpost Schedule whose
// actors are the practice's (Practitioner, Location) and the Signpost
// HealthcareServices of p.Services; the practitioner role extension kept.
func (p Practice) ScheduleToR4(s *Schedule) (*r4.Schedule, error) {
	var e errs
	checkType(&e, s.ResourceType, "Schedule")
	id, err := ID(p.ODS, s.ID)
	e.add("Schedule.id", err)
	if len(s.Actor) == 0 {
		e.addf("Schedule.actor", "missing")
	}
	out := &r4.Schedule{
		Id:              opt(id),
		Identifier:      p.identifiers4(&e, "Schedule.identifier", s.Identifier, "", ""),
		Extension:       p.extensions4(&e, "Schedule.extension", s.Extension),
		Active:          s.Active,
		ServiceCategory: concept4(&e, "Schedule.serviceCategory", s.ServiceCategory),
		ServiceType:     conv[[]r4.CodeableConcept](&e, "Schedule.serviceType", s.ServiceType),
		Specialty:       conv[[]r4.CodeableConcept](&e, "Schedule.specialty", s.Specialty),
		Actor:           p.references4(&e, "Schedule.actor", practiceActors(s.Actor)),
		PlanningHorizon: conv[*r4.Period](&e, "Schedule.planningHorizon", s.PlanningHorizon),
		Comment:         opt(s.Comment),
	}
	for _, hs := range p.Services {
		out.Actor = append(out.Actor, r4.Reference{Reference: opt(hs)})
	}
	return out, e.err()
}

// practiceActors leaves out a Schedule's HealthcareService actors: the
// practice's own services have no Signpost resource; the Signpost
// services it stands for (Practice.Services) take their place.
func practiceActors(rs []Reference) []Reference {
	var out []Reference
	for _, r := range rs {
		if !strings.HasPrefix(r.Reference, "HealthcareService/") {
			out = append(out, r)
		}
	}
	return out
}

// ScheduleFromR4 maps a Signpost Schedule of the practice back; its
// Signpost-only actors (the HealthcareServices) are left out.
func (p Practice) ScheduleFromR4(s *r4.Schedule) (*Schedule, error) {
	var e errs
	id, ok := PracticeID(p.ODS, str(s.Id))
	if !ok {
		e.addf("Schedule.id", "%q is not a schedule of practice %s", str(s.Id), p.ODS)
	}
	out := &Schedule{
		ResourceType:    "Schedule",
		ID:              id,
		Meta:            meta3(ProfileSchedule),
		Extension:       p.extensions3(&e, "Schedule.extension", s.Extension),
		Identifier:      p.identifiers3(&e, "Schedule.identifier", s.Identifier),
		Active:          s.Active,
		ServiceCategory: concept3(&e, "Schedule.serviceCategory", s.ServiceCategory),
		ServiceType:     conv[[]CodeableConcept](&e, "Schedule.serviceType", s.ServiceType),
		Specialty:       conv[[]CodeableConcept](&e, "Schedule.specialty", s.Specialty),
		Actor:           p.references3(&e, "Schedule.actor", s.Actor),
		PlanningHorizon: conv[*Period](&e, "Schedule.planningHorizon", s.PlanningHorizon),
		Comment:         str(s.Comment),
	}
	if len(out.Actor) == 0 {
		e.addf("Schedule.actor", "no actor the practice knows")
	}
	return out, e.err()
}

// AppointmentToR4 maps a practice's Appointment to R4. The result has no
// id (a Signpost Appointment keeps its own); the practice's id is an
// AppointmentSystem identifier. The booking organisation becomes a
// logical reference (ODS code and name), the cancellation reason
// Appointment.cancelationReason.text; the other GP Connect extensions are
// kept as they are.
func (p Practice) AppointmentToR4(a *Appointment) (*r4.Appointment, error) {
	var e errs
	checkType(&e, a.ResourceType, "Appointment")
	out := &r4.Appointment{
		Identifier:            p.identifiers4(&e, "Appointment.identifier", a.Identifier, AppointmentSystem, a.ID),
		ServiceCategory:       concept4(&e, "Appointment.serviceCategory", a.ServiceCategory),
		ServiceType:           conv[[]r4.CodeableConcept](&e, "Appointment.serviceType", a.ServiceType),
		Specialty:             conv[[]r4.CodeableConcept](&e, "Appointment.specialty", a.Specialty),
		AppointmentType:       conv[*r4.CodeableConcept](&e, "Appointment.appointmentType", a.AppointmentType),
		ReasonCode:            conv[[]r4.CodeableConcept](&e, "Appointment.reason", a.Reason),
		ReasonReference:       p.references4(&e, "Appointment.indication", a.Indication),
		Priority:              a.Priority,
		Description:           opt(a.Description),
		SupportingInformation: p.references4(&e, "Appointment.supportingInformation", a.SupportingInformation),
		Start:                 opt(a.Start),
		End:                   opt(a.End),
		MinutesDuration:       a.MinutesDuration,
		Slot:                  p.references4(&e, "Appointment.slot", a.Slot),
		Created:               opt(a.Created),
		Comment:               opt(a.Comment),
		BasedOn:               p.references4(&e, "Appointment.incomingReferral", a.IncomingReferral),
		RequestedPeriod:       conv[[]r4.Period](&e, "Appointment.requestedPeriod", a.RequestedPeriod),
	}
	if st := code4[r4.AppointmentStatus](&e, "Appointment.status", a.Status, true); st != nil {
		out.Status = *st
	}
	for i, x := range a.Extension {
		at := fmt.Sprintf("Appointment.extension[%d]", i)
		switch x.URL {
		case ExtCancellationReason:
			if x.ValueString != nil {
				out.CancelationReason = &r4.CodeableConcept{Text: x.ValueString}
			}
			continue
		case ExtBookingOrganisation:
			if x.ValueReference != nil && strings.HasPrefix(x.ValueReference.Reference, "#") {
				org := containedOrg(a.Contained, x.ValueReference.Reference[1:])
				if org == nil {
					e.addf(at, "the booking organisation %s is not contained", x.ValueReference.Reference)
					continue
				}
				out.Extension = append(out.Extension, r4.Extension{Url: ExtBookingOrganisation, ValueReference: bookingRef(org)})
				continue
			}
		}
		out.Extension = append(out.Extension, p.extensions4(&e, at, []Extension{x})...)
	}
	for i, pt := range a.Participant {
		at := fmt.Sprintf("Appointment.participant[%d]", i)
		q := r4.AppointmentParticipant{
			Type:  conv[[]r4.CodeableConcept](&e, at+".type", pt.Type),
			Actor: p.reference4(&e, at+".actor", pt.Actor),
		}
		q.Required = code4[r4.ParticipantRequired](&e, at+".required", pt.Required, false)
		if st := code4[r4.ParticipationStatus](&e, at+".status", pt.Status, true); st != nil {
			q.Status = *st
		}
		out.Participant = append(out.Participant, q)
	}
	if len(out.Participant) == 0 {
		e.addf("Appointment.participant", "missing")
	}
	return out, e.err()
}

// containedOrg is the contained Organization with id.
func containedOrg(cs []Organization, id string) *Organization {
	for i := range cs {
		if cs[i].ID == id {
			return &cs[i]
		}
	}
	return nil
}

// bookingRef is the R4 logical reference to a booking organisation: its
// ODS code and name.
func bookingRef(org *Organization) *r4.Reference {
	r := &r4.Reference{Display: opt(org.Name)}
	for _, id := range org.Identifier {
		if id.System == ODSOrganizationSystem {
			r.Identifier = &r4.Identifier{System: opt(ODSOrganizationSystem), Value: opt(id.Value)}
			break
		}
	}
	return r
}

// AppointmentOptions complete an STU3 Appointment from what a Signpost
// Appointment does not hold.
type AppointmentOptions struct {
	// BookingOrganization is the organisation booking (GP Connect wants
	// its ODS code, name and telephone); when nil, it is built from the
	// R4 booking organisation extension (ODS code and name only).
	BookingOrganization *Organization
}

// AppointmentFromR4 maps a Signpost Appointment to the practice's
// Appointment, as GP Connect books (POST), amends or cancels (PUT) it:
// the id from its AppointmentSystem identifier (none for a new booking),
// the slots and participants the practice knows (a Signpost Patient
// through p.Refs), the booking organisation contained, the cancellation
// reason from cancelationReason. Slots the practice does not know, or no
// patient it knows, are errors; other references it does not know are
// left out.
func (p Practice) AppointmentFromR4(a *r4.Appointment, o AppointmentOptions) (*Appointment, error) {
	var e errs
	out := &Appointment{
		ResourceType:          "Appointment",
		ID:                    p.practiceIDFrom(a.Identifier, AppointmentSystem, nil),
		Meta:                  meta3(ProfileAppointment),
		Identifier:            p.identifiers3(&e, "Appointment.identifier", a.Identifier),
		ServiceCategory:       concept3(&e, "Appointment.serviceCategory", a.ServiceCategory),
		ServiceType:           conv[[]CodeableConcept](&e, "Appointment.serviceType", a.ServiceType),
		Specialty:             conv[[]CodeableConcept](&e, "Appointment.specialty", a.Specialty),
		AppointmentType:       conv[*CodeableConcept](&e, "Appointment.appointmentType", a.AppointmentType),
		Reason:                conv[[]CodeableConcept](&e, "Appointment.reasonCode", a.ReasonCode),
		Indication:            p.references3(&e, "Appointment.reasonReference", a.ReasonReference),
		Priority:              a.Priority,
		Description:           str(a.Description),
		SupportingInformation: p.references3(&e, "Appointment.supportingInformation", a.SupportingInformation),
		Start:                 str(a.Start),
		End:                   str(a.End),
		MinutesDuration:       a.MinutesDuration,
		Created:               str(a.Created),
		Comment:               str(a.Comment),
		IncomingReferral:      p.references3(&e, "Appointment.basedOn", a.BasedOn),
		RequestedPeriod:       conv[[]Period](&e, "Appointment.requestedPeriod", a.RequestedPeriod),
	}
	switch st := a.Status.Code(); st {
	case "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow", "entered-in-error":
		out.Status = st
	default:
		e.addf("Appointment.status", "%q has no GP Connect (STU3) equivalent", st)
	}
	for i := range a.Slot {
		at := fmt.Sprintf("Appointment.slot[%d]", i)
		r := p.reference3(&e, at, &a.Slot[i])
		if r == nil {
			e.addf(at, "%s is not a slot of practice %s", str(a.Slot[i].Reference), p.ODS)
			continue
		}
		out.Slot = append(out.Slot, *r)
	}
	patient := false
	for i, pt := range a.Participant {
		at := fmt.Sprintf("Appointment.participant[%d]", i)
		actor := p.reference3(&e, at+".actor", pt.Actor)
		if pt.Actor != nil && actor == nil {
			if strings.HasPrefix(str(pt.Actor.Reference), "Patient/") {
				e.addf(at+".actor", "%s is not known at practice %s (find the patient there first)", str(pt.Actor.Reference), p.ODS)
			}
			continue
		}
		if actor != nil && strings.HasPrefix(actor.Reference, "Patient/") {
			patient = true
		}
		out.Participant = append(out.Participant, Participant{
			Type:     conv[[]CodeableConcept](&e, at+".type", pt.Type),
			Actor:    actor,
			Required: code3(pt.Required),
			Status:   pt.Status.Code(),
		})
	}
	if !patient {
		e.addf("Appointment.participant", "no patient known at practice %s", p.ODS)
	}
	// The booking organisation first, as GP Connect's examples order them.
	org := o.BookingOrganization
	if org == nil {
		for _, x := range a.Extension {
			if x.Url == ExtBookingOrganisation && x.ValueReference != nil {
				org = &Organization{Name: str(x.ValueReference.Display)}
				if id := x.ValueReference.Identifier; id != nil {
					org.Identifier = []Identifier{{System: str(id.System), Value: str(id.Value)}}
				}
			}
		}
	}
	if org != nil {
		c := *org
		c.ResourceType, c.ID = "Organization", "1"
		if c.Meta == nil {
			c.Meta = meta3(ProfileOrganization)
		}
		out.Contained = []Organization{c}
		out.Extension = append(out.Extension, Extension{URL: ExtBookingOrganisation, ValueReference: &Reference{Reference: "#1"}})
	}
	if a.CancelationReason != nil && out.Status == "cancelled" {
		reason := str(a.CancelationReason.Text)
		if reason == "" && len(a.CancelationReason.Coding) > 0 {
			reason = str(a.CancelationReason.Coding[0].Display)
			if reason == "" {
				reason = str(a.CancelationReason.Coding[0].Code)
			}
		}
		if reason != "" {
			out.Extension = append(out.Extension, Extension{URL: ExtCancellationReason, ValueString: &reason})
		}
	}
	out.Extension = append(out.Extension, p.extensions3(&e, "Appointment.extension", a.Extension, ExtBookingOrganisation, ExtCancellationReason)...)
	return out, e.err()
}
