package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/fhir"
)

// hardEntry is a row's request as a Bundle entry.
type hardEntry struct {
	method, url, resource, ifNoneExist, ifMatch string
}

func (e hardEntry) json() string {
	req := `"method":"` + e.method + `","url":` + jsonString(e.url)
	if e.ifNoneExist != "" {
		req += `,"ifNoneExist":` + jsonString(e.ifNoneExist)
	}
	if e.ifMatch != "" {
		req += `,"ifMatch":` + jsonString(e.ifMatch)
	}
	out := `{"request":{` + req + `}`
	if e.resource != "" {
		out += `,"resource":` + e.resource
	}
	return out + "}"
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// hardOutcome is an OperationOutcome with the details codes.
type hardOutcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Details  struct {
			Coding []struct {
				System string `json:"system"`
				Code   string `json:"code"`
			} `json:"coding"`
		} `json:"details"`
		Diagnostics string   `json:"diagnostics"`
		Expression  []string `json:"expression"`
	} `json:"issue"`
}

// hasDetails reports whether an issue carries the Signpost error code.
func (oo hardOutcome) hasDetails(code string) bool {
	for _, is := range oo.Issue {
		for _, c := range is.Details.Coding {
			if c.System == fhir.ErrorSystem && c.Code == code {
				return true
			}
		}
	}
	return false
}

func (oo hardOutcome) expressions() []string {
	var out []string
	for _, is := range oo.Issue {
		out = append(out, is.Expression...)
	}
	slices.Sort(out)
	return out
}

// TestHardeningAdversarial is the adversarial table of issue 10's point 11:
// oversized searches, bodies that are not UTF-8 or carry no Content-Type,
// paths that only end like a public operation, refused writes that must
// be findable in the audit trail, and outcomes that must stay small. Each
// row checks the status, the OperationOutcome (issue code, Signpost error
// code, locations), that the answer leaks none of patient B's data, that
// the store (audit trail aside) is unchanged, and, for refused writes, that
// an auditor searching AuditEvent?entity= finds the attempt. A row a
// Bundle can carry runs as a single request, in a transaction and in a
// batch.
func TestHardeningAdversarial(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	patA := s.mint(t, devserver.TokenOptions{Scope: "patient/*.cruds", Patient: "pat-a"})
	provider := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider})
	admin := s.mint(t, devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientCallCentre})
	auditor := s.mint(t, devserver.TokenOptions{Scope: "user/AuditEvent.rs", Client: devserver.ClientAuditor})

	values := func(n int, sep, name string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("v%d", i)
		}
		if sep == "," {
			return name + "=" + strings.Join(parts, ",")
		}
		return name + "=" + strings.Join(parts, "&"+name+"=")
	}
	const formCT = "application/x-www-form-urlencoded"
	const invalid = "A\xff\xfeB" // not UTF-8
	badPatient := pat(`"name":[{"family":"` + invalid + `"}]`)
	badPatch := `[{"op":"replace","path":"/description","value":"` + invalid + `"}]`
	patchBinary := func(doc string) string {
		return `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + base64.StdEncoding.EncodeToString([]byte(doc)) + `"}`
	}
	apptFor := func(patient string) string {
		return `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/` + patient + `"},"status":"accepted"}]}`
	}
	slot3Free := `{"resourceType":"Slot","id":"slot-3","schedule":{"reference":"Schedule/sched-2"},"status":"free","start":"2030-01-08T09:00:00Z","end":"2030-01-08T09:30:00Z"}`
	hijack := `{"resourceType":"Patient","id":"pat-b","name":[{"family":"Hijacked"}]}`
	ubrnAccess := `{"resourceType":"Parameters","parameter":[{"name":"ubrn","valueString":"987654321098"},` +
		`{"name":"access-code","valueString":"AAAA-BBBB-CCCC"},{"name":"birthdate","valueString":"1980-01-01"}]}`
	var unknown []string
	for i := range 150 {
		unknown = append(unknown, fmt.Sprintf(`"colour%d":"blue"`, i))
	}
	manyProblems := pat(strings.Join(unknown, ","))
	hugeDate := pat(`"birthDate":"` + strings.Repeat("9", 300<<10) + `"`)
	ct := func(v string) map[string]string { return map[string]string{"Content-Type": v} }

	rows := []struct {
		name   string
		token  string
		method string
		path   string
		body   string
		header map[string]string // "Content-Type": "" sends none (see do)
		entry  *hardEntry        // also run in a transaction and a batch
		whole  bool              // the Bundle itself is refused with the row's status
		status int
		code   string   // the first issue's code
		detail string   // a Signpost error code some issue carries
		expr   []string // every issue location of the single request (sorted); nil: not checked
		audit  []string // references an auditor finds the refusal by
		check  func(t *testing.T, body []byte)
	}{
		// Searches too large for the store: 400 before they reach it.
		{name: "101 comma-separated values", token: admin, path: "Patient?" + values(101, ",", "family"),
			entry:  &hardEntry{method: "GET", url: "Patient?" + values(101, ",", "family")},
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"family"}},
		{name: "1000 comma-separated values (a 500 before)", token: admin, path: "Patient?" + values(1000, ",", "family"),
			entry:  &hardEntry{method: "GET", url: "Patient?" + values(1000, ",", "family")},
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"family"}},
		{name: "101 repetitions of a parameter", token: admin, path: "Patient?" + values(101, "&", "family"),
			entry:  &hardEntry{method: "GET", url: "Patient?" + values(101, "&", "family")},
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"family"}},
		{name: "51 repetitions of two values each", token: admin, path: "Patient?" + strings.Repeat("given=a,b&", 50) + "given=a,b",
			entry:  &hardEntry{method: "GET", url: "Patient?" + strings.Repeat("given=a,b&", 50) + "given=a,b"},
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"given"}},
		{name: "201 parameters in all", token: admin, path: "Patient?" + values(100, "&", "family") + "&" + values(100, "&", "given") + "&gender=male",
			entry:  &hardEntry{method: "GET", url: "Patient?" + values(100, "&", "family") + "&" + values(100, "&", "given") + "&gender=male"},
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_PARAMETERS", expr: []string{}},
		{name: "too many values at system level", token: admin, path: "/fhir?_type=Patient&" + values(101, ",", "_id"),
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"_id"}},
		{name: "too many values in a POST _search body", token: admin, method: "POST", path: "Patient/_search", body: values(101, "&", "family"), header: ct(formCT),
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"family"}},
		{name: "too many parameters between the URL and a POST _search body", token: admin, method: "POST", path: "Patient/_search?" + values(100, "&", "family"),
			body: values(100, "&", "given") + "&gender=male", header: ct(formCT),
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_PARAMETERS", expr: []string{}},
		{name: "too many values in a create's If-None-Exist", token: admin, method: "POST", path: "Patient", body: pat(`"gender":"male"`),
			header: map[string]string{"If-None-Exist": values(101, ",", "family")},
			entry:  &hardEntry{method: "POST", url: "Patient", resource: pat(`"gender":"male"`), ifNoneExist: values(101, ",", "family")},
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"family"}},
		{name: "too many values in a conditional delete", token: admin, method: "DELETE", path: "Patient?" + values(101, ",", "family"),
			entry:  &hardEntry{method: "DELETE", url: "Patient?" + values(101, ",", "family")},
			status: 400, code: "too-costly", detail: "TOO_MANY_SEARCH_VALUES", expr: []string{"family"}},
		{name: "100 values and 200 parameters are served", token: admin, path: "Patient?" + values(100, ",", "family") + "&" + values(99, "&", "given") + "&_total=accurate",
			entry:  &hardEntry{method: "GET", url: "Patient?" + values(100, ",", "family") + "&" + values(99, "&", "given") + "&_total=accurate"},
			status: 200},
		{name: "a URL beyond the header limit", token: admin, path: "Patient?family=" + strings.Repeat("x", 2<<20), status: 431},
		{name: "a search value that is not UTF-8", token: admin, path: "Patient?family=" + url.QueryEscape(invalid),
			entry:  &hardEntry{method: "GET", url: "Patient?family=" + url.QueryEscape(invalid)},
			status: 400, code: "invalid", detail: "INVALID_ENCODING", expr: []string{"family"}},

		// Bodies that are not UTF-8: refused on every path.
		{name: "create with a body that is not UTF-8", token: admin, method: "POST", path: "Patient", body: badPatient,
			entry: &hardEntry{method: "POST", url: "Patient", resource: badPatient}, whole: true,
			status: 400, code: "structure", detail: "INVALID_ENCODING", expr: []string{}},
		{name: "update with a body that is not UTF-8", token: admin, method: "PUT", path: "Patient/pat-a",
			body:  `{"resourceType":"Patient","id":"pat-a","name":[{"family":"` + invalid + `"}]}`,
			entry: &hardEntry{method: "PUT", url: "Patient/pat-a", resource: `{"resourceType":"Patient","id":"pat-a","name":[{"family":"` + invalid + `"}]}`}, whole: true,
			status: 400, code: "structure", detail: "INVALID_ENCODING", expr: []string{}},
		{name: "patch that is not UTF-8", token: admin, method: "PATCH", path: "Appointment/appt-a", body: badPatch, header: ct("application/json-patch+json"),
			entry:  &hardEntry{method: "PATCH", url: "Appointment/appt-a", resource: patchBinary(badPatch)},
			status: 400, code: "structure", detail: "INVALID_ENCODING", expr: []string{}},
		{name: "operation body that is not UTF-8", token: admin, method: "POST", path: "Patient/$validate", body: badPatient,
			status: 400, code: "structure", detail: "INVALID_ENCODING", expr: []string{}},
		{name: "public operation body that is not UTF-8", method: "POST", path: "ServiceRequest/$ubrn-access", body: strings.Replace(ubrnAccess, "AAAA", "A\xff", 1),
			status: 400, code: "structure", detail: "INVALID_ENCODING", expr: []string{}},
		{name: "_search form body that is not UTF-8", token: admin, method: "POST", path: "Patient/_search", body: "family=" + invalid, header: ct(formCT),
			status: 400, code: "structure", detail: "INVALID_ENCODING", expr: []string{}},

		// A body without a Content-Type is refused like a wrong one.
		{name: "create without a Content-Type", token: admin, method: "POST", path: "Patient", body: pat(`"gender":"male"`), header: ct(""),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},
		{name: "update without a Content-Type", token: admin, method: "PUT", path: "Patient/pat-a", body: `{"resourceType":"Patient","id":"pat-a"}`, header: ct(""),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},
		{name: "conditional update without a Content-Type", token: admin, method: "PUT", path: "Patient?identifier=x|y", body: pat(`"gender":"male"`), header: ct(""),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},
		{name: "transaction without a Content-Type", token: admin, method: "POST", path: "", body: bundle("transaction", entry("POST", "Patient", pat(`"gender":"male"`))), header: ct(""),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},
		{name: "operation without a Content-Type", token: admin, method: "POST", path: "Patient/$validate", body: pat(`"gender":"male"`), header: ct(""),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},
		{name: "operation with a wrong Content-Type", token: admin, method: "POST", path: "Patient/$validate", body: pat(`"gender":"male"`), header: ct("text/plain"),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},
		{name: "_search body without a Content-Type", token: admin, method: "POST", path: "Patient/_search", body: "family=Baker", header: ct(""),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},
		{name: "_search body sent as JSON (was silently ignored)", token: admin, method: "POST", path: "Patient/_search", body: "family=Baker", header: ct("application/json"),
			status: 415, code: "not-supported", detail: "UNSUPPORTED_MEDIA_TYPE", expr: []string{}},

		// Only the exact public routes pass without a token.
		{name: "public operation name under an instance", method: "POST", path: "Patient/pat-b/$ubrn-access", body: ubrnAccess, status: 401, code: "login"},
		{name: "public operation name under another type", method: "POST", path: "Whatever/$ubrn-access", body: ubrnAccess, status: 401, code: "login"},
		{name: "public operation name under the referral instance", method: "POST", path: "ServiceRequest/sr-b/$ubrn-access", body: ubrnAccess, status: 401, code: "login"},
		{name: "public operation name at system level", method: "POST", path: "$ubrn-access", body: ubrnAccess, status: 401, code: "login"},
		{name: "public operation name after a read path", path: "Appointment/appt-b/_history/$ubrn-access", status: 401, code: "login"},
		{name: "the public route itself", method: "POST", path: "ServiceRequest/$ubrn-access", body: ubrnAccess,
			status: 404, code: "not-found", detail: "NO_MATCHING_REFERRAL", expr: []string{}},

		// Refused writes are audited with what they targeted.
		{name: "patient A updates patient B", token: patA, method: "PUT", path: "Patient/pat-b", body: hijack,
			entry:  &hardEntry{method: "PUT", url: "Patient/pat-b", resource: hijack},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Patient/pat-b"}},
		{name: "patient A deletes B's appointment", token: patA, method: "DELETE", path: "Appointment/appt-b",
			entry:  &hardEntry{method: "DELETE", url: "Appointment/appt-b"},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Appointment/appt-b", "Patient/pat-b"}},
		{name: "patient A deletes B's appointment with a stale If-Match", token: patA, method: "DELETE", path: "Appointment/appt-b",
			header: map[string]string{"If-Match": `W/"99"`},
			entry:  &hardEntry{method: "DELETE", url: "Appointment/appt-b", ifMatch: `W/"99"`},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Appointment/appt-b", "Patient/pat-b"}},
		{name: "patient A updates patient B with a stale If-Match", token: patA, method: "PUT", path: "Patient/pat-b", body: hijack,
			header: map[string]string{"If-Match": `W/"99"`},
			entry:  &hardEntry{method: "PUT", url: "Patient/pat-b", resource: hijack, ifMatch: `W/"99"`},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Patient/pat-b"}},
		{name: "patient A patches B's appointment", token: patA, method: "PATCH", path: "Appointment/appt-b",
			body: `[{"op":"replace","path":"/status","value":"cancelled"}]`, header: ct("application/json-patch+json"),
			entry:  &hardEntry{method: "PATCH", url: "Appointment/appt-b", resource: patchBinary(`[{"op":"replace","path":"/status","value":"cancelled"}]`)},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Appointment/appt-b", "Patient/pat-b"}},
		{name: "patient A books for B", token: patA, method: "POST", path: "Appointment", body: apptFor("pat-b"),
			entry:  &hardEntry{method: "POST", url: "Appointment", resource: apptFor("pat-b")},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Patient/pat-b"}},
		{name: "provider frees another provider's slot", token: provider, method: "PUT", path: "Slot/slot-3", body: slot3Free,
			entry:  &hardEntry{method: "PUT", url: "Slot/slot-3", resource: slot3Free},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Slot/slot-3"}},
		{name: "provider deletes another provider's slot", token: provider, method: "DELETE", path: "Slot/slot-3",
			entry:  &hardEntry{method: "DELETE", url: "Slot/slot-3"},
			status: 403, code: "forbidden", detail: "ACCESS_DENIED", expr: []string{}, audit: []string{"Slot/slot-3"}},
		{name: "patient A asks for B's referral access code", token: patA, method: "POST", path: "ServiceRequest/sr-b/$access-code",
			body: `{"resourceType":"Parameters"}`, status: 404, code: "not-found", expr: []string{}, audit: []string{"ServiceRequest/sr-b"}},

		// Outcomes stay small.
		{name: "150 problems: 100 listed and one counting the rest", token: admin, method: "POST", path: "Patient", body: manyProblems,
			entry: &hardEntry{method: "POST", url: "Patient", resource: manyProblems}, status: 400, code: "structure", detail: "MORE_ISSUES",
			check: func(t *testing.T, body []byte) {
				var oo hardOutcome
				_ = json.Unmarshal(body, &oo)
				if n := len(oo.Issue); n != fhir.MaxIssues+1 || !strings.Contains(oo.Issue[n-1].Diagnostics, "50 more") {
					t.Errorf("%d issues, the last %+v; want %d, the last counting 50 more", n, oo.Issue[n-1], fhir.MaxIssues+1)
				}
			}},
		{name: "a 300 KB value quoted in a problem", token: admin, method: "POST", path: "Patient", body: hugeDate,
			entry: &hardEntry{method: "POST", url: "Patient", resource: hugeDate}, status: 400, code: "value"},
	}
	if len(rows) < 20 {
		t.Fatalf("only %d rows", len(rows))
	}

	auditCount := func(t *testing.T, ref string) int {
		t.Helper()
		s.app.API.Flush()
		got := s.do(request{path: "AuditEvent?entity=" + ref + "&outcome=4&_summary=count", header: bearer(auditor)})
		if got.status != 200 {
			t.Fatalf("auditor search by entity %s: %d %s", ref, got.status, got.body)
		}
		var b struct{ Total int }
		_ = json.Unmarshal(got.body, &b)
		return b.Total
	}

	for _, r := range rows {
		variants := []string{"single"}
		if r.entry != nil {
			variants = append(variants, "transaction", "batch")
		}
		for _, v := range variants {
			t.Run(r.name+"/"+v, func(t *testing.T) {
				req := request{method: r.method, path: r.path, body: r.body, header: map[string]string{}}
				if req.method == "" {
					req.method = "GET"
				}
				if v != "single" {
					req = request{method: "POST", path: "", body: bundle(v, r.entry.json()), header: map[string]string{}}
				} else {
					for k, x := range r.header {
						req.header[k] = x
					}
				}
				if r.token != "" {
					req.header["Authorization"] = "Bearer " + r.token
				}
				before := storeState(t, s.app)
				audited := map[string]int{}
				for _, ref := range r.audit {
					audited[ref] = auditCount(t, ref)
				}

				got := s.do(req)
				wantStatus, body := r.status, got.body
				if v == "batch" && !r.whole {
					// The batch succeeds; its one entry carries the row's answer.
					if got.status != 200 {
						t.Fatalf("batch status %d, want 200: %.1000s", got.status, got.body)
					}
					var b struct {
						Entry []struct {
							Response struct {
								Status  string          `json:"status"`
								Outcome json.RawMessage `json:"outcome"`
							} `json:"response"`
						} `json:"entry"`
					}
					if err := json.Unmarshal(got.body, &b); err != nil || len(b.Entry) != 1 {
						t.Fatalf("batch-response: %v %.1000s", err, got.body)
					}
					if st := b.Entry[0].Response.Status; !strings.HasPrefix(st, strconv.Itoa(r.status)+" ") {
						t.Errorf("entry status %q, want %d", st, r.status)
					}
					body = b.Entry[0].Response.Outcome
				} else if got.status != wantStatus {
					t.Fatalf("status %d, want %d: %.1000s", got.status, wantStatus, got.body)
				}
				if !json.Valid(got.body) && got.status != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("the answer is not valid JSON: %.300q", got.body)
				}
				if r.status >= 400 && r.status != http.StatusRequestHeaderFieldsTooLarge {
					var oo hardOutcome
					if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
						t.Fatalf("want an OperationOutcome, got %.1000s", body)
					}
					if len(got.body) >= fhir.MaxOutcomeBytes+4096 {
						t.Errorf("the answer is %d bytes", len(got.body))
					}
					if len(body) > fhir.MaxOutcomeBytes {
						t.Errorf("the OperationOutcome is %d bytes, over %d", len(body), fhir.MaxOutcomeBytes)
					}
					if oo.Issue[0].Code != r.code {
						t.Errorf("issue code %q, want %q: %.500s", oo.Issue[0].Code, r.code, body)
					}
					if r.detail != "" && !oo.hasDetails(r.detail) {
						t.Errorf("no issue carries %s: %.500s", r.detail, body)
					}
					switch exprs := oo.expressions(); {
					case r.expr == nil:
					case v == "single" || r.whole:
						if !slices.Equal(exprs, r.expr) && !(len(exprs) == 0 && len(r.expr) == 0) {
							t.Errorf("locations %q, want %q", exprs, r.expr)
						}
					default:
						for _, x := range exprs {
							if !strings.HasPrefix(x, "Bundle.entry[0]") {
								t.Errorf("location %q is not in Bundle.entry[0]", x)
							}
						}
					}
				}
				if r.check != nil {
					r.check(t, body)
				}
				if bytes.Contains(got.body, []byte(secret)) || bytes.Contains(got.body, []byte("9434765870")) {
					t.Errorf("the answer leaks patient B's data: %.500s", got.body)
				}
				if after := storeState(t, s.app); !slices.Equal(before, after) {
					t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
				}
				for _, ref := range r.audit {
					if n := auditCount(t, ref); n <= audited[ref] {
						t.Errorf("an auditor searching AuditEvent?entity=%s&outcome=4 does not find the refusal (%d before, %d after)", ref, audited[ref], n)
					}
				}
			})
		}
	}

	// After all of it, every search answer is still valid JSON.
	for _, path := range []string{"Patient?_count=1000", "Appointment?_count=1000", "/fhir?_type=Patient,Appointment,Slot&_count=1000"} {
		got := s.do(request{path: path, header: bearer(admin)})
		if got.status != 200 || !json.Valid(got.body) {
			t.Errorf("GET %s: %d, valid JSON %v", path, got.status, json.Valid(got.body))
		}
	}
}
