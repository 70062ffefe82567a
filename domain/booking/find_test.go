package booking_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
)

// TestFindAcrossWindows: $find reads free slots window by window in time;
// its answer is still the earliest free slots of the whole request window,
// in order (start, then id), cut at _count, skipping busy slots, slots
// ending after the window and days with nothing free.
func TestFindAcrossWindows(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	t0 := tomorrow9()
	at := func(day int, hm string) time.Time {
		d, _ := time.ParseDuration(hm)
		return t0.AddDate(0, 0, day).Add(d)
	}
	s.put(
		slotAt("a3", "sc", at(0, "2h"), 20*time.Minute),
		slotAt("a1", "sc", at(0, "0h"), 20*time.Minute),
		slotAt("a2", "sc", at(0, "1h"), 20*time.Minute),
		slotAt("b1", "sc", at(3, "0h"), 20*time.Minute),
		slotAt("b0", "sc", at(3, "0h"), 20*time.Minute), // the same start as b1: id breaks the tie
		slotAt("c1", "sc", at(12, "0h"), 20*time.Minute),
		slotAt("c2", "sc", at(12, "3h"), 20*time.Minute),
		slotAt("d1", "sc", at(26, "0h"), 20*time.Minute),
		slotAt("z1", "sc", at(40, "0h"), 20*time.Minute), // after the default 28 days
	)
	busy := s.read("Slot", "b1")
	busy["status"] = "busy"
	must(t, "PUT busy slot", s.do("PUT", "/Slot/b1", busy), 200)
	find := func(query string) []string {
		t.Helper()
		r := s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs"+query, nil)
		if query == "&_count=4" { // the same by POST
			r = s.do("POST", "/Appointment/$find", params("healthcare-service", ref("HealthcareService/hs"), "_count", "4"))
		}
		var got []string
		for _, a := range entries(t, must(t, "$find", r, 200)) {
			got = append(got, slotOf(a))
		}
		return got
	}
	day := func(d int) string { return t0.AddDate(0, 0, d).Format("2006-01-02") }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"a1", "a2", "a3", "b0", "c1", "c2", "d1"}},
		{"&_count=5", []string{"a1", "a2", "a3", "b0", "c1"}},
		{"&_count=4", []string{"a1", "a2", "a3", "b0"}},
		{"&_count=3", []string{"a1", "a2", "a3"}},
		{"&start=" + day(1) + "&end=" + day(12), []string{"b0", "c1", "c2"}},
		{"&start=" + day(12) + "&end=" + day(45), []string{"c1", "c2", "d1", "z1"}},
		{"&start=" + day(4) + "&end=" + day(11), nil},
	} {
		if got := find(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("$find%s = %v, want %v", tc.query, got, tc.want)
		}
	}
}

// located seeds a service at a Location with a position, its schedule, and
// one free slot at start; ids are prefixed with id.
func (s *server) located(id string, lat, lon float64, start time.Time) {
	s.t.Helper()
	pos := ""
	if lat != 0 || lon != 0 {
		pos = fmt.Sprintf(`,"position":{"latitude":%g,"longitude":%g}`, lat, lon)
	}
	s.put(`{"resourceType":"Location","id":"loc-`+id+`","status":"active","name":"Site `+id+`"`+pos+`}`,
		`{"resourceType":"HealthcareService","id":"hs-`+id+`","name":"Clinic `+id+`","location":[{"reference":"Location/loc-`+id+`"}]}`,
		schedule("sc-"+id, "hs-"+id),
		slotAt("slot-"+id, "sc-"+id, start, 20*time.Minute))
}

// TestFindNearestFirst: among proposals at equal times, the nearest to the
// patient (address geolocation, or else the location asked for) comes
// first; earlier still beats nearer, and slots whose place is unknown come
// after placed ones.
func TestFindNearestFirst(t *testing.T) {
	s := newServer(t, app.Config{})
	t0 := tomorrow9()
	// Around London (51.5, -0.12): near is 2 km away, mid 40 km, far 250 km.
	s.located("a-far", 53.4, -2.2, t0)
	s.located("b-mid", 51.75, 0.3, t0)
	s.located("c-near", 51.51, -0.1, t0)
	s.located("d-nowhere", 0, 0, t0)
	s.located("e-early-far", 55.9, -3.2, t0.Add(-time.Hour))
	s.put(`{"resourceType":"Patient","id":"placed","address":[{"city":"London","extension":[{"url":"`+booking.ExtGeolocation+
		`","extension":[{"url":"latitude","valueDecimal":51.5},{"url":"longitude","valueDecimal":-0.12}]}]}]}`,
		patient("unplaced"))
	placedInline := map[string]any{"resourceType": "Patient", "address": []any{map[string]any{"extension": []any{map[string]any{
		"url": booking.ExtGeolocation, "extension": []any{
			map[string]any{"url": "latitude", "valueDecimal": 51.75}, map[string]any{"url": "longitude", "valueDecimal": 0.3}}}}}}}
	for _, tc := range []struct {
		name string
		r    func() *response
		want []string
	}{
		{"patient-reference with a geolocation", func() *response {
			return s.do("GET", "/Appointment/$find?patient-reference=Patient/placed", nil)
		}, []string{"slot-e-early-far", "slot-c-near", "slot-b-mid", "slot-a-far", "slot-d-nowhere"}},
		{"patient-resource not registered, placed at mid", func() *response {
			return s.do("POST", "/Appointment/$find", params("patient-resource", placedInline))
		}, []string{"slot-e-early-far", "slot-b-mid", "slot-c-near", "slot-a-far", "slot-d-nowhere"}},
		{"patient not placed: by id", func() *response {
			return s.do("GET", "/Appointment/$find?patient-reference=Patient/unplaced", nil)
		}, []string{"slot-e-early-far", "slot-a-far", "slot-b-mid", "slot-c-near", "slot-d-nowhere"}},
		{"location-reference restricts to the services there", func() *response {
			return s.do("GET", "/Appointment/$find?patient-reference=Patient/unplaced&location-reference=Location/loc-b-mid", nil)
		}, []string{"slot-b-mid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range entries(t, must(t, tc.name, tc.r(), 200)) {
				got = append(got, slotOf(a))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("$find = %v, want %v", got, tc.want)
			}
		})
	}
	// Schedules whose actor is the Location, beside those of the services
	// there: location-reference places the patient at the first.
	s.put(`{"resourceType":"Schedule","id":"sc-at-mid","active":true,"actor":[{"reference":"Location/loc-b-mid"}]}`,
		`{"resourceType":"Schedule","id":"sc-at-near","active":true,"actor":[{"reference":"Location/loc-c-near"}]}`,
		slotAt("x-mid", "sc-at-mid", t0, 20*time.Minute), slotAt("w-near", "sc-at-near", t0, 20*time.Minute))
	// By id alone, slot-c-near and w-near would come before x-mid. A
	// patient who is not placed leaves the location standing in; a placed
	// one is what counts.
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"no patient", "", []string{"slot-b-mid", "x-mid", "slot-c-near", "w-near"}},
		{"patient not placed", "&patient-reference=Patient/unplaced", []string{"slot-b-mid", "x-mid", "slot-c-near", "w-near"}},
		{"patient placed in London", "&patient-reference=Patient/placed", []string{"slot-c-near", "w-near", "slot-b-mid", "x-mid"}},
	} {
		var got []string
		r := s.do("GET", "/Appointment/$find?location-reference=Location/loc-b-mid&location-reference=Location/loc-c-near"+tc.query, nil)
		for _, a := range entries(t, must(t, "$find by location, "+tc.name, r, 200)) {
			got = append(got, slotOf(a))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("$find from Location/loc-b-mid, %s = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestFindAtLocationOrOrganization: $find's location-reference matches the
// schedules of the Location itself, of the HealthcareServices provided
// there (HealthcareService.location) and of the PractitionerRoles there
// (PractitionerRole.location); organization matches those of the
// organisation's services (providedBy) and roles (an Organization is never
// a Schedule's actor itself); location-string matches as location-reference
// does for the Locations whose address it names. Several values are alternatives, and another
// actor parameter narrows the match.
func TestFindAtLocationOrOrganization(t *testing.T) {
	s := newServer(t, app.Config{})
	t0 := tomorrow9()
	loc := func(id string) string {
		return `{"resourceType":"Location","id":"` + id + `","status":"active","name":"Site ` + id + `"}`
	}
	at := func(typ, id string, locs ...string) string {
		var refs []string
		for _, l := range locs {
			refs = append(refs, `{"reference":"Location/`+l+`"}`)
		}
		where := ""
		if len(refs) > 0 {
			where = `,"location":[` + strings.Join(refs, ",") + `]`
		}
		// Organisations: hs-a and pr-b belong to org-1, hs-b to org-2.
		org := map[string]string{"hs-a": `,"providedBy":{"reference":"Organization/org-1"}`, "hs-b": `,"providedBy":{"reference":"Organization/org-2"}`,
			"pr-b": `,"organization":{"reference":"Organization/org-1"}`}[id]
		return `{"resourceType":"` + typ + `","id":"` + id + `","active":true` + where + org + `}`
	}
	sched := func(id string, actors ...string) string {
		var refs []string
		for _, a := range actors {
			refs = append(refs, `{"reference":"`+a+`"}`)
		}
		return `{"resourceType":"Schedule","id":"` + id + `","active":true,"actor":[` + strings.Join(refs, ",") + `]}`
	}
	s.put(loc("loc-a"), loc("loc-b"), loc("loc-empty"),
		`{"resourceType":"Location","id":"loc-c","status":"active","name":"Site loc-c","address":{"city":"Salisbury"}}`,
		at("HealthcareService", "hs-c", "loc-c"), sched("sc-hs-c", "HealthcareService/hs-c"),
		`{"resourceType":"Organization","id":"org-1"}`, `{"resourceType":"Organization","id":"org-2"}`, `{"resourceType":"Organization","id":"org-none"}`,
		at("HealthcareService", "hs-a", "loc-a"),
		at("HealthcareService", "hs-ab", "loc-b", "loc-a"),
		at("HealthcareService", "hs-b", "loc-b"),
		at("HealthcareService", "hs-nowhere"),
		`{"resourceType":"HealthcareService","id":"hs-a-indirect","location":[{"reference":"Location/loc-a"}],`+
			`"characteristic":[{"coding":[{"system":"`+booking.BookabilitySystem+`","code":"`+booking.IndirectlyBookable+`"}]}]}`,
		at("PractitionerRole", "pr-a", "loc-a"),
		at("PractitionerRole", "pr-b", "loc-b"),
		`{"resourceType":"Practitioner","id":"dr"}`,
		sched("sc-loc-a", "Location/loc-a"),
		sched("sc-hs-a", "HealthcareService/hs-a"),
		sched("sc-hs-ab", "HealthcareService/hs-ab"),
		sched("sc-hs-b", "HealthcareService/hs-b"),
		sched("sc-hs-nowhere", "HealthcareService/hs-nowhere"),
		sched("sc-hs-a-indirect", "HealthcareService/hs-a-indirect"),
		sched("sc-pr-a", "Practitioner/dr", "PractitionerRole/pr-a"),
		sched("sc-pr-b", "PractitionerRole/pr-b"),
	)
	for _, id := range []string{"loc-a", "hs-a", "hs-ab", "hs-b", "hs-c", "hs-nowhere", "hs-a-indirect", "pr-a", "pr-b"} {
		s.put(slotAt("s-"+id, "sc-"+id, t0, 20*time.Minute))
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"location-reference=Location/loc-a", []string{"s-hs-a", "s-hs-ab", "s-loc-a", "s-pr-a"}},
		{"location-reference=Location/loc-b", []string{"s-hs-ab", "s-hs-b", "s-pr-b"}},
		{"location-reference=Location/loc-a&location-reference=Location/loc-b",
			[]string{"s-hs-a", "s-hs-ab", "s-hs-b", "s-loc-a", "s-pr-a", "s-pr-b"}},
		{"location-reference=Location/loc-a&healthcare-service=HealthcareService/hs-ab", []string{"s-hs-ab"}},
		{"location-reference=Location/loc-a&healthcare-service=HealthcareService/hs-b", nil},
		{"location-reference=Location/loc-a&practitioner=Practitioner/dr", []string{"s-pr-a"}},
		{"location-reference=Location/loc-empty", nil},
		{"location-reference=Location/no-such-location", nil},
		{"organization=Organization/org-1", []string{"s-hs-a", "s-pr-b"}},
		{"organization=Organization/org-2", []string{"s-hs-b"}},
		{"organization=Organization/org-1&organization=Organization/org-2", []string{"s-hs-a", "s-hs-b", "s-pr-b"}},
		{"organization=Organization/org-1&location-reference=Location/loc-a", []string{"s-hs-a"}},
		{"organization=Organization/org-none", nil},
		// location-string names locations by address: the same schedules.
		{"location-string=Salisbury", []string{"s-hs-c"}},
		{"location-string=Salisbury&location-reference=Location/loc-c", []string{"s-hs-c"}},
		{"location-string=Nowhere", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var got []string
			for _, a := range entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?"+tc.query, nil), 200)) {
				got = append(got, slotOf(a))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("$find?%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}

// TestLongIDs: proposals are valid FHIR ids whatever the slot, patient and
// referral ids (64-character, not UUIDs), and $hold and $book accept them.
func TestLongIDs(t *testing.T) {
	s := newServer(t, app.Config{})
	long := func(prefix string) string { return prefix + strings.Repeat("x", 64-len(prefix)) }
	svc, sched, pat := long("hs-"), long("sc-"), long("pat-")
	s.put(service(svc), schedule(sched, svc), patient(pat))
	t0 := tomorrow9()
	var slots []string
	for i := range 3 {
		id := long(fmt.Sprintf("slot-%d-", i))
		slots = append(slots, id)
		s.put(slotAt(id, sched, t0.Add(time.Duration(i)*time.Hour), 30*time.Minute))
	}
	found := entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/"+svc+"&patient-reference=Patient/"+pat, nil), 200))
	if len(found) != 3 {
		t.Fatalf("$find gave %d proposals, want 3", len(found))
	}
	for _, a := range found {
		if id := a["id"].(string); !regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`).MatchString(id) {
			t.Errorf("proposal id %q (%d characters) is not a valid FHIR id", id, len(id))
		}
	}
	held := entries(t, must(t, "$hold", s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+found[1]["id"].(string)))), 200))[0]
	if slotOf(held) != slots[1] || s.slotStatus(slots[1]) != "busy-tentative" {
		t.Errorf("$hold held %s (%s), want %s busy-tentative", slotOf(held), s.slotStatus(slots[1]), slots[1])
	}
	bk := entries(t, must(t, "$book", s.do("POST", "/Appointment/$book", params("appointment-reference", ref("Appointment/"+found[2]["id"].(string)))), 200))[0]
	if slotOf(bk) != slots[2] || s.slotStatus(slots[2]) != "busy" {
		t.Errorf("$book booked %s (%s), want %s busy", slotOf(bk), s.slotStatus(slots[2]), slots[2])
	}
	if got := bk["participant"].([]any)[0].(map[string]any)["actor"].(map[string]any)["reference"]; got != "Patient/"+pat {
		t.Errorf("booked for %v, want Patient/%s", got, pat)
	}
	s.check()
}
