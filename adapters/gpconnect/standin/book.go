package standin

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

// Book is a practice's appointment book as GP Connect shows it: the
// practice, its sites, its clinicians, their schedules and slots, and
// the patients registered with it.
type Book struct {
	Organization  stu3.Organization
	Locations     []stu3.Location
	Practitioners []stu3.Practitioner
	Schedules     []stu3.Schedule
	Slots         []stu3.Slot
	Patients      []stu3.Patient
}

// london is the practice's time zone (UTC when the system has no zone
// data).
var london = func() *time.Location {
	if l, err := time.LoadLocation("Europe/London"); err == nil {
		return l
	}
	return time.UTC
}()

// NewBook generates the book of practice ods, in the shapes of GP
// Connect's published payloads: the practice (Organization "1"), a main
// surgery and a branch (Locations "1", "2"), three clinicians
// (Practitioners "1" to "3", two GPs and a salaried GP) with a Schedule
// each, and 15-minute slots on weekdays, 09:00 to 12:00 and 14:00 to
// 17:00 practice time, from the day of from for days days; about one
// slot in four is already taken (busy), the same ones every time. Slots
// are in the Schedule order, then by start; ids are numbers from 1.
func NewBook(ods string, from time.Time, days int) *Book {
	b := &Book{}
	b.Organization = stu3.Organization{
		ResourceType: "Organization", ID: "1",
		Meta:       &stu3.Meta{VersionID: "1", Profile: []string{stu3.ProfileOrganization}},
		Identifier: []stu3.Identifier{{System: stu3.ODSOrganizationSystem, Value: ods}},
		Type:       []stu3.CodeableConcept{{Coding: []stu3.Coding{{System: stu3.OrganisationTypeSystem, Code: "gp-practice"}}}},
		Name:       "Riverside Medical Practice (" + ods + ")",
		Telecom:    stu3.List[stu3.ContactPoint]{{System: "phone", Value: "0300 303 5678", Use: "work"}},
		Address:    stu3.List[stu3.Address]{{Line: []string{"1 Riverside Walk"}, City: "Exeter", District: "Devon", PostalCode: "EX1 1AA"}},
	}
	for i, site := range []struct{ name, line, postcode string }{
		{"Riverside Medical Practice, main surgery", "1 Riverside Walk", "EX1 1AA"},
		{"Riverside Medical Practice, Hill Lane branch", "12 Hill Lane", "EX4 6PX"},
	} {
		b.Locations = append(b.Locations, stu3.Location{
			ResourceType: "Location", ID: fmt.Sprint(i + 1),
			Meta:                 &stu3.Meta{VersionID: "1", Profile: []string{stu3.ProfileLocation}},
			Name:                 site.name,
			Address:              &stu3.Address{Line: []string{site.line}, City: "Exeter", PostalCode: site.postcode},
			Telecom:              stu3.List[stu3.ContactPoint]{{System: "phone", Value: "0300 303 5678", Use: "work"}},
			ManagingOrganization: &stu3.Reference{Reference: "Organization/1"},
		})
	}
	clinicians := []struct {
		family, given, prefix, gender, sds, role, roleName, location, delivery string
	}{
		{"Black", "Sarah", "Dr", "female", "111122223333", "R0260", "General Medical Practitioner", "1", "In-person"},
		{"Okafor", "Daniel", "Dr", "male", "111122224444", "R0260", "General Medical Practitioner", "2", "In-person"},
		{"Singh", "Priya", "Dr", "female", "111122225555", "R0270", "Salaried General Practitioner", "1", "Telephone"},
	}
	start := time.Date(from.In(london).Year(), from.In(london).Month(), from.In(london).Day(), 0, 0, 0, 0, london)
	slotID := 0
	for i, c := range clinicians {
		id := fmt.Sprint(i + 1)
		b.Practitioners = append(b.Practitioners, stu3.Practitioner{
			ResourceType: "Practitioner", ID: id,
			Meta:       &stu3.Meta{VersionID: "1", Profile: []string{stu3.ProfilePractitioner}},
			Identifier: []stu3.Identifier{{System: stu3.SDSUserSystem, Value: c.sds}},
			Name:       []stu3.HumanName{{Family: c.family, Given: []string{c.given}, Prefix: []string{c.prefix}}},
			Gender:     c.gender,
		})
		role := stu3.CodeableConcept{Coding: []stu3.Coding{{System: stu3.SDSJobRoleSystem, Code: c.role, Display: c.roleName}}}
		b.Schedules = append(b.Schedules, stu3.Schedule{
			ResourceType: "Schedule", ID: id,
			Meta:            &stu3.Meta{VersionID: "1", Profile: []string{stu3.ProfileSchedule}},
			Extension:       []stu3.Extension{{URL: stu3.ExtPractitionerRole, ValueCodeableConcept: &role}},
			ServiceCategory: &stu3.CodeableConcept{Text: "General GP Appointments"},
			Actor:           []stu3.Reference{{Reference: "Location/" + c.location}, {Reference: "Practitioner/" + id}},
			PlanningHorizon: &stu3.Period{Start: stamp(start), End: stamp(start.AddDate(0, 0, days))},
		})
		channel := c.delivery
		for d := 0; d < days; d++ {
			day := start.AddDate(0, 0, d)
			if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
				continue
			}
			for _, session := range [][2]int{{9, 12}, {14, 17}} {
				for t := time.Date(day.Year(), day.Month(), day.Day(), session[0], 0, 0, 0, london); t.Hour() < session[1]; t = t.Add(15 * time.Minute) {
					slotID++
					status := "free"
					if taken(ods, slotID) {
						status = "busy"
					}
					b.Slots = append(b.Slots, stu3.Slot{
						ResourceType: "Slot", ID: fmt.Sprint(slotID),
						Meta:        &stu3.Meta{VersionID: "1", Profile: []string{stu3.ProfileSlot}},
						Extension:   []stu3.Extension{{URL: stu3.ExtDeliveryChannel, ValueCode: &channel}},
						ServiceType: []stu3.CodeableConcept{{Text: "General GP Appointment"}},
						Schedule:    stu3.Reference{Reference: "Schedule/" + id},
						Status:      status,
						Start:       stamp(t),
						End:         stamp(t.Add(15 * time.Minute)),
					})
				}
			}
		}
	}
	return b
}

// taken reports whether slot n of practice ods starts out busy: about
// one in four, fixed by a hash so the book is the same every time.
func taken(ods string, n int) bool {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", ods, n)
	return h.Sum32()%4 == 0
}

// stamp is t as a FHIR instant with its offset, to the second.
func stamp(t time.Time) string { return t.Format(time.RFC3339) }
