package devserver

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/signpost-fhir/signpost/auth"
)

// TestNewDemoClientsJoinAnOldSet: a clients.json written before the
// commissioner client existed gains it at the next start, with working
// credentials, and keeps every client it had as it was.
func TestNewDemoClientsJoinAnOldSet(t *testing.T) {
	dir := t.TempDir()
	all, err := newDemoClients(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := slices.DeleteFunc(slices.Clone(all), func(c *DemoClient) bool { return c.ID == ClientCommissioner || c.ID == ClientOperator })
	old[1].Secret = "an-operator-chose-this-one"
	if err := writeJSON(filepath.Join(dir, clientsFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadOrCreateClients(dir)
	if err != nil {
		t.Fatal(err)
	}
	var stored []*DemoClient
	if err := readJSON(filepath.Join(dir, clientsFile), &stored); err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]*DemoClient{got, stored} {
		if len(set) != len(all) {
			t.Fatalf("%d clients, want %d", len(set), len(all))
		}
		i := slices.IndexFunc(set, func(c *DemoClient) bool { return c.ID == ClientCommissioner })
		if i < 0 {
			t.Fatalf("no %s client", ClientCommissioner)
		}
		c := set[i]
		if c.Role != auth.RoleCommissioner || c.Organization != DemoCommissioner || c.check() != nil || !c.allows("user/HealthcareService.rs") || c.allows("user/ServiceRequest.rs") {
			t.Errorf("commissioner client = %+v", c)
		}
		i = slices.IndexFunc(set, func(c *DemoClient) bool { return c.ID == ClientOperator })
		if i < 0 {
			t.Fatalf("no %s client", ClientOperator)
		}
		if c := set[i]; c.Role != auth.RoleOperator || c.check() != nil || !c.allows("user/HealthcareService.rs") || c.allows("user/Patient.rs") || c.allows("system/*.rs") {
			t.Errorf("operator client = %+v", c)
		}
		if set[1].Secret != "an-operator-chose-this-one" {
			t.Errorf("%s's secret was replaced", set[1].ID)
		}
	}
	if err := validate.Struct(TokenOptions{Scope: "user/HealthcareService.rs", Role: auth.RoleCommissioner}); err != nil {
		t.Errorf("TokenOptions with the commissioner role: %v", err)
	}
}
