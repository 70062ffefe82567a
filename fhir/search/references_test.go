package search

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
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

// TestReferencesMemo: References remembers entries by the body's bytes,
// so the same body answers the same entries without parsing, a changed
// body (a new version) its own, and a caller changing the body it passed
// afterwards changes nothing remembered; the memo stays within its
// budget.
func TestReferencesMemo(t *testing.T) {
	r := testRegistry(t)
	slot := func(sch string) []byte {
		return []byte(`{"resourceType":"Slot","id":"s1","meta":{"versionId":"1"},"schedule":{"reference":"Schedule/` + sch + `"},"status":"free"}`)
	}
	refOf := func(body []byte, param string) string {
		t.Helper()
		got, err := r.References("Slot", body, param)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			return ""
		}
		return got[0].RefType + "/" + got[0].RefID
	}
	tests := []struct {
		body  []byte
		param string
		want  string
	}{
		{slot("a"), "schedule", "Schedule/a"},
		{slot("a"), "schedule", "Schedule/a"}, // remembered
		{slot("b"), "schedule", "Schedule/b"}, // a new version: its own entries
		{slot("a"), "*", "Schedule/a"},
		{slot("a"), "schedule", "Schedule/a"},
	}
	for i, tt := range tests {
		if got := refOf(tt.body, tt.param); got != tt.want {
			t.Errorf("%d: References(%s, %s) = %s, want %s", i, tt.body, tt.param, got, tt.want)
		}
	}
	// A caller reusing its buffer: what was remembered is the old bytes'.
	buf := slot("c")
	if got := refOf(buf, "schedule"); got != "Schedule/c" {
		t.Fatalf("got %s", got)
	}
	copy(buf[bytesIndex(buf, "Schedule/c")+len("Schedule/"):], "d")
	if got := refOf(buf, "schedule"); got != "Schedule/d" {
		t.Errorf("after the caller changed its buffer: %s, want Schedule/d", got)
	}
	if got := refOf(slot("c"), "schedule"); got != "Schedule/c" {
		t.Errorf("the first body again: %s, want Schedule/c", got)
	}
	// The entries handed out are clipped: appending copies.
	got, _ := r.References("Slot", slot("a"), "schedule")
	_ = append(got, Entry{Param: "x"})
	if again, _ := r.References("Slot", slot("a"), "schedule"); len(again) != 1 || cap(again) != 1 {
		t.Errorf("remembered entries changed by a caller's append: %+v", again)
	}

	// Bounded: many distinct bodies keep the memo within its budget.
	m := newRefMemo(64 << 10)
	for i := range 5000 {
		body := []byte(`{"resourceType":"Slot","id":"` + strconv.Itoa(i) + `","schedule":{"reference":"Schedule/x"}}`)
		h := m.hash("Slot", "schedule", body)
		m.put(h, "Slot", "schedule", string(body), []Entry{{Param: "schedule"}})
		if _, ok := m.get(h, "Slot", "schedule", body); !ok {
			t.Fatalf("body %d not remembered right after put", i)
		}
	}
	total := m.cache.Stats().Bytes
	if total > 64<<10+int64(refMemoShards)*1024 {
		t.Errorf("memo holds %d bytes, budget 64 KiB", total)
	}
}

func bytesIndex(b []byte, s string) int { return strings.Index(string(b), s) }

// BenchmarkReferencesPage is _include's cost for a page of 50 Slots asked
// for again (remembered), against BenchmarkReferences' first sight.
func BenchmarkReferencesPage(b *testing.B) {
	r := testRegistry(b)
	var page [][]byte
	for i := range 50 {
		page = append(page, []byte(`{"resourceType":"Slot","id":"slot-`+strconv.Itoa(i)+`","meta":{"versionId":"3","lastUpdated":"2026-12-07T01:02:03.456Z"},`+
			`"identifier":[{"system":"https://signpost.example/slot","value":"`+strconv.Itoa(i)+`"}],"serviceType":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110"}]}],`+
			`"schedule":{"reference":"Schedule/sch-7"},"status":"free","start":"2026-12-08T09:00:00Z","end":"2026-12-08T09:15:00Z"}`))
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, body := range page {
			if _, err := r.References("Slot", body, "schedule"); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestTargets: Targets gives each distinct target of a page once, in the
// order first found, filtered by parameter and target type; asked again
// with the very same bodies it answers from the page memo, and a page
// whose bodies are other slices (the same bytes, or bytes changed in a
// caller's reused buffer) is computed afresh, never answered with another
// page's targets.
func TestTargets(t *testing.T) {
	r := testRegistry(t)
	appt := func(id, patient, slot string) []byte {
		return []byte(`{"resourceType":"Appointment","id":"` + id + `","status":"booked","slot":[{"reference":"Slot/` + slot + `"}],` +
			`"participant":[{"actor":{"reference":"Patient/` + patient + `"},"status":"accepted"},{"actor":{"reference":"https://elsewhere.example/fhir/Practitioner/x"},"status":"accepted"}]}`)
	}
	page := [][]byte{appt("a1", "p1", "s1"), appt("a2", "p2", "s2"), appt("a3", "p1", "s3")}
	refs := func(rs []Ref) string {
		var out []string
		for _, x := range rs {
			out = append(out, x.Type+"/"+x.ID)
		}
		return strings.Join(out, " ")
	}
	cases := []struct {
		param, target, want string
	}{
		{"patient", "", "Patient/p1 Patient/p2"},
		{"slot", "", "Slot/s1 Slot/s2 Slot/s3"},
		{"actor", "Patient", "Patient/p1 Patient/p2"},
		{"actor", "Practitioner", ""},
		{"*", "", "Patient/p1 Slot/s1 Patient/p2 Slot/s2 Slot/s3"}, // each body in the parameters' order
		{"*", "Slot", "Slot/s1 Slot/s2 Slot/s3"},
		{"practitioner", "", ""},
	}
	for _, c := range cases {
		for round := range 2 { // the second round from the page memo
			got, err := r.Targets("Appointment", page, c.param, c.target)
			if err != nil {
				t.Fatal(err)
			}
			if refs(got) != c.want {
				t.Errorf("round %d: Targets(%s, %q) = %q, want %q", round, c.param, c.target, refs(got), c.want)
			}
		}
	}
	h := r.pages.hash("Appointment", "patient", "", page)
	if _, ok := r.pages.get(h, "Appointment", "patient", "", page); !ok {
		t.Error("a page asked twice is not in the page memo")
	}

	// The same bytes in other slices: not the memo's page, same answer.
	copied := make([][]byte, len(page))
	for i, b := range page {
		copied[i] = slices.Clone(b)
	}
	if _, ok := r.pages.get(r.pages.hash("Appointment", "patient", "", copied), "Appointment", "patient", "", copied); ok {
		t.Error("a page of copies is answered by identity from another page's entry")
	}
	if got, _ := r.Targets("Appointment", copied, "patient", ""); refs(got) != "Patient/p1 Patient/p2" {
		t.Errorf("a page of copies: %q", refs(got))
	}
	// A caller that reuses its buffers: new bytes, new answer.
	buf := [][]byte{appt("a1", "p1", "s1")}
	if got, _ := r.Targets("Appointment", buf, "patient", ""); refs(got) != "Patient/p1" {
		t.Fatalf("first buffer: %q", refs(got))
	}
	buf[0] = appt("a1", "p9", "s1")
	if got, _ := r.Targets("Appointment", buf, "patient", ""); refs(got) != "Patient/p9" {
		t.Errorf("after the caller changed its body: %q, want Patient/p9", refs(got))
	}

	// Bounded: many distinct pages keep the memo within its budget.
	m := newPageMemo(64 << 10)
	for i := range 3000 {
		p := [][]byte{[]byte(`{"resourceType":"Slot","id":"` + strconv.Itoa(i) + `"}`)}
		h := m.hash("Slot", "schedule", "", p)
		m.put(h, pageMemoEntry{typ: "Slot", param: "schedule", bodies: p, refs: []Ref{{Type: "Schedule", ID: "x"}}})
		if _, ok := m.get(h, "Slot", "schedule", "", p); !ok {
			t.Fatalf("page %d not remembered right after put", i)
		}
	}
	if total := m.cache.Stats().Bytes; total > 64<<10+int64(refMemoShards)*1024 {
		t.Errorf("page memo holds %d bytes, budget 64 KiB", total)
	}
}
