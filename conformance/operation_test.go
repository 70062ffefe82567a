package conformance

import (
	"encoding/json"
	"testing"
)

// TestOperationDefinition: every OperationDefinition of Signpost's is
// found by its id; an unknown id finds none.
func TestOperationDefinition(t *testing.T) {
	defs := Definitions("OperationDefinition")
	if len(defs) == 0 {
		t.Fatal("no OperationDefinitions")
	}
	for _, raw := range defs {
		var head struct {
			ID   string `json:"id"`
			Code string `json:"code"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" {
			t.Fatalf("an OperationDefinition without an id: %v", err)
		}
		got := OperationDefinition(head.ID)
		var back struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(got, &back); err != nil || back.ID != head.ID {
			t.Errorf("OperationDefinition(%q) has id %q (%v)", head.ID, back.ID, err)
		}
	}
	if got := OperationDefinition("no-such-operation"); got != nil {
		t.Errorf("OperationDefinition of an unknown id = %s, want nil", got)
	}
}
