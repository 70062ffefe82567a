package booking_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// TestFreeSlotSearchAsSent: the free-slot search as GP and hospital systems
// send it (issue 4, item 1), through the HTTP API: the service's free
// slots in the window are the matches, and the schedule and its
// practitioner, role, location and service come as includes, once each,
// with GP Connect's STU3 _include:recurse accepted for :iterate. The end
// parameter keeps only slots that lie wholly inside the window.
func TestFreeSlotSearchAsSent(t *testing.T) {
	s := newServer(t, app.Config{})
	t0 := tomorrow9()
	at := func(h time.Duration) time.Time { return t0.Add(h) }
	s.put(service("hs"), service("hs-other"),
		`{"resourceType":"Location","id":"loc","status":"active","name":"Site"}`,
		`{"resourceType":"Practitioner","id":"dr"}`,
		`{"resourceType":"PractitionerRole","id":"pr","practitioner":{"reference":"Practitioner/dr"}}`,
		`{"resourceType":"Schedule","id":"sc","active":true,"actor":[{"reference":"HealthcareService/hs"},{"reference":"Practitioner/dr"},`+
			`{"reference":"PractitionerRole/pr"},{"reference":"Location/loc"}]}`,
		schedule("sc-other", "hs-other"),
		slotAt("in-1", "sc", at(0), 15*time.Minute),
		slotAt("in-2", "sc", at(time.Hour), 15*time.Minute),
		slotAt("across-end", "sc", at(4*time.Hour-10*time.Minute), 20*time.Minute), // starts in the window, ends after it
		slotAt("after", "sc", at(5*time.Hour), 15*time.Minute),
		slotAt("before", "sc", at(-2*time.Hour), 15*time.Minute),
		slotAt("other-service", "sc-other", at(0), 15*time.Minute),
		slotAt("taken", "sc", at(2*time.Hour), 15*time.Minute),
	)
	s.put(`{"resourceType":"Patient","id":"p1"}`)
	must(t, "booking", s.do("POST", "/Appointment", booked("p1", "taken")), 201)

	from, to := at(-time.Minute).Format(time.RFC3339), at(4*time.Hour).Format(time.RFC3339)
	window := "schedule.actor:HealthcareService=HealthcareService/hs&status=free&start=ge" + url.QueryEscape(from) + "&start=le" + url.QueryEscape(to)
	actors := "&_include:iterate=Schedule:actor:Practitioner&_include:iterate=Schedule:actor:PractitionerRole" +
		"&_include:iterate=Schedule:actor:Location&_include:iterate=Schedule:actor:HealthcareService"
	allIncluded := []string{"HealthcareService/hs", "Location/loc", "Practitioner/dr", "PractitionerRole/pr", "Schedule/sc"}
	tests := []struct {
		name              string
		query             string
		matches, included []string
	}{
		{"slots only", window, []string{"across-end", "in-1", "in-2"}, nil},
		{"with the schedule", window + "&_include=Slot:schedule", []string{"across-end", "in-1", "in-2"}, []string{"Schedule/sc"}},
		{"with the schedule's actors", window + "&_include=Slot:schedule" + actors, []string{"across-end", "in-1", "in-2"}, allIncluded},
		{"STU3 recurse", window + "&_include=Slot:schedule&_include:recurse=Schedule:actor:Practitioner&_include:recurse=Schedule:actor:PractitionerRole" +
			"&_include:recurse=Schedule:actor:Location&_include:recurse=Schedule:actor:HealthcareService", []string{"across-end", "in-1", "in-2"}, allIncluded},
		{"actors without iterate are not followed", window + "&_include=Slot:schedule&_include=Schedule:actor:Location",
			[]string{"across-end", "in-1", "in-2"}, []string{"Schedule/sc"}},
		{"wholly inside the window", window + "&end=le" + url.QueryEscape(to) + "&_include=Slot:schedule", []string{"in-1", "in-2"}, []string{"Schedule/sc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := must(t, tt.query, s.do("GET", "/Slot?"+tt.query, nil), 200)
			var b struct {
				Entry []struct {
					Resource struct{ ResourceType, ID string }
					Search   struct{ Mode string }
				}
			}
			if err := json.Unmarshal(r.body, &b); err != nil {
				t.Fatal(err)
			}
			var matches, included []string
			for _, e := range b.Entry {
				switch e.Search.Mode {
				case "match":
					if e.Resource.ResourceType != "Slot" {
						t.Errorf("match %s/%s is not a Slot", e.Resource.ResourceType, e.Resource.ID)
					}
					matches = append(matches, e.Resource.ID)
				case "include":
					included = append(included, e.Resource.ResourceType+"/"+e.Resource.ID)
				default:
					t.Errorf("%s/%s has search.mode %q", e.Resource.ResourceType, e.Resource.ID, e.Search.Mode)
				}
			}
			slices.Sort(matches)
			slices.Sort(included)
			if !slices.Equal(matches, tt.matches) {
				t.Errorf("matches %v, want %v", matches, tt.matches)
			}
			if !slices.Equal(included, tt.included) {
				t.Errorf("included %v, want %v", included, tt.included)
			}
		})
	}
}
