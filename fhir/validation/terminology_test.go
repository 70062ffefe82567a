package validation

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestLoadTerminology(t *testing.T) {
	resources := []string{
		`{"resourceType":"CodeSystem","url":"http://example.org/cs/colour","content":"complete",
		  "concept":[{"code":"red","concept":[{"code":"scarlet"}]},{"code":"green"},{"code":"blue"}]}`,
		`{"resourceType":"CodeSystem","url":"http://example.org/cs/partial","content":"fragment","concept":[{"code":"x"}]}`,
		`{"resourceType":"ValueSet","url":"http://example.org/vs/colour","compose":{"include":[{"system":"http://example.org/cs/colour"}]}}`,
		`{"resourceType":"ValueSet","url":"http://example.org/vs/warm","compose":{"include":[{"system":"http://example.org/cs/colour","concept":[{"code":"red"},{"code":"scarlet"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://example.org/vs/not-blue","compose":{
		  "include":[{"valueSet":["http://example.org/vs/colour|1.0"]}],
		  "exclude":[{"system":"http://example.org/cs/colour","concept":[{"code":"blue"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://example.org/vs/expanded","expansion":{"contains":[
		  {"system":"http://example.org/cs/colour","code":"green","contains":[{"system":"http://example.org/cs/colour","code":"lime"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://example.org/vs/filtered","compose":{"include":[{"system":"http://example.org/cs/colour","filter":[{"property":"concept","op":"is-a","value":"red"}]}]}}`,
		`{"resourceType":"ValueSet","url":"http://example.org/vs/partial","compose":{"include":[{"system":"http://example.org/cs/partial"}]}}`,
		`{"resourceType":"ValueSet","url":"http://example.org/vs/external","compose":{"include":[{"system":"urn:ietf:bcp:13"}]}}`,
	}
	var raw []json.RawMessage
	for _, r := range resources {
		raw = append(raw, json.RawMessage(r))
	}
	sets, _, err := loadTerminology(raw)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]string{ // nil: not enumerable, so not checked
		"http://example.org/vs/colour":   {"blue", "green", "red", "scarlet"},
		"http://example.org/vs/warm":     {"red", "scarlet"},
		"http://example.org/vs/not-blue": {"green", "red", "scarlet"},
		"http://example.org/vs/expanded": {"green", "lime"},
		"http://example.org/vs/filtered": nil,
		"http://example.org/vs/partial":  nil,
		"http://example.org/vs/external": nil,
	}
	for url, want := range tests {
		var got []string
		if vs := sets[url]; vs != nil {
			got = vs.list
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: codes %v, want %v", url, got, want)
		}
	}
}
