package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

// fuzzPatient is the resource FuzzJSONPatch patches.
const fuzzPatient = `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-03-01T10:00:00.000Z"},` +
	`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"name":[{"family":"Smith","given":["Ann","B"]}],` +
	`"gender":"female","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"x","valueString":"y"}]},"active":true}`

// FuzzJSONPatch checks the PATCH body's path: decoding a JSON Patch
// document never panics and refuses with an Invalid error; a decoded patch
// applied to a Patient never panics and gives valid JSON or an error; and
// the patch re-encoded decodes and applies to the same result.
func FuzzJSONPatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"replace","path":"/gender","value":"male"}]`,
		`[{"op":"add","path":"/name/0/given/-","value":"C"},{"op":"remove","path":"/active"}]`,
		`[{"op":"test","path":"/birthDate","value":"1970-01-01"},{"op":"copy","from":"/name/0","path":"/name/1"}]`,
		`[{"op":"move","from":"/identifier/0","path":"/identifier/1"},{"op":"add","path":"/a~1b~0c","value":{"x":[1,2.50]}}]`,
		`[{"op":"remove","path":"/name/0/given/7"}]`, `[{"op":"replace","path":"","value":{}}]`, `[{"op":"x"}]`, `{}`, `[]`, `[1]`,
		`[{"op":"add","path":"/name/-1","value":1}]`, `[{"op":"add","path":"/name/01","value":1}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := decodePatch(doc)
		if err != nil {
			if fhir.KindOf(err) != fhir.Invalid {
				t.Fatalf("decodePatch(%q): error of kind %v, want Invalid: %v", doc, fhir.KindOf(err), err)
			}
			return
		}
		out, err := p.Apply([]byte(fuzzPatient))
		if err == nil && !json.Valid(out) {
			t.Fatalf("patch %q gave invalid JSON %q", doc, out)
		}
		re, merr := json.Marshal(p)
		if merr != nil {
			t.Fatalf("the decoded patch %q does not encode: %v", doc, merr)
		}
		p2, err2 := decodePatch(re)
		if err2 != nil {
			t.Fatalf("patch %q re-encoded as %q is refused: %v", doc, re, err2)
		}
		out2, err2 := p2.Apply([]byte(fuzzPatient))
		if (err == nil) != (err2 == nil) || !bytes.Equal(out, out2) {
			t.Fatalf("patch %q and its re-encoding %q apply differently: %q (%v), then %q (%v)", doc, re, out, err, out2, err2)
		}
	})
}

// FuzzHeaders checks the request headers the write path reads: If-Match
// either refuses with an Invalid error or gives a version of at least 1
// that reads back the same from its ETag form (W/"n"), and a Prefer
// return= value is taken from the header as sent.
func FuzzHeaders(f *testing.F) {
	for _, s := range [][2]string{{`W/"3"`, "return=minimal"}, {`"12"`, `return="OperationOutcome"`}, {"7", "respond-async; return=representation"},
		{`W/"0"`, "handling=strict"}, {`W/"-1"`, "RETURN=minimal;return=x"}, {`W/"99999999999999999999"`, ""}, {`*`, `return`}, {` W/"4" `, `;;=;`}} {
		f.Add(s[0], s[1])
	}
	gin.SetMode(gin.TestMode)
	ctx := func(h, v string) *gin.Context {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPut, "/fhir/Patient/p1", nil)
		c.Request.Header.Set(h, v)
		return c
	}
	f.Fuzz(func(t *testing.T, match, pref string) {
		n, err := ifMatch(ctx("If-Match", match))
		switch {
		case err != nil:
			if fhir.KindOf(err) != fhir.Invalid {
				t.Fatalf("If-Match %q: error of kind %v", match, fhir.KindOf(err))
			}
		case strings.TrimSpace(match) == "" && n != 0:
			t.Fatalf("If-Match %q (blank) gave version %d", match, n)
		case strings.TrimSpace(match) != "":
			if n < 1 {
				t.Fatalf("If-Match %q gave version %d", match, n)
			}
			back, err := ifMatch(ctx("If-Match", `W/"`+strconv.FormatInt(n, 10)+`"`))
			if err != nil || back != n {
				t.Fatalf("If-Match %q gave %d, whose ETag reads %d, %v", match, n, back, err)
			}
		}
		c := ctx("Prefer", pref)
		got := prefer(c, "return")
		if got != "" && !strings.Contains(c.Request.Header.Get("Prefer"), got) {
			t.Fatalf("Prefer %q: return=%q is not in the header", pref, got)
		}
	})
}
