package stu3

import (
	"net/url"
	"time"
)

// The _include:recurse values of a free-slot search that bring the
// Schedules' actors and the Locations' managing Organization.
var slotRecurses = []string{
	"Schedule:actor:Practitioner",
	"Schedule:actor:Location",
	"Location:managingOrganization",
}

// SlotSearchQuery is the query of a free-slot search as GP Connect 1.2.x
// defines it: start=ge and end=le once each (date-times with their
// offset), status=free, _include=Slot:schedule, the :recurse includes of
// the Schedules' actors and the Locations' organisation, and searchFilter
// with the consumer's ODS code and organisation type (a code of
// GPConnect-OrganisationType-1, such as "gp-practice" or "urgent-care").
// The window must be at most MaxSlotWindowDays (SlotWindows splits a
// longer one).
func SlotSearchQuery(start, end time.Time, consumerODS, orgType string) url.Values {
	q := url.Values{}
	q.Set("start", "ge"+start.Format(time.RFC3339))
	q.Set("end", "le"+end.Format(time.RFC3339))
	q.Set("status", "free")
	q.Set("_include", IncludeSchedule)
	q["_include:recurse"] = append([]string(nil), slotRecurses...)
	q["searchFilter"] = []string{ODSOrganizationSystem + "|" + consumerODS, OrganisationTypeSystem + "|" + orgType}
	return q
}

// SlotWindows splits [from, to) into consecutive windows of at most
// MaxSlotWindowDays, the longest one slot search may cover; none when to
// is not after from.
func SlotWindows(from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	for start := from; start.Before(to); {
		end := start.Add(MaxSlotWindowDays * 24 * time.Hour)
		if end.After(to) {
			end = to
		}
		out = append(out, [2]time.Time{start, end})
		start = end
	}
	return out
}
