package stu3

// The Ssp-InteractionID of each GP Connect 1.2.x interaction Signpost
// uses, and the requested_scope its JWT asks for.
const (
	InteractionMetadata            = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
	InteractionFindPatient         = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"
	InteractionRegisterPatient     = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.registerpatient-1"
	InteractionSearchSlots         = "urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1"
	InteractionBookAppointment     = "urn:nhs:names:services:gpconnect:fhir:rest:create:appointment-1"
	InteractionReadAppointment     = "urn:nhs:names:services:gpconnect:fhir:rest:read:appointment-1"
	InteractionAmendAppointment    = "urn:nhs:names:services:gpconnect:fhir:rest:update:appointment-1"
	InteractionCancelAppointment   = "urn:nhs:names:services:gpconnect:fhir:rest:cancel:appointment-1"
	InteractionPatientAppointments = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient_appointments-1"
)

// ScopeOf is the requested_scope GP Connect asks the JWT of an
// interaction to carry: organization/*.read for the metadata and the
// slot search, patient/*.write for registering and for booking, amending
// and cancelling, patient/*.read for the other patient reads.
func ScopeOf(interaction string) string {
	switch interaction {
	case InteractionMetadata, InteractionSearchSlots:
		return "organization/*.read"
	case InteractionRegisterPatient, InteractionBookAppointment, InteractionAmendAppointment, InteractionCancelAppointment:
		return "patient/*.write"
	case InteractionFindPatient, InteractionReadAppointment, InteractionPatientAppointments:
		return "patient/*.read"
	}
	return ""
}

// JWT claim values GP Connect fixes.
const (
	// Audience is the aud claim GP Connect 1.2.x fixes (the national
	// authorisation server's token URL).
	Audience = "https://authorize.fhir.nhs.net/token"
	// ReasonDirectCare is the only reason_for_request.
	ReasonDirectCare = "directcare"
	// MaxTokenLife is the longest exp - iat, in seconds.
	MaxTokenLife = 300
)

// Search parameter values of the free-slot search.
const (
	// MaxSlotWindowDays is the longest start..end of one slot search.
	MaxSlotWindowDays = 14
	// IncludeSchedule is the _include every slot search must carry.
	IncludeSchedule = "Slot:schedule"
)
