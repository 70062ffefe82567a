package fhir

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// spliceCase is one ReplaceExtensions call.
type spliceCase struct {
	body string
	urls []string
	exts []string
	fast bool // replaceCompact answers it (rather than declining)
}

func rawList(ss []string) []json.RawMessage {
	var out []json.RawMessage
	for _, s := range ss {
		out = append(out, json.RawMessage(s))
	}
	return out
}

// checkSplice fails unless replaceCompact, when it answers, answers
// exactly what the decoding path does (or declines where it errs).
func checkSplice(t *testing.T, body []byte, urls []string, exts []json.RawMessage) (fast bool) {
	t.Helper()
	got, ok := replaceCompact(body, urls, exts)
	want, err := replaceParsed(body, urls, exts)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("replaceCompact(%q, %q, %q) answered %q where the decoding path refuses: %v", body, urls, exts, got, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("replaceCompact(%q, %q, %q) = %q, decoding path %q", body, urls, exts, got, want)
	}
	if bytes.Equal(got, body) && len(got) > 0 && &got[0] != &body[0] {
		t.Fatalf("an unchanged body should be body itself")
	}
	return true
}

// TestReplaceExtensionsSplice: the splice that serves derived values
// gives byte for byte what decoding the body gives, for the shapes stored
// bodies take, and leaves everything else to the decoding path.
func TestReplaceExtensionsSplice(t *testing.T) {
	const wt = `{"url":"https://x/wait","valueDuration":{"value":12,"unit":"d"}}`
	const other = `{"url":"https://x/other","valueString":"a \"q\" ü"}`
	cases := []spliceCase{
		{`{"resourceType":"HealthcareService","id":"h1","name":"Clinic"}`, []string{"https://x/wait"}, []string{wt}, true},
		{`{"resourceType":"HealthcareService","id":"h1","extension":[` + other + `],"name":"Clinic"}`, []string{"https://x/wait"}, []string{wt}, true},
		{`{"resourceType":"HealthcareService","id":"h1","extension":[` + other + `,{"url":"https://x/wait","valueInteger":1}],"name":"C"}`, []string{"https://x/wait"}, []string{wt}, true},
		{`{"resourceType":"HealthcareService","id":"h1","extension":[{"url":"https://x/wait","valueInteger":1}],"name":"C"}`, []string{"https://x/wait"}, nil, true},
		{`{"extension":[{"url":"https://x/wait","valueInteger":1}]}`, []string{"https://x/wait"}, nil, true},
		{`{"resourceType":"HealthcareService","extension":[` + other + `]}`, []string{"https://x/wait"}, nil, true}, // unchanged
		{`{"resourceType":"HealthcareService","extension":[]}`, []string{"https://x/wait"}, nil, true},
		{`{"resourceType":"HealthcareService","extension":[]}`, nil, []string{wt}, true},
		{`{}`, nil, []string{wt}, true},
		{`{"a":[1,-2.5e+3,0,true,false,null,"\u00e9\n"],"b":{"c":{}},"extension":["x",3,null,[],{}]}`, []string{"https://x/wait"}, []string{wt}, true},
		// Declined: whitespace, escapes in names, duplicates, odd shapes.
		{`{"resourceType": "HealthcareService"}`, nil, []string{wt}, false},
		{` {"a":1}`, nil, []string{wt}, false},
		{`{"a":1} `, nil, []string{wt}, false},
		{`{"a":1,"a":2}`, nil, []string{wt}, false},
		{`{"a":{"b":1,"b":2}}`, nil, []string{wt}, false},
		{`{"\u0061":1}`, nil, []string{wt}, false},
		{`{"extension":{"url":"x"}}`, []string{"x"}, nil, false},
		{`{"extension":null}`, []string{"x"}, nil, false},
		{`{"extension":[{"URL":"https://x/wait"}]}`, []string{"https://x/wait"}, nil, false},
		{`{"extension":[{"url":"https:\/\/x/wait"}]}`, []string{"https://x/wait"}, nil, false},
		{`{"extension":[{"url":1}]}`, []string{"https://x/wait"}, nil, false},
		{`{"extension":[{"url":"a","valueString":"<b>"}]}`, []string{"x"}, []string{wt}, false},
		{`{"a":1}`, nil, []string{`{"url": "x"}`}, false},
		{`{"a":1}`, nil, []string{`{"url":"x","valueString":"a&b"}`}, false},
		{`{"a":01}`, nil, []string{wt}, false},
		{`{"a":1`, nil, []string{wt}, false},
		{`[]`, nil, []string{wt}, false},
		{`{"a":"x` + "\x01" + `"}`, nil, []string{wt}, false},
	}
	for _, c := range cases {
		if fast := checkSplice(t, []byte(c.body), c.urls, rawList(c.exts)); fast != c.fast {
			t.Errorf("replaceCompact(%s): answered %v, want %v", c.body, fast, c.fast)
		}
	}
	// The resources in testdata, compacted, with a value added and replaced.
	files, _ := filepath.Glob("testdata/*.json")
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if json.Compact(&buf, raw) != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
			continue
		}
		body := buf.Bytes()
		if checkSplice(t, body, []string{"https://x/wait"}, rawList([]string{wt})) {
			n++
		}
		added, _ := ReplaceExtensions(body, []string{"https://x/wait"}, rawList([]string{wt}))
		checkSplice(t, added, []string{"https://x/wait"}, rawList([]string{other}))
		checkSplice(t, added, []string{"https://x/wait"}, nil)
	}
	if n == 0 {
		t.Fatal("no testdata resource was spliced")
	}
}

// FuzzReplaceExtensions: the splice never answers differently from the
// decoding path.
func FuzzReplaceExtensions(f *testing.F) {
	f.Add([]byte(`{"resourceType":"HealthcareService","extension":[{"url":"u","valueInteger":1},{"url":"v"}],"name":"x"}`), []byte(`{"url":"u","valueInteger":2}`), "u")
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"\u00e9"}]},"extension":[]}`), []byte(`{"url":"u"}`), "v")
	f.Add([]byte(`{"extension":[{"url":"u"}]}`), []byte(``), "u")
	f.Fuzz(func(t *testing.T, body, ext []byte, url string) {
		var exts []json.RawMessage
		if len(ext) > 0 {
			exts = []json.RawMessage{ext}
			if !json.Valid(ext) {
				return // the decoding path panics on invalid values (a programming error)
			}
		}
		checkSplice(t, body, []string{url}, exts)
	})
}

// BenchmarkReplaceExtensions: serving a service's waiting time, spliced
// and decoded.
func BenchmarkReplaceExtensions(b *testing.B) {
	body := []byte(`{"resourceType":"HealthcareService","id":"svc-7","meta":{"versionId":"2","lastUpdated":"2026-12-07T01:02:03.456Z"},` +
		`"identifier":[{"system":"https://signpost.example/service","value":"svc-7"}],"active":true,"providedBy":{"reference":"Organization/RBENCH"},` +
		`"type":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110","display":"Trauma and orthopaedics"}]}],` +
		`"specialty":[{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/Specialty","code":"110"}]}],"location":[{"reference":"Location/loc-3"}],` +
		`"name":"Orthopaedics clinic 7","telecom":[{"system":"phone","value":"01234 567890"}],"availableTime":[{"daysOfWeek":["mon","tue","wed"],"availableStartTime":"09:00:00","availableEndTime":"17:00:00"}]}`)
	urls := []string{"https://signpost.example/fhir/StructureDefinition/waiting-time"}
	exts := rawList([]string{`{"url":"https://signpost.example/fhir/StructureDefinition/waiting-time","valueDuration":{"value":12,"unit":"days","system":"http://unitsofmeasure.org","code":"d"}}`})
	for _, c := range []struct {
		name string
		fn   func([]byte, []string, []json.RawMessage) ([]byte, error)
	}{
		{"splice", ReplaceExtensions},
		{"decode", replaceParsed},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(body, urls, exts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
