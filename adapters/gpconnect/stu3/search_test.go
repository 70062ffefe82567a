package stu3_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

// TestSlotSearchQuery: the query carries each parameter GP Connect
// requires, start and end once each with their offsets escaped.
func TestSlotSearchQuery(t *testing.T) {
	from := time.Date(2026, 12, 7, 0, 0, 0, 0, time.FixedZone("BST", 3600))
	q := stu3.SlotSearchQuery(from, from.Add(14*24*time.Hour), "RH8", "urgent-care")
	enc := q.Encode()
	back, err := url.ParseQuery(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"start": {"ge2026-12-07T00:00:00+01:00"}, "end": {"le2026-12-21T00:00:00+01:00"},
		"status": {"free"}, "_include": {"Slot:schedule"},
		"_include:recurse": {"Schedule:actor:Practitioner", "Schedule:actor:Location", "Location:managingOrganization"},
		"searchFilter":     {"https://fhir.nhs.uk/Id/ods-organization-code|RH8", "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-OrganisationType-1|urgent-care"},
	}
	if d := cmp.Diff(want, back); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestSlotWindows: a horizon is split into windows of at most 14 days
// that cover it exactly.
func TestSlotWindows(t *testing.T) {
	day := 24 * time.Hour
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		days int
		want []int // lengths in days
	}{
		{0, nil}, {1, []int{1}}, {14, []int{14}}, {15, []int{14, 1}}, {28, []int{14, 14}}, {30, []int{14, 14, 2}},
	} {
		got := stu3.SlotWindows(t0, t0.Add(time.Duration(tc.days)*day))
		var lens []int
		at := t0
		for _, w := range got {
			if !w[0].Equal(at) {
				t.Errorf("%d days: a window starts at %s, want %s", tc.days, w[0], at)
			}
			lens = append(lens, int(w[1].Sub(w[0])/day))
			at = w[1]
		}
		if d := cmp.Diff(tc.want, lens); d != "" {
			t.Errorf("%d days (-want +got):\n%s", tc.days, d)
		}
	}
}
