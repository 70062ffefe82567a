package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
)

// _include follows only to resources that exist now: a deleted or unknown
// target is left out, whether the store reads the targets one by one (a few
// of a type) or searches for them (many).
func TestIncludeSkipsDeletedAndMissingTargets(t *testing.T) {
	s := newServer(t, app.Config{})
	slot := func(id, schedule string) string {
		return `{"resourceType":"Slot","id":"` + id + `","schedule":{"reference":"Schedule/` + schedule +
			`"},"status":"free","start":"2030-01-07T09:00:00Z","end":"2030-01-07T09:15:00Z"}`
	}
	schedules := []string{"live", "gone", "s1", "s2", "s3", "s4", "s5"}
	for _, id := range schedules {
		s.put("Schedule", id, `{"resourceType":"Schedule","id":"`+id+`","actor":[{"reference":"Location/l"}]}`)
	}
	s.must(request{method: http.MethodDelete, path: "Schedule/gone"}, http.StatusNoContent)

	tests := []struct {
		name  string
		slots map[string]string // slot id → schedule id
		want  []string          // included Schedule ids
	}{
		{"few targets, read one by one", map[string]string{"a1": "live", "a2": "gone", "a3": "never"}, []string{"live"}},
		{"many targets, searched", map[string]string{"b1": "live", "b2": "gone", "b3": "never", "b4": "s1",
			"b5": "s2", "b6": "s3", "b7": "s4", "b8": "s5"}, []string{"live", "s1", "s2", "s3", "s4", "s5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ids []string
			for id, sc := range tt.slots {
				s.put("Slot", id, slot(id, sc))
				ids = append(ids, id)
			}
			slices.Sort(ids)
			query := "Slot?_include=Slot:schedule&_count=100&_id=" + strings.Join(ids, ",")
			var b struct {
				Entry []struct {
					Resource struct{ ResourceType, ID string }
					Search   struct{ Mode string }
				}
			}
			if err := json.Unmarshal(s.must(request{method: http.MethodGet, path: query}, http.StatusOK).body, &b); err != nil {
				t.Fatal(err)
			}
			var got []string
			matches := 0
			for _, e := range b.Entry {
				switch e.Search.Mode {
				case "include":
					if e.Resource.ResourceType != "Schedule" {
						t.Errorf("included %s/%s", e.Resource.ResourceType, e.Resource.ID)
					}
					got = append(got, e.Resource.ID)
				case "match":
					matches++
				}
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("included schedules (-want +got):\n%s", diff)
			}
			if matches != len(tt.slots) {
				t.Errorf("%d matches, want %d", matches, len(tt.slots))
			}
		})
	}
}
