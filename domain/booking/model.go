package booking

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// Canonical URLs and codes Signpost's booking uses.
const (
	// ExtReplaces is the R5 cross-version extension a rescheduled
	// appointment carries, pointing at the appointment it replaces.
	ExtReplaces = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.replaces"
	// ExtPreviousAppointment is the R5 cross-version extension a follow-up
	// carries, pointing at the appointment it follows.
	ExtPreviousAppointment = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.previousAppointment"
	// ExtBreachReason (valueString) on an Appointment is why a
	// two-week-wait referral is booked later than its wait allows ($book,
	// $hold and $reschedule take it as the breach-reason input).
	ExtBreachReason = "https://signpost.example/fhir/StructureDefinition/two-week-wait-breach-reason"
	// ExtHoldExpires is the server-owned instant at which a hold (a pending
	// Appointment made by $hold) is released.
	ExtHoldExpires = "https://signpost.example/fhir/StructureDefinition/hold-expires"

	// BookabilitySystem codes HealthcareService.characteristic: a service
	// marked IndirectlyBookable cannot be booked directly.
	BookabilitySystem  = "https://signpost.example/fhir/CodeSystem/bookability"
	IndirectlyBookable = "indirectly-bookable"

	// NHSNumberSystem is the identifier system of NHS numbers.
	NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"

	// TagSystem codes booking's meta.tag values. TagExternallyBusy marks a
	// Slot an external system publishes as busy: no appointment here holds
	// it, and the consistency checker accepts that.
	TagSystem         = "https://signpost.example/fhir/CodeSystem/booking"
	TagExternallyBusy = "externally-busy"
)

// Signpost error codes (https://signpost.example/fhir/CodeSystem/error)
// that booking reports in OperationOutcome.issue.details.
const (
	ErrSlotNotAvailable    = "SLOT_NOT_AVAILABLE"
	ErrSlotInUse           = "SLOT_IN_USE"
	ErrHoldExpired         = "HOLD_EXPIRED"
	ErrProposalInvalid     = "PROPOSAL_INVALID"
	ErrNotBookable         = "SERVICE_NOT_BOOKABLE"
	ErrNotAmendable        = "APPOINTMENT_NOT_AMENDABLE"
	ErrIdempotencyKeyReuse = write.ErrIdempotencyKeyReuse
	ErrIdempotencyPending  = write.ErrIdempotencyPending
)

// slotStatus is the Slot status an appointment in a status holds its slots
// in; "" when that status holds no slot.
func slotStatus(apptStatus string) string {
	switch apptStatus {
	case "pending":
		return "busy-tentative"
	case "booked", "arrived", "checked-in", "fulfilled", "noshow":
		return "busy"
	}
	return ""
}

// liveStatuses are the Appointment statuses that hold slots.
const liveStatuses = "pending,booked,arrived,checked-in,fulfilled,noshow"

// The views below read the few members booking needs, with samply's R4
// datatypes (r4.Reference, r4.Coding, r4.Extension…) for their elements;
// resources are written back by patching their own JSON (fhir.Object).

// participant is the part of an Appointment.participant booking reads. It
// stays a lean view: r4.AppointmentParticipant reads status as an enum and
// refuses a participant without one.
type participant struct {
	Actor  *r4.Reference `json:"actor,omitempty"`
	Status string        `json:"status,omitempty"`
}

// appointment is the part of an Appointment booking reads.
type appointment struct {
	Status            string              `json:"status"`
	Start             string              `json:"start,omitempty"`
	End               string              `json:"end,omitempty"`
	Slot              []r4.Reference      `json:"slot,omitempty"`
	Participant       []participant       `json:"participant,omitempty"`
	CancelationReason *r4.CodeableConcept `json:"cancelationReason,omitempty"`
	Extension         []r4.Extension      `json:"extension,omitempty"`
}

func (a *appointment) live() bool { return slotStatus(a.Status) != "" }

// HoldsSlots reports whether an Appointment (its JSON) holds its slots:
// its status is one of the live ones, pending to noshow.
func HoldsSlots(appointmentJSON []byte) bool {
	a, err := decode[appointment](appointmentJSON)
	return err == nil && a.live()
}

// slotIDs returns the ids of the appointment's slots, in order.
func (a *appointment) slotIDs() ([]string, error) {
	var ids []string
	for i, r := range a.Slot {
		id, ok := refID(elem.Str(r.Reference), "Slot")
		if !ok {
			return nil, fhir.Errorf(fhir.Unprocessable, "invalid", "Appointment.slot["+itoa(i)+"]",
				"%q is not a reference to a Slot of this server", elem.Str(r.Reference))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// patient returns the reference of the first Patient participant.
func (a *appointment) patient() string {
	for _, p := range a.Participant {
		if p.Actor != nil {
			if _, ok := refID(elem.Str(p.Actor.Reference), "Patient"); ok {
				return elem.Str(p.Actor.Reference)
			}
		}
	}
	return ""
}

func (a *appointment) ext(url string) *r4.Extension {
	for i := range a.Extension {
		if a.Extension[i].Url == url {
			return &a.Extension[i]
		}
	}
	return nil
}

// slot is the part of a Slot booking reads.
type slot struct {
	Status   string       `json:"status"`
	Start    string       `json:"start"`
	End      string       `json:"end"`
	Schedule r4.Reference `json:"schedule"`
	Meta     struct {
		Tag []r4.Coding `json:"tag,omitempty"`
	} `json:"meta"`
}

func (s *slot) externallyBusy() bool {
	for _, t := range s.Meta.Tag {
		if elem.Str(t.System) == TagSystem && elem.Str(t.Code) == TagExternallyBusy {
			return true
		}
	}
	return false
}

// schedule is the part of a Schedule booking reads.
type schedule struct {
	Active          *bool          `json:"active,omitempty"`
	Actor           []r4.Reference `json:"actor"`
	PlanningHorizon *r4.Period     `json:"planningHorizon,omitempty"`
}

// healthcareService is the part of a HealthcareService booking reads.
type healthcareService struct {
	Characteristic []r4.CodeableConcept `json:"characteristic,omitempty"`
	Location       []r4.Reference       `json:"location,omitempty"`
}

func (h *healthcareService) indirectlyBookable() bool {
	for _, c := range h.Characteristic {
		for _, cd := range c.Coding {
			if elem.Str(cd.System) == BookabilitySystem && elem.Str(cd.Code) == IndirectlyBookable {
				return true
			}
		}
	}
	return false
}

func decode[T any](raw []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "", "cannot read the resource: %v", err)
	}
	return v, nil
}

// refID returns the id of a literal reference to a resource of typ:
// "Type/id", "Type/id/_history/n" or an absolute URL ending so.
func refID(ref, typ string) (string, bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 || parts[len(parts)-2] != typ || !fhir.ValidID(parts[len(parts)-1]) {
		return "", false
	}
	return parts[len(parts)-1], true
}

// parseInstant reads a FHIR instant (or dateTime with a time and offset).
func parseInstant(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// samePeriod reports whether two periods have the same start and end.
func samePeriod(a, b *r4.Period) bool {
	return elem.Str(a.Start) == elem.Str(b.Start) && elem.Str(a.End) == elem.Str(b.End)
}

func itoa(i int) string { return strconv.Itoa(i) }

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
