package api

import "testing"

// TestAppendJSONString: the hand-written fast path writes exactly what
// encoding/json (through marshal) writes, for plain and special strings.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"",
		"http://127.0.0.1:8080/fhir/Slot/s-1",
		"match",
		`quote " and backslash \`,
		"tab\tnewline\n",
		"café ünïcode",
		"<&> stay as they are",
		"\x7f delete",
	} {
		if got, want := string(appendJSONString(nil, s)), string(marshal(s)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}
