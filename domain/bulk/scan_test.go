package bulk

import (
	"strings"
	"testing"
)

// TestFastHead: the lines whose meta can be spliced in, and where.
func TestFastHead(t *testing.T) {
	tests := []struct {
		line          string
		typ, id, rest string // rest: the line after the splice point
	}{
		{`{"resourceType":"Slot","id":"s1","status":"free"}`, "Slot", "s1", `,"status":"free"}`},
		{` { "resourceType" : "Slot" , "id" : "s1" } `, "Slot", "s1", ` } `},
		{`{"resourceType":"Slot","id":"s1","x":{"a":["}",{"b":"\"]"}]},"y":1.5e3}`, "Slot", "s1", `,"x":{"a":["}",{"b":"\"]"}]},"y":1.5e3}`},
		{`{"id":"s1","resourceType":"Slot"}`, "", "", ""},                   // id first: general path
		{`{"resourceType":"Slot","id":"s1","meta":{"tag":[]}}`, "", "", ""}, // meta to merge
		{`{"resourceType":"Slot","id":"s\u00e91"}`, "", "", ""},             // escaped id
		{`{"resourceType":"Slot","id":"s1","id":"s2"}`, "", "", ""},         // repeated id
		{`{"resourceType":"Slot","id":"s1"`, "", "", ""},                    // truncated
		{`{"resourceType":"Slot","id":"s1"} {}`, "", "", ""},                // trailing data
		{`["resourceType","Slot"]`, "", "", ""},
		{`{"resourceType":"Slot"}`, "", "", ""},                                                                         // no id
		{`{"resourceType":"Slot","id":"s1","\u0069d":"s2"}`, "", "", ""},                                                // an escaped name (id)
		{`{"resourceType":"Slot","id":"s1","x":{"a":1,"a":2}}`, "", "", ""},                                             // repeated nested name
		{`{"resourceType":"Slot","id":"s1","status":"free","status":"busy"}`, "", "", ""},                               // repeated name
		{`{"resourceType":"Slot","id":"s1","x":tru}`, "", "", ""},                                                       // not JSON
		{`{"resourceType":"Slot","id":"s1","x":01}`, "", "", ""},                                                        // not JSON
		{`{"resourceType":"Slot","id":"s1","x":"a` + "\x01" + `"}`, "", "", ""},                                         // a control character
		{`{"resourceType":"Slot","id":"s1","x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, "", "", ""}, // too deep
	}
	for _, tt := range tests {
		typ, id, at := fastHead([]byte(tt.line))
		rest := ""
		if at > 0 {
			rest = tt.line[at:]
		}
		if typ != tt.typ || id != tt.id || rest != tt.rest {
			t.Errorf("fastHead(%s) = %q, %q, rest %q; want %q, %q, %q", tt.line, typ, id, rest, tt.typ, tt.id, tt.rest)
		}
	}
}
