package search

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestReferencesMatchExtract: References, which parses only the root
// members its expressions start from, gives exactly the reference entries
// a full extraction gives, for every reference parameter (and "*") of
// every resource in testdata.
func TestReferencesMatchExtract(t *testing.T) {
	r := testRegistry(t)
	var docs []json.RawMessage
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			docs = append(docs, list...)
		} else {
			docs = append(docs, raw)
		}
	}
	// A reference parameter reached through a choice element at the root
	// (Consent.source[x]).
	docs = append(docs, json.RawMessage(`{"resourceType":"Consent","id":"c","status":"active","scope":{"text":"x"},"category":[{"text":"x"}],`+
		`"sourceReference":{"reference":"DocumentReference/d1"},"patient":{"reference":"Patient/p1"}}`))
	checked := 0
	for _, doc := range docs {
		var head struct{ ResourceType string }
		json.Unmarshal(doc, &head)
		if r.ordered[head.ResourceType] == nil {
			continue
		}
		all, err := r.Extract(head.ResourceType, doc)
		if err != nil {
			t.Fatalf("Extract %s: %v", head.ResourceType, err)
		}
		params := []string{"*"}
		for _, p := range r.ordered[head.ResourceType] {
			if p.Type == Reference {
				params = append(params, p.Code)
			}
		}
		for _, param := range params {
			var want []Entry
			for _, e := range all {
				if e.Type == Reference && (param == "*" || e.Param == param) {
					want = append(want, e)
				}
			}
			got, err := r.References(head.ResourceType, doc, param)
			if err != nil {
				t.Fatalf("References %s %s: %v", head.ResourceType, param, err)
			}
			var refs []Entry
			for _, e := range got {
				if e.Type == Reference {
					refs = append(refs, e)
				}
			}
			if !reflect.DeepEqual(refs, want) {
				t.Errorf("References(%s, %s) = %+v, want %+v", head.ResourceType, param, refs, want)
			}
			checked += len(want)
		}
	}
	if checked < 20 {
		t.Fatalf("only %d reference entries checked: the test data has too few references", checked)
	}
}

// TestReferencesSkippedMembers: members References skips must still be
// well formed, and a skipped member of any shape leaves the parsed ones
// intact.
func TestReferencesSkippedMembers(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		body    string
		want    string // the schedule reference's id, "" for an error
		wantErr bool
	}{
		{`{"resourceType":"Slot","comment":"a \"quoted\" ] } text","schedule":{"reference":"Schedule/a"}}`, "a", false},
		{`{"resourceType":"Slot","identifier":[{"value":"x"},{"period":{"start":"2026"}}],"overbooked":true,"n":-1.5e3,"schedule":{"reference":"Schedule/b"}}`, "b", false},
		{`{"resourceType":"Slot","schedule":{"reference":"Schedule/c"},"extension":[[[]]],"status":null}`, "c", false},
		{`{"resourceType":"Slot","schedule":{"reference":"Schedule/d"},"comment":"unterminated}`, "", true},
		{`{"resourceType":"Slot","identifier":[{"value":"x"},"schedule":{"reference":"Schedule/e"}}`, "", true},
	}
	for _, tt := range tests {
		got, err := r.References("Slot", []byte(tt.body), "schedule")
		if (err != nil) != tt.wantErr {
			t.Errorf("References(%s): error %v, want error %v", tt.body, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (len(got) != 1 || got[0].RefID != tt.want) {
			t.Errorf("References(%s) = %+v, want Schedule/%s", tt.body, got, tt.want)
		}
	}
}

// BenchmarkReferences is _include's cost per match: a Slot's schedule
// reference.
func BenchmarkReferences(b *testing.B) {
	r := testRegistry(b)
	body, err := os.ReadFile(filepath.Join("testdata", "Slot-1.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.References("Slot", body, "schedule"); err != nil {
			b.Fatal(err)
		}
	}
}
