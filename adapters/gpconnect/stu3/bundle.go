package stu3

import (
	"encoding/json"
	"fmt"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// SlotSearch is a free-slot search's searchset mapped to R4: the Slots
// and the Schedules they belong to, with the Schedules' actors and the
// Organizations managing their Locations, as _include=Slot:schedule and
// the :recurse includes bring them.
type SlotSearch struct {
	Slots         []r4.Slot
	Schedules     []r4.Schedule
	Practitioners []r4.Practitioner
	Locations     []r4.Location
	Organizations []r4.Organization
}

// SlotSearchToR4 maps the searchset Bundle of a free-slot search. Every
// Slot's Schedule must be in the Bundle (GP Connect returns it with
// _include=Slot:schedule); resources of other types are refused. An empty
// searchset is an empty SlotSearch.
func (p Practice) SlotSearchToR4(b *Bundle) (*SlotSearch, error) {
	var e errs
	checkType(&e, b.ResourceType, "Bundle")
	if b.Type != "searchset" {
		e.addf("Bundle.type", "%q, not searchset", b.Type)
	}
	out := &SlotSearch{}
	schedules := map[string]bool{}
	var slotSchedules []string
	for i, en := range b.Entry {
		at := fmt.Sprintf("Bundle.entry[%d].resource", i)
		var head struct{ ResourceType string }
		if err := json.Unmarshal(en.Resource, &head); err != nil {
			e.add(at, err)
			continue
		}
		var err error
		switch head.ResourceType {
		case "Slot":
			var s Slot
			if err = json.Unmarshal(en.Resource, &s); err == nil {
				var r *r4.Slot
				if r, err = p.SlotToR4(&s); err == nil {
					out.Slots = append(out.Slots, *r)
					slotSchedules = append(slotSchedules, s.Schedule.Reference)
				}
			}
		case "Schedule":
			var s Schedule
			if err = json.Unmarshal(en.Resource, &s); err == nil {
				var r *r4.Schedule
				if r, err = p.ScheduleToR4(&s); err == nil {
					out.Schedules = append(out.Schedules, *r)
					schedules["Schedule/"+s.ID] = true
				}
			}
		case "Practitioner":
			var s Practitioner
			if err = json.Unmarshal(en.Resource, &s); err == nil {
				var r *r4.Practitioner
				if r, err = p.PractitionerToR4(&s); err == nil {
					out.Practitioners = append(out.Practitioners, *r)
				}
			}
		case "Location":
			var s Location
			if err = json.Unmarshal(en.Resource, &s); err == nil {
				var r *r4.Location
				if r, err = p.LocationToR4(&s); err == nil {
					out.Locations = append(out.Locations, *r)
				}
			}
		case "Organization":
			var s Organization
			if err = json.Unmarshal(en.Resource, &s); err == nil {
				var r *r4.Organization
				if r, err = p.OrganizationToR4(&s); err == nil {
					out.Organizations = append(out.Organizations, *r)
				}
			}
		case "HealthcareService":
			// Included by _include:recurse=Schedule:actor:HealthcareService;
			// Signpost's own services stand for the practice's (Services).
		default:
			e.addf(at, "a %s has no place in a slot search", head.ResourceType)
		}
		e.add(at, err)
	}
	for i, ref := range slotSchedules {
		if !schedules[ref] {
			e.addf(fmt.Sprintf("Slot[%d].schedule", i), "%s is not included in the Bundle", ref)
		}
	}
	return out, e.err()
}

// SlotSearchFromR4 builds the searchset Bundle of a free-slot search from
// R4 resources of the practice (the stand-in's answer): Slots first
// ("match"), then the included resources ("include").
func (p Practice) SlotSearchFromR4(s *SlotSearch) (*Bundle, error) {
	var e errs
	b := &Bundle{ResourceType: "Bundle", Meta: meta3(ProfileSearchset), Type: "searchset"}
	add := func(at, mode string, v any, err error) {
		e.add(at, err)
		if err != nil {
			return
		}
		raw, err := json.Marshal(v)
		e.add(at, err)
		b.Entry = append(b.Entry, Entry{Resource: raw, Search: &EntrySearch{Mode: mode}})
	}
	for i := range s.Slots {
		v, err := p.SlotFromR4(&s.Slots[i])
		add(fmt.Sprintf("Slots[%d]", i), "match", v, err)
	}
	for i := range s.Schedules {
		v, err := p.ScheduleFromR4(&s.Schedules[i])
		add(fmt.Sprintf("Schedules[%d]", i), "include", v, err)
	}
	for i := range s.Practitioners {
		v, err := p.PractitionerFromR4(&s.Practitioners[i])
		add(fmt.Sprintf("Practitioners[%d]", i), "include", v, err)
	}
	for i := range s.Locations {
		v, err := p.LocationFromR4(&s.Locations[i])
		add(fmt.Sprintf("Locations[%d]", i), "include", v, err)
	}
	for i := range s.Organizations {
		v, err := p.OrganizationFromR4(&s.Organizations[i])
		add(fmt.Sprintf("Organizations[%d]", i), "include", v, err)
	}
	n := len(s.Slots)
	b.Total = &n
	return b, e.err()
}
