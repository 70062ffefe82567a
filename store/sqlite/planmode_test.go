package sqlite

import (
	"testing"

	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestPlanModes runs the shared suite (with its differential test against
// the oracle) with the planner forced to walk resources in order, and to
// drive from an index, whenever it can: every way of answering a search
// must give the same pages.
func TestPlanModes(t *testing.T) {
	for _, m := range []struct {
		name string
		mode int
	}{{"walk", walkAlways}, {"drive", driveAlways}} {
		t.Run(m.name, func(t *testing.T) {
			planMode = m.mode
			defer func() { planMode = costBased }()
			storetest.Run(t, func(t *testing.T) store.Store {
				s, err := Open(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}
