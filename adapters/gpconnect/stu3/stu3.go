// Package stu3 is the one place that maps GP Connect Appointment
// Management 1.2.x payloads (FHIR STU3) to Signpost's FHIR R4 resources
// (samply's typed models) and back: Slot, Schedule, Appointment, Patient,
// Practitioner, Location and Organization, the GP Connect extensions
// (booking organisation, delivery channel, practitioner role,
// cancellation reason), the searchset Bundle of a free-slot search, and
// GP Connect's OperationOutcomes as Go errors (Error).
//
// A Practice does the mapping for one GP practice (its ODS code): the
// practice's resources get Signpost ids of their own (ID), Slots and
// Appointments carry the practice's id as an identifier (SlotSystem,
// AppointmentSystem), and references are rewritten between the two id
// spaces. What does not survive a round trip, and why, is listed on
// Practice and in docs/gpconnect-mapping.md.
package stu3

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Identifier systems of the R4 side: a Signpost Slot or Appointment that
// stands for one at a GP practice carries the practice's id under these,
// qualified by the practice's ODS code (Qualify).
const (
	SlotSystem        = "https://signpost.example/fhir/Id/gpconnect-slot"
	AppointmentSystem = "https://signpost.example/fhir/Id/gpconnect-appointment"
)

// Identifier systems and code systems of GP Connect and Spine.
const (
	ODSOrganizationSystem  = "https://fhir.nhs.uk/Id/ods-organization-code"
	NHSNumberSystem        = "https://fhir.nhs.uk/Id/nhs-number"
	SDSUserSystem          = "https://fhir.nhs.uk/Id/sds-user-id"
	SDSRoleProfileSystem   = "https://fhir.nhs.uk/Id/sds-role-profile-id"
	OrganisationTypeSystem = "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-OrganisationType-1"
	SDSJobRoleSystem       = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-SDSJobRoleName-1"
)

// The GP Connect extensions, by the URLs of their published
// StructureDefinitions. The R4 side keeps the same URLs (Signpost
// defines no R4 equivalents), except the cancellation reason, which R4
// carries as Appointment.cancelationReason.
const (
	ExtBookingOrganisation = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1"
	ExtDeliveryChannel     = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2"
	ExtPractitionerRole    = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-PractitionerRole-1"
	ExtCancellationReason  = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1"
)

// The GP Connect profiles each mapped resource declares on the STU3 side.
const (
	ProfileSlot             = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Slot-1"
	ProfileSchedule         = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Schedule-1"
	ProfileAppointment      = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Appointment-1"
	ProfilePatient          = "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1"
	ProfilePractitioner     = "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Practitioner-1"
	ProfileLocation         = "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Location-1"
	ProfileOrganization     = "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Organization-1"
	ProfileOperationOutcome = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1"
	ProfileSearchset        = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Searchset-Bundle-1"
)

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	odsPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,12}$`)
)

// ID is the Signpost (R4) id of the resource a practice (ods) knows by
// id: "gpc-" + ods + "-" + id. It fails when the result is not a valid
// FHIR id (more than 64 characters, or characters FHIR ids do not allow).
func ID(ods, id string) (string, error) {
	if !odsPattern.MatchString(ods) {
		return "", fmt.Errorf("gpconnect: ODS code %q is not 1 to 12 letters and digits", ods)
	}
	out := "gpc-" + ods + "-" + id
	if id == "" || !idPattern.MatchString(out) {
		return "", fmt.Errorf("gpconnect: practice id %q of %s gives no valid FHIR id", id, ods)
	}
	return out, nil
}

// PracticeID is the inverse of ID: the practice's own id behind a
// Signpost id, if the id is one of practice ods's.
func PracticeID(ods, signpostID string) (string, bool) {
	id, ok := strings.CutPrefix(signpostID, "gpc-"+ods+"-")
	return id, ok && id != ""
}

// Qualify is the value of a SlotSystem or AppointmentSystem identifier:
// the practice's ODS code and its id, as "ODS/id", unique across
// practices.
func Qualify(ods, id string) string { return ods + "/" + id }

// Unqualify splits a Qualify value into the ODS code and the id.
func Unqualify(v string) (ods, id string, ok bool) {
	ods, id, ok = strings.Cut(v, "/")
	return ods, id, ok && ods != "" && id != ""
}

// convert re-encodes a datatype whose JSON is the same in STU3 and R4
// (Coding, CodeableConcept, Identifier, HumanName, ContactPoint, Address,
// Period, Extension with the value types of Extension): encoding one and
// decoding into the other is the mapping, and samply's decoders check
// the codes of required bindings on the way.
func convert[T any](from any) (T, error) {
	var to T
	b, err := json.Marshal(from)
	if err != nil {
		return to, err
	}
	err = json.Unmarshal(b, &to)
	return to, err
}

// convertAll converts each of a slice, or gives nil for an empty one.
func convertAll[T any, F any](from []F) ([]T, error) {
	if len(from) == 0 {
		return nil, nil
	}
	return convert[[]T](from)
}
