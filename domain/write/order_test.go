package write_test

import (
	"context"
	"slices"
	"testing"

	"github.com/signpost-fhir/signpost/domain/write"
)

// TestOrderNotRegistration: rules run in the declared order whatever order
// they are registered in; a rule the order does not declare is refused.
func TestOrderNotRegistration(t *testing.T) {
	rp := write.New(nil, nil)
	rp.SetOrder(write.Order{Every: []string{"access"}, Types: map[string][]string{"Slot": {"first", "second"}}})
	rule := func(context.Context, *write.Tx, *write.Change) error { return nil }
	rp.AddRule("Slot", "second", rule)
	rp.AddRule("Slot", "access", rule)
	rp.AddRule("Slot", "first", rule)
	if got, want := rp.RuleOrder("Slot"), []string{"access", "first", "second"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, c := range []struct{ typ, name string }{{"Slot", "third"}, {"Task", "first"}, {"Slot", "first"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AddRule(%s, %s) did not panic", c.typ, c.name)
				}
			}()
			rp.AddRule(c.typ, c.name, rule)
		}()
	}
}
