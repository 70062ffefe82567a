package fhir_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/fhir"
)

// TestOperationOutcomeLimits: an OperationOutcome lists at most
// fhir.MaxIssues issues and then one counting the rest, and stays within
// fhir.MaxOutcomeBytes however long the issues' texts are; the issues it
// lists keep their code, severity and location.
func TestOperationOutcomeLimits(t *testing.T) {
	issues := func(n int, diag string, exprs int) []fhir.Issue {
		out := make([]fhir.Issue, n)
		for i := range out {
			out[i] = fhir.Issue{Code: "invalid", Details: "SOME_CODE", Diagnostics: fmt.Sprintf("%d: %s", i, diag)}
			for j := range exprs {
				out[i].Expression = append(out[i].Expression, fmt.Sprintf("Patient.extension[%d].%s", j, strings.Repeat("x", 10)))
			}
		}
		return out
	}
	control := strings.Repeat("\x01<>&\"\\", 2000) // every byte escapes to up to six
	tests := []struct {
		name     string
		in       []fhir.Issue
		listed   int  // issues listed before the count; -1: at least one, fewer than MaxIssues
		omitted  bool // a last issue counts those not listed
		fullText bool // the first issue's diagnostics is whole
	}{
		{"none", nil, 1, false, true},
		{"one", issues(1, "short", 1), 1, false, true},
		{"exactly the limit", issues(fhir.MaxIssues, "short", 1), fhir.MaxIssues, false, true},
		{"one more than the limit", issues(fhir.MaxIssues+1, "short", 1), fhir.MaxIssues, true, true},
		{"ten thousand", issues(10000, "short", 1), fhir.MaxIssues, true, true},
		{"one issue quoting a megabyte", issues(1, strings.Repeat("y", 1<<20), 1), 1, false, false},
		{"one issue of a thousand locations", issues(1, "short", 1000), 1, false, true},
		{"a hundred issues quoting 10 KB each", issues(100, strings.Repeat("é", 5000), 1), 100, false, false},
		{"a thousand issues of control characters", issues(1000, control, 50), -1, true, false},
	}
	count := regexp.MustCompile(`^(\d+) more issues`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fhir.OperationOutcome(tt.in...)
			if len(b) > fhir.MaxOutcomeBytes {
				t.Errorf("%d bytes, over %d", len(b), fhir.MaxOutcomeBytes)
			}
			var oo struct {
				ResourceType string `json:"resourceType"`
				Issue        []struct {
					Severity, Code, Diagnostics string
					Details                     struct {
						Coding []struct{ System, Code string }
					}
					Expression []string
				}
			}
			if err := json.Unmarshal(b, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
				t.Fatalf("not an OperationOutcome (%v): %.300s", err, b)
			}
			listed := len(oo.Issue)
			if tt.omitted {
				last := oo.Issue[len(oo.Issue)-1]
				m := count.FindStringSubmatch(last.Diagnostics)
				if last.Code != "informational" || len(last.Details.Coding) != 1 || last.Details.Coding[0].Code != "MORE_ISSUES" || m == nil {
					t.Fatalf("the last issue %+v does not count the rest", last)
				}
				listed--
				if n, _ := strconv.Atoi(m[1]); listed+n != len(tt.in) {
					t.Errorf("%d listed and %d counted, of %d", listed, n, len(tt.in))
				}
			}
			switch {
			case tt.listed == -1:
				if listed < 1 || listed >= fhir.MaxIssues {
					t.Errorf("%d issues listed", listed)
				}
			case listed != tt.listed:
				t.Errorf("%d issues listed, want %d", listed, tt.listed)
			}
			if len(tt.in) == 0 {
				return
			}
			first := oo.Issue[0]
			if first.Code != "invalid" || first.Severity != "error" || len(first.Details.Coding) != 1 || first.Details.Coding[0].Code != "SOME_CODE" ||
				len(first.Expression) == 0 || first.Expression[0] != tt.in[0].Expression[0] {
				t.Errorf("the first issue lost its code, severity or location: %+v", first)
			}
			if whole := first.Diagnostics == tt.in[0].Diagnostics; whole != tt.fullText {
				t.Errorf("the first diagnostics whole: %v, want %v (%d bytes)", whole, tt.fullText, len(first.Diagnostics))
			}
			if !tt.fullText && !strings.HasSuffix(first.Diagnostics, "…") {
				t.Errorf("a shortened diagnostics does not say so: %.80q…", first.Diagnostics)
			}
		})
	}
}
