package stu3

import (
	"bytes"
	"encoding/json"
)

// The STU3 shapes GP Connect Appointment Management 1.2.x exchanges, as
// plain structs: only the elements the GP Connect profiles allow (and the
// base STU3 elements beside them a provider may send), with JSON names as
// in FHIR STU3. Optional primitives are pointers or empty strings with
// omitempty, so that what was absent stays absent when encoded again.

// Meta is a resource's metadata.
type Meta struct {
	VersionID   string   `json:"versionId,omitempty"`
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Profile     []string `json:"profile,omitempty"`
}

// Coding is a code in a system.
type Coding struct {
	System       string `json:"system,omitempty"`
	Version      string `json:"version,omitempty"`
	Code         string `json:"code,omitempty"`
	Display      string `json:"display,omitempty"`
	UserSelected *bool  `json:"userSelected,omitempty"`
}

// CodeableConcept is a concept as codings and/or text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Period is a time range; either end may be open.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Identifier is a business identifier; its extensions carry, for an NHS
// number, the verification status.
type Identifier struct {
	Extension []Extension      `json:"extension,omitempty"`
	Use       string           `json:"use,omitempty"`
	Type      *CodeableConcept `json:"type,omitempty"`
	System    string           `json:"system,omitempty"`
	Value     string           `json:"value,omitempty"`
	Period    *Period          `json:"period,omitempty"`
	Assigner  *Reference       `json:"assigner,omitempty"`
}

// Reference is a reference to another resource: literal ("Type/id",
// "#contained-id") or logical (by identifier).
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Extension is an extension with the value types GP Connect and Care
// Connect use, or nested extensions (complex extensions such as
// registration details).
type Extension struct {
	URL                  string           `json:"url"`
	Extension            []Extension      `json:"extension,omitempty"`
	ValueReference       *Reference       `json:"valueReference,omitempty"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueCoding          *Coding          `json:"valueCoding,omitempty"`
	ValueCode            *string          `json:"valueCode,omitempty"`
	ValueString          *string          `json:"valueString,omitempty"`
	ValueBoolean         *bool            `json:"valueBoolean,omitempty"`
	ValueInteger         *int             `json:"valueInteger,omitempty"`
	ValueDateTime        *string          `json:"valueDateTime,omitempty"`
	ValueDate            *string          `json:"valueDate,omitempty"`
	ValueURI             *string          `json:"valueUri,omitempty"`
	ValuePeriod          *Period          `json:"valuePeriod,omitempty"`
	ValueIdentifier      *Identifier      `json:"valueIdentifier,omitempty"`
}

// HumanName is a person's name.
type HumanName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Prefix []string `json:"prefix,omitempty"`
	Suffix []string `json:"suffix,omitempty"`
	Period *Period  `json:"period,omitempty"`
}

// ContactPoint is a telephone number, e-mail address or the like.
type ContactPoint struct {
	System string  `json:"system,omitempty"`
	Value  string  `json:"value,omitempty"`
	Use    string  `json:"use,omitempty"`
	Rank   *int    `json:"rank,omitempty"`
	Period *Period `json:"period,omitempty"`
}

// List is a list of T that also reads a single object where the base
// specification says an array: GP Connect's own published examples send
// Location.telecom, Organization.telecom and Organization.address as one
// object. It is encoded as an array, as STU3 defines it.
type List[T any] []T

// UnmarshalJSON reads an array of T or a single one.
func (l *List[T]) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
		var one T
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = List[T]{one}
		return nil
	}
	var many []T
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// Address is a postal address.
type Address struct {
	Extension  []Extension `json:"extension,omitempty"`
	Use        string      `json:"use,omitempty"`
	Type       string      `json:"type,omitempty"`
	Text       string      `json:"text,omitempty"`
	Line       []string    `json:"line,omitempty"`
	City       string      `json:"city,omitempty"`
	District   string      `json:"district,omitempty"`
	State      string      `json:"state,omitempty"`
	PostalCode string      `json:"postalCode,omitempty"`
	Country    string      `json:"country,omitempty"`
	Period     *Period     `json:"period,omitempty"`
}

// Slot is a GPConnect-Slot-1: a bookable time in a Schedule.
type Slot struct {
	ResourceType    string            `json:"resourceType"`
	ID              string            `json:"id,omitempty"`
	Meta            *Meta             `json:"meta,omitempty"`
	Extension       []Extension       `json:"extension,omitempty"`
	Identifier      []Identifier      `json:"identifier,omitempty"`
	ServiceCategory *CodeableConcept  `json:"serviceCategory,omitempty"`
	ServiceType     []CodeableConcept `json:"serviceType,omitempty"`
	Specialty       []CodeableConcept `json:"specialty,omitempty"`
	AppointmentType *CodeableConcept  `json:"appointmentType,omitempty"`
	Schedule        Reference         `json:"schedule"`
	Status          string            `json:"status"`
	Start           string            `json:"start"`
	End             string            `json:"end"`
	Overbooked      *bool             `json:"overbooked,omitempty"`
	Comment         string            `json:"comment,omitempty"`
}

// Schedule is a GPConnect-Schedule-1: the diary of a practitioner at a
// location.
type Schedule struct {
	ResourceType    string            `json:"resourceType"`
	ID              string            `json:"id,omitempty"`
	Meta            *Meta             `json:"meta,omitempty"`
	Extension       []Extension       `json:"extension,omitempty"`
	Identifier      []Identifier      `json:"identifier,omitempty"`
	Active          *bool             `json:"active,omitempty"`
	ServiceCategory *CodeableConcept  `json:"serviceCategory,omitempty"`
	ServiceType     []CodeableConcept `json:"serviceType,omitempty"`
	Specialty       []CodeableConcept `json:"specialty,omitempty"`
	Actor           []Reference       `json:"actor"`
	PlanningHorizon *Period           `json:"planningHorizon,omitempty"`
	Comment         string            `json:"comment,omitempty"`
}

// Participant is a participant of an Appointment.
type Participant struct {
	Type     []CodeableConcept `json:"type,omitempty"`
	Actor    *Reference        `json:"actor,omitempty"`
	Required string            `json:"required,omitempty"`
	Status   string            `json:"status"`
}

// Appointment is a GPConnect-Appointment-1. Contained holds the booking
// organisation (an Organization the BookingOrganisation extension names
// by "#id").
type Appointment struct {
	ResourceType          string            `json:"resourceType"`
	ID                    string            `json:"id,omitempty"`
	Meta                  *Meta             `json:"meta,omitempty"`
	Contained             []Organization    `json:"contained,omitempty"`
	Extension             []Extension       `json:"extension,omitempty"`
	Identifier            []Identifier      `json:"identifier,omitempty"`
	Status                string            `json:"status"`
	ServiceCategory       *CodeableConcept  `json:"serviceCategory,omitempty"`
	ServiceType           []CodeableConcept `json:"serviceType,omitempty"`
	Specialty             []CodeableConcept `json:"specialty,omitempty"`
	AppointmentType       *CodeableConcept  `json:"appointmentType,omitempty"`
	Reason                []CodeableConcept `json:"reason,omitempty"`
	Indication            []Reference       `json:"indication,omitempty"`
	Priority              *int              `json:"priority,omitempty"`
	Description           string            `json:"description,omitempty"`
	SupportingInformation []Reference       `json:"supportingInformation,omitempty"`
	Start                 string            `json:"start,omitempty"`
	End                   string            `json:"end,omitempty"`
	MinutesDuration       *int              `json:"minutesDuration,omitempty"`
	Slot                  []Reference       `json:"slot,omitempty"`
	Created               string            `json:"created,omitempty"`
	Comment               string            `json:"comment,omitempty"`
	IncomingReferral      []Reference       `json:"incomingReferral,omitempty"`
	Participant           []Participant     `json:"participant"`
	RequestedPeriod       []Period          `json:"requestedPeriod,omitempty"`
}

// PatientContact is a contact person of a Patient.
type PatientContact struct {
	Relationship []CodeableConcept  `json:"relationship,omitempty"`
	Name         *HumanName         `json:"name,omitempty"`
	Telecom      List[ContactPoint] `json:"telecom,omitempty"`
	Address      *Address           `json:"address,omitempty"`
	Gender       string             `json:"gender,omitempty"`
	Organization *Reference         `json:"organization,omitempty"`
	Period       *Period            `json:"period,omitempty"`
}

// Communication is a language a person speaks.
type Communication struct {
	Extension []Extension     `json:"extension,omitempty"`
	Language  CodeableConcept `json:"language"`
	Preferred *bool           `json:"preferred,omitempty"`
}

// Patient is a CareConnect-GPC-Patient-1, as Find a patient returns it;
// its extensions carry registration details.
type Patient struct {
	ResourceType         string             `json:"resourceType"`
	ID                   string             `json:"id,omitempty"`
	Meta                 *Meta              `json:"meta,omitempty"`
	Extension            []Extension        `json:"extension,omitempty"`
	Identifier           []Identifier       `json:"identifier,omitempty"`
	Active               *bool              `json:"active,omitempty"`
	Name                 []HumanName        `json:"name,omitempty"`
	Telecom              List[ContactPoint] `json:"telecom,omitempty"`
	Gender               string             `json:"gender,omitempty"`
	BirthDate            string             `json:"birthDate,omitempty"`
	DeceasedBoolean      *bool              `json:"deceasedBoolean,omitempty"`
	DeceasedDateTime     string             `json:"deceasedDateTime,omitempty"`
	Address              List[Address]      `json:"address,omitempty"`
	MaritalStatus        *CodeableConcept   `json:"maritalStatus,omitempty"`
	MultipleBirthBoolean *bool              `json:"multipleBirthBoolean,omitempty"`
	MultipleBirthInteger *int               `json:"multipleBirthInteger,omitempty"`
	Contact              []PatientContact   `json:"contact,omitempty"`
	Communication        []Communication    `json:"communication,omitempty"`
	GeneralPractitioner  []Reference        `json:"generalPractitioner,omitempty"`
	ManagingOrganization *Reference         `json:"managingOrganization,omitempty"`
}

// Practitioner is a CareConnect-GPC-Practitioner-1.
type Practitioner struct {
	ResourceType  string             `json:"resourceType"`
	ID            string             `json:"id,omitempty"`
	Meta          *Meta              `json:"meta,omitempty"`
	Extension     []Extension        `json:"extension,omitempty"`
	Identifier    []Identifier       `json:"identifier,omitempty"`
	Active        *bool              `json:"active,omitempty"`
	Name          []HumanName        `json:"name,omitempty"`
	Telecom       List[ContactPoint] `json:"telecom,omitempty"`
	Address       List[Address]      `json:"address,omitempty"`
	Gender        string             `json:"gender,omitempty"`
	BirthDate     string             `json:"birthDate,omitempty"`
	Communication []CodeableConcept  `json:"communication,omitempty"`
}

// Position is a Location's coordinates.
type Position struct {
	Longitude json.Number  `json:"longitude"`
	Latitude  json.Number  `json:"latitude"`
	Altitude  *json.Number `json:"altitude,omitempty"`
}

// Location is a CareConnect-GPC-Location-1. Telecom reads the single
// object GP Connect's example sends as well as an array.
type Location struct {
	ResourceType         string             `json:"resourceType"`
	ID                   string             `json:"id,omitempty"`
	Meta                 *Meta              `json:"meta,omitempty"`
	Extension            []Extension        `json:"extension,omitempty"`
	Identifier           []Identifier       `json:"identifier,omitempty"`
	Status               string             `json:"status,omitempty"`
	OperationalStatus    *Coding            `json:"operationalStatus,omitempty"`
	Name                 string             `json:"name,omitempty"`
	Alias                []string           `json:"alias,omitempty"`
	Description          string             `json:"description,omitempty"`
	Mode                 string             `json:"mode,omitempty"`
	Type                 *CodeableConcept   `json:"type,omitempty"`
	Telecom              List[ContactPoint] `json:"telecom,omitempty"`
	Address              *Address           `json:"address,omitempty"`
	PhysicalType         *CodeableConcept   `json:"physicalType,omitempty"`
	Position             *Position          `json:"position,omitempty"`
	ManagingOrganization *Reference         `json:"managingOrganization,omitempty"`
	PartOf               *Reference         `json:"partOf,omitempty"`
}

// Organization is a CareConnect-GPC-Organization-1: a practice, or the
// consumer organisation an appointment was booked by.
type Organization struct {
	ResourceType string             `json:"resourceType"`
	ID           string             `json:"id,omitempty"`
	Meta         *Meta              `json:"meta,omitempty"`
	Extension    []Extension        `json:"extension,omitempty"`
	Identifier   []Identifier       `json:"identifier,omitempty"`
	Active       *bool              `json:"active,omitempty"`
	Type         []CodeableConcept  `json:"type,omitempty"`
	Name         string             `json:"name,omitempty"`
	Alias        []string           `json:"alias,omitempty"`
	Telecom      List[ContactPoint] `json:"telecom,omitempty"`
	Address      List[Address]      `json:"address,omitempty"`
	PartOf       *Reference         `json:"partOf,omitempty"`
}

// Entry is an entry of a Bundle.
type Entry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *EntrySearch    `json:"search,omitempty"`
}

// EntrySearch says why an entry is in a searchset: "match" or "include".
type EntrySearch struct {
	Mode string `json:"mode,omitempty"`
}

// Bundle is a searchset Bundle (a slot search, Find a patient, a
// patient's appointments).
type Bundle struct {
	ResourceType string  `json:"resourceType"`
	ID           string  `json:"id,omitempty"`
	Meta         *Meta   `json:"meta,omitempty"`
	Type         string  `json:"type"`
	Total        *int    `json:"total,omitempty"`
	Entry        []Entry `json:"entry,omitempty"`
}
