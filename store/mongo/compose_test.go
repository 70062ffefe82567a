package mongo_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeFile: the docker-compose.yml docs/mongodb.md offers parses,
// has a three-member replica set that one service initiates, and two
// Signpost processes on it with the store in the environment.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Build       any               `yaml:"build"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	var members, signposts []string
	for name, s := range f.Services {
		switch {
		case slices.Contains(s.Command, "--replSet"):
			members = append(members, name)
		case s.Build != nil:
			signposts = append(signposts, name)
			uri := s.Environment["SIGNPOST_STORE"]
			if !strings.HasPrefix(uri, "mongodb://") || !strings.Contains(uri, "replicaSet=rs0") {
				t.Errorf("%s: SIGNPOST_STORE = %q, want a mongodb:// URI of replica set rs0", name, uri)
			}
			if len(s.Ports) != 1 {
				t.Errorf("%s: ports %v, want one", name, s.Ports)
			}
		}
	}
	slices.Sort(members)
	if !slices.Equal(members, []string{"mongo1", "mongo2", "mongo3"}) {
		t.Errorf("replica set members %v, want mongo1..3", members)
	}
	if len(signposts) != 2 {
		t.Errorf("Signpost services %v, want two", signposts)
	}
	init := strings.Join(f.Services["mongo-init"].Command, " ")
	for _, m := range members {
		if !strings.Contains(init, m+":27017") {
			t.Errorf("mongo-init does not add %s to the replica set: %s", m, init)
		}
	}
}
