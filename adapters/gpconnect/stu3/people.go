package stu3

import (
	"fmt"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// PatientToR4 maps a practice's Patient (as Find a patient returns it) to
// R4, with id ID(ODS, id) unless p.Refs names the Signpost Patient; the
// Care Connect extensions (registration details, NHS number verification
// status) are kept.
func (p Practice) PatientToR4(s *Patient) (*r4.Patient, error) {
	var e errs
	checkType(&e, s.ResourceType, "Patient")
	ref, err := p.ref4("Patient/" + s.ID)
	e.add("Patient.id", err)
	out := &r4.Patient{
		Id:                   opt(ref[len("Patient/"):]),
		Extension:            p.extensions4(&e, "Patient.extension", s.Extension),
		Identifier:           p.identifiers4(&e, "Patient.identifier", s.Identifier, "", ""),
		Active:               s.Active,
		Name:                 conv[[]r4.HumanName](&e, "Patient.name", s.Name),
		Telecom:              conv[[]r4.ContactPoint](&e, "Patient.telecom", s.Telecom),
		Gender:               code4[r4.AdministrativeGender](&e, "Patient.gender", s.Gender, false),
		BirthDate:            opt(s.BirthDate),
		DeceasedBoolean:      s.DeceasedBoolean,
		DeceasedDateTime:     opt(s.DeceasedDateTime),
		Address:              conv[[]r4.Address](&e, "Patient.address", s.Address),
		MaritalStatus:        conv[*r4.CodeableConcept](&e, "Patient.maritalStatus", s.MaritalStatus),
		MultipleBirthBoolean: s.MultipleBirthBoolean,
		MultipleBirthInteger: s.MultipleBirthInteger,
		Communication:        conv[[]r4.PatientCommunication](&e, "Patient.communication", s.Communication),
		GeneralPractitioner:  p.references4(&e, "Patient.generalPractitioner", s.GeneralPractitioner),
		ManagingOrganization: p.reference4(&e, "Patient.managingOrganization", s.ManagingOrganization),
	}
	for i, c := range s.Contact {
		at := fmt.Sprintf("Patient.contact[%d]", i)
		out.Contact = append(out.Contact, r4.PatientContact{
			Relationship: conv[[]r4.CodeableConcept](&e, at+".relationship", c.Relationship),
			Name:         conv[*r4.HumanName](&e, at+".name", c.Name),
			Telecom:      conv[[]r4.ContactPoint](&e, at+".telecom", c.Telecom),
			Address:      conv[*r4.Address](&e, at+".address", c.Address),
			Gender:       code4[r4.AdministrativeGender](&e, at+".gender", c.Gender, false),
			Organization: p.reference4(&e, at+".organization", c.Organization),
			Period:       conv[*r4.Period](&e, at+".period", c.Period),
		})
	}
	return out, e.err()
}

// PatientFromR4 maps a Signpost Patient to the STU3 Patient GP Connect
// expects (for a temporary registration, say): demographics and NHS
// extensions; references the practice does not know are left out.
func (p Practice) PatientFromR4(s *r4.Patient) (*Patient, error) {
	var e errs
	id := ""
	if ref, ok := p.ref3("Patient/" + str(s.Id)); ok {
		id = ref[len("Patient/"):]
	}
	out := &Patient{
		ResourceType:         "Patient",
		ID:                   id,
		Meta:                 meta3(ProfilePatient),
		Extension:            p.extensions3(&e, "Patient.extension", s.Extension),
		Identifier:           p.identifiers3(&e, "Patient.identifier", s.Identifier),
		Active:               s.Active,
		Name:                 conv[[]HumanName](&e, "Patient.name", s.Name),
		Telecom:              conv[[]ContactPoint](&e, "Patient.telecom", s.Telecom),
		Gender:               code3(s.Gender),
		BirthDate:            str(s.BirthDate),
		DeceasedBoolean:      s.DeceasedBoolean,
		DeceasedDateTime:     str(s.DeceasedDateTime),
		Address:              conv[[]Address](&e, "Patient.address", s.Address),
		MaritalStatus:        conv[*CodeableConcept](&e, "Patient.maritalStatus", s.MaritalStatus),
		MultipleBirthBoolean: s.MultipleBirthBoolean,
		MultipleBirthInteger: s.MultipleBirthInteger,
		Communication:        conv[[]Communication](&e, "Patient.communication", s.Communication),
		GeneralPractitioner:  p.references3(&e, "Patient.generalPractitioner", s.GeneralPractitioner),
		ManagingOrganization: p.reference3(&e, "Patient.managingOrganization", s.ManagingOrganization),
	}
	for i, c := range s.Contact {
		at := fmt.Sprintf("Patient.contact[%d]", i)
		out.Contact = append(out.Contact, PatientContact{
			Relationship: conv[[]CodeableConcept](&e, at+".relationship", c.Relationship),
			Name:         conv[*HumanName](&e, at+".name", c.Name),
			Telecom:      conv[[]ContactPoint](&e, at+".telecom", c.Telecom),
			Address:      conv[*Address](&e, at+".address", c.Address),
			Gender:       code3(c.Gender),
			Organization: p.reference3(&e, at+".organization", c.Organization),
			Period:       conv[*Period](&e, at+".period", c.Period),
		})
	}
	return out, e.err()
}

// PractitionerToR4 maps a practice's Practitioner to R4.
func (p Practice) PractitionerToR4(s *Practitioner) (*r4.Practitioner, error) {
	var e errs
	checkType(&e, s.ResourceType, "Practitioner")
	id, err := ID(p.ODS, s.ID)
	e.add("Practitioner.id", err)
	return &r4.Practitioner{
		Id:            opt(id),
		Extension:     p.extensions4(&e, "Practitioner.extension", s.Extension),
		Identifier:    p.identifiers4(&e, "Practitioner.identifier", s.Identifier, "", ""),
		Active:        s.Active,
		Name:          conv[[]r4.HumanName](&e, "Practitioner.name", s.Name),
		Telecom:       conv[[]r4.ContactPoint](&e, "Practitioner.telecom", s.Telecom),
		Address:       conv[[]r4.Address](&e, "Practitioner.address", s.Address),
		Gender:        code4[r4.AdministrativeGender](&e, "Practitioner.gender", s.Gender, false),
		BirthDate:     opt(s.BirthDate),
		Communication: conv[[]r4.CodeableConcept](&e, "Practitioner.communication", s.Communication),
	}, e.err()
}

// PractitionerFromR4 maps a Signpost Practitioner of the practice back.
func (p Practice) PractitionerFromR4(s *r4.Practitioner) (*Practitioner, error) {
	var e errs
	id, ok := PracticeID(p.ODS, str(s.Id))
	if !ok {
		e.addf("Practitioner.id", "%q is not a practitioner of practice %s", str(s.Id), p.ODS)
	}
	return &Practitioner{
		ResourceType:  "Practitioner",
		ID:            id,
		Meta:          meta3(ProfilePractitioner),
		Extension:     p.extensions3(&e, "Practitioner.extension", s.Extension),
		Identifier:    p.identifiers3(&e, "Practitioner.identifier", s.Identifier),
		Active:        s.Active,
		Name:          conv[[]HumanName](&e, "Practitioner.name", s.Name),
		Telecom:       conv[[]ContactPoint](&e, "Practitioner.telecom", s.Telecom),
		Address:       conv[[]Address](&e, "Practitioner.address", s.Address),
		Gender:        code3(s.Gender),
		BirthDate:     str(s.BirthDate),
		Communication: conv[[]CodeableConcept](&e, "Practitioner.communication", s.Communication),
	}, e.err()
}

// LocationToR4 maps a practice's Location to R4 (its single type becomes
// a list of one).
func (p Practice) LocationToR4(s *Location) (*r4.Location, error) {
	var e errs
	checkType(&e, s.ResourceType, "Location")
	id, err := ID(p.ODS, s.ID)
	e.add("Location.id", err)
	out := &r4.Location{
		Id:                   opt(id),
		Extension:            p.extensions4(&e, "Location.extension", s.Extension),
		Identifier:           p.identifiers4(&e, "Location.identifier", s.Identifier, "", ""),
		Status:               code4[r4.LocationStatus](&e, "Location.status", s.Status, false),
		OperationalStatus:    conv[*r4.Coding](&e, "Location.operationalStatus", s.OperationalStatus),
		Name:                 opt(s.Name),
		Alias:                s.Alias,
		Description:          opt(s.Description),
		Mode:                 code4[r4.LocationMode](&e, "Location.mode", s.Mode, false),
		Type:                 concept4(&e, "Location.type", s.Type),
		Telecom:              conv[[]r4.ContactPoint](&e, "Location.telecom", s.Telecom),
		Address:              conv[*r4.Address](&e, "Location.address", s.Address),
		PhysicalType:         conv[*r4.CodeableConcept](&e, "Location.physicalType", s.PhysicalType),
		ManagingOrganization: p.reference4(&e, "Location.managingOrganization", s.ManagingOrganization),
		PartOf:               p.reference4(&e, "Location.partOf", s.PartOf),
	}
	if s.Position != nil {
		out.Position = &r4.LocationPosition{Longitude: s.Position.Longitude, Latitude: s.Position.Latitude, Altitude: s.Position.Altitude}
	}
	return out, e.err()
}

// LocationFromR4 maps a Signpost Location of the practice back.
func (p Practice) LocationFromR4(s *r4.Location) (*Location, error) {
	var e errs
	id, ok := PracticeID(p.ODS, str(s.Id))
	if !ok {
		e.addf("Location.id", "%q is not a location of practice %s", str(s.Id), p.ODS)
	}
	out := &Location{
		ResourceType:         "Location",
		ID:                   id,
		Meta:                 meta3(ProfileLocation),
		Extension:            p.extensions3(&e, "Location.extension", s.Extension),
		Identifier:           p.identifiers3(&e, "Location.identifier", s.Identifier),
		Status:               code3(s.Status),
		OperationalStatus:    conv[*Coding](&e, "Location.operationalStatus", s.OperationalStatus),
		Name:                 str(s.Name),
		Alias:                s.Alias,
		Description:          str(s.Description),
		Mode:                 code3(s.Mode),
		Type:                 concept3(&e, "Location.type", s.Type),
		Telecom:              conv[List[ContactPoint]](&e, "Location.telecom", s.Telecom),
		Address:              conv[*Address](&e, "Location.address", s.Address),
		PhysicalType:         conv[*CodeableConcept](&e, "Location.physicalType", s.PhysicalType),
		ManagingOrganization: p.reference3(&e, "Location.managingOrganization", s.ManagingOrganization),
		PartOf:               p.reference3(&e, "Location.partOf", s.PartOf),
	}
	if s.Position != nil {
		out.Position = &Position{Longitude: s.Position.Longitude, Latitude: s.Position.Latitude, Altitude: s.Position.Altitude}
	}
	return out, e.err()
}

// OrganizationToR4 maps a practice's Organization to R4.
func (p Practice) OrganizationToR4(s *Organization) (*r4.Organization, error) {
	var e errs
	checkType(&e, s.ResourceType, "Organization")
	id, err := ID(p.ODS, s.ID)
	e.add("Organization.id", err)
	return &r4.Organization{
		Id:         opt(id),
		Extension:  p.extensions4(&e, "Organization.extension", s.Extension),
		Identifier: p.identifiers4(&e, "Organization.identifier", s.Identifier, "", ""),
		Active:     s.Active,
		Type:       conv[[]r4.CodeableConcept](&e, "Organization.type", s.Type),
		Name:       opt(s.Name),
		Alias:      s.Alias,
		Telecom:    conv[[]r4.ContactPoint](&e, "Organization.telecom", s.Telecom),
		Address:    conv[[]r4.Address](&e, "Organization.address", s.Address),
		PartOf:     p.reference4(&e, "Organization.partOf", s.PartOf),
	}, e.err()
}

// OrganizationFromR4 maps an R4 Organization to STU3: one of the
// practice's (its id mapped back), or any other (a consumer's booking
// organisation) without an id.
func (p Practice) OrganizationFromR4(s *r4.Organization) (*Organization, error) {
	var e errs
	id, _ := PracticeID(p.ODS, str(s.Id))
	return &Organization{
		ResourceType: "Organization",
		ID:           id,
		Meta:         meta3(ProfileOrganization),
		Extension:    p.extensions3(&e, "Organization.extension", s.Extension),
		Identifier:   p.identifiers3(&e, "Organization.identifier", s.Identifier),
		Active:       s.Active,
		Type:         conv[[]CodeableConcept](&e, "Organization.type", s.Type),
		Name:         str(s.Name),
		Alias:        s.Alias,
		Telecom:      conv[[]ContactPoint](&e, "Organization.telecom", s.Telecom),
		Address:      conv[[]Address](&e, "Organization.address", s.Address),
		PartOf:       p.reference3(&e, "Organization.partOf", s.PartOf),
	}, e.err()
}
