package referral_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// reportColumns are each report's columns and their FHIR types, as the
// OperationDefinitions declare them (checked in TestReportDefinitions).
var reportColumns = map[string][][2]string{
	"referral-trends": {{"practice", "Reference"}, {"specialty-code", "code"}, {"specialty", "string"}, {"month", "date"}, {"referrals", "integer"}},
	"capacity-gaps":   {{"service", "Reference"}, {"specialty-code", "code"}, {"specialty", "string"}, {"deferrals", "integer"}},
	"waiting-times": {{"service", "Reference"}, {"name", "string"}, {"specialty-code", "code"}, {"specialty", "string"},
		{"waiting-days", "integer"}, {"average-days", "decimal"}, {"next-slot", "dateTime"}, {"appointments", "integer"}, {"average-days-to-appointment", "decimal"}},
	"booking-outcomes": {{"service", "Reference"}, {"specialty-code", "code"}, {"specialty", "string"}, {"bookings", "integer"},
		{"attended", "integer"}, {"did-not-attend", "integer"}, {"cancelled-by-patient", "integer"}, {"cancelled-by-provider", "integer"},
		{"cancelled-other", "integer"}, {"rescheduled", "integer"}, {"slot-issues", "integer"}, {"slot-issues-cleared-by-offer", "integer"}},
	"patient-experience": {{"service", "Reference"}, {"questionnaire", "canonical"}, {"question", "string"}, {"text", "string"},
		{"responses", "integer"}, {"average", "decimal"}},
}

var reportNames = []string{"referral-trends", "capacity-gaps", "waiting-times", "booking-outcomes", "patient-experience"}

// header is a report's CSV header line.
func header(report string) string {
	var names []string
	for _, c := range reportColumns[report] {
		names = append(names, c[0])
	}
	return strings.Join(names, ",")
}

// checkReport runs report with query as c and compares its CSV with want
// (the lines after the header) and its Parameters with the same rows,
// each cell typed as reportColumns says and empty cells left out.
func checkReport(t *testing.T, f *reportFixture, c *client, report, query string, want []string) {
	t.Helper()
	path := "/$" + report + "?" + query
	status, body, ctype := f.report(c, path+"&_format=text/csv", nil)
	if status != 200 || !strings.HasPrefix(ctype, "text/csv") {
		t.Fatalf("GET %s as CSV: %d %s %s", path, status, ctype, body)
	}
	wantCSV := strings.Join(append([]string{header(report)}, want...), "\n") + "\n"
	if diff := cmp.Diff(wantCSV, string(body)); diff != "" {
		t.Errorf("GET %s as CSV (-want +got):\n%s", path, diff)
	}
	status, body, _ = f.report(c, path, nil)
	if status != 200 {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	got := decodeJSON(t, body)
	var wantRows []any
	for _, line := range want {
		cells := splitCSV(t, line)
		var parts []any
		for i, cell := range cells {
			if cell == "" {
				continue
			}
			name, typ := reportColumns[report][i][0], reportColumns[report][i][1]
			var v any = cell
			switch typ {
			case "integer", "decimal":
				n, err := strconv.ParseFloat(cell, 64)
				if err != nil {
					t.Fatalf("want %q: %v", line, err)
				}
				v = n
			case "Reference":
				v = map[string]any{"reference": cell}
			}
			parts = append(parts, map[string]any{"name": name, "value" + strings.ToUpper(typ[:1]) + typ[1:]: v})
		}
		wantRows = append(wantRows, map[string]any{"name": "row", "part": parts})
	}
	wantParams := map[string]any{"resourceType": "Parameters"}
	if len(wantRows) > 0 {
		wantParams["parameter"] = wantRows
	}
	if diff := cmp.Diff(wantParams, got); diff != "" {
		t.Errorf("GET %s as Parameters (-want +got):\n%s", path, diff)
	}
}

// splitCSV splits one CSV line without quotes.
func splitCSV(t *testing.T, line string) []string {
	t.Helper()
	if strings.Contains(line, `"`) {
		t.Fatalf("splitCSV: %q has quotes", line)
	}
	return strings.Split(line, ",")
}

// callers mints the tokens the report tests use.
func (f *reportFixture) callers() map[string]*client {
	c := f.c
	mint := func(o devserver.TokenOptions) *client { return c.as(c.mint(o)) }
	ubrn, err := c.a.Auth.MintReferralToken(context.Background(), "pat-a", strings.TrimPrefix(f.referrals["R1"], "ServiceRequest/"), time.Minute)
	if err != nil {
		c.t.Fatal(err)
	}
	return map[string]*client{
		"patient":     mint(devserver.TokenOptions{Client: devserver.ClientPatientApp, Patient: "pat-a", Scope: "patient/*.rs"}),
		"ubrn":        c.as(ubrn),
		"referrer":    mint(devserver.TokenOptions{Client: devserver.ClientGPSystem, Scope: "system/*.cruds"}),
		"provider":    mint(devserver.TokenOptions{Client: devserver.ClientProvider, Scope: "system/*.cruds"}),
		"call-centre": mint(devserver.TokenOptions{Client: devserver.ClientCallCentre, Scope: "user/*.cruds"}),
		// a user-level token without a role is no backend service
		"user-no-role": mint(devserver.TokenOptions{Client: "report-user", Scope: "user/*.rs"}),
		// the commissioner's role does not survive a patient in context,
		// an organisation missing, or no resource scope at all
		"commissioner-patient":  mint(devserver.TokenOptions{Client: devserver.ClientCommissioner, Patient: "pat-a", Scope: "user/HealthcareService.rs"}),
		"commissioner-no-org":   mint(devserver.TokenOptions{Client: "report-commissioner", Role: auth.RoleCommissioner, Scope: "user/HealthcareService.rs"}),
		"commissioner-no-scope": mint(devserver.TokenOptions{Client: devserver.ClientCommissioner, Scope: "openid"}),
		"commissioner":          mint(devserver.TokenOptions{Client: devserver.ClientCommissioner, Scope: "user/HealthcareService.rs"}),
		"commissioner-south":    mint(devserver.TokenOptions{Client: devserver.ClientCommissioner, Org: "QWS", Scope: "user/HealthcareService.rs"}),
		"auditor":               mint(devserver.TokenOptions{Client: devserver.ClientAuditor, Scope: "user/AuditEvent.rs"}),
		"system":                mint(devserver.TokenOptions{Client: "reporting-service", Scope: "system/*.rs"}),
	}
}

// TestReportCorrectness: each report's rows, computed by hand from the
// fixture (see newReportFixture), with every filter, as CSV and as typed
// Parameters.
func TestReportCorrectness(t *testing.T) {
	f := newReportFixture(t)
	callers := f.callers()
	loc, _ := time.LoadLocation("Europe/London")
	// What depends on today: the next free slots (today+3 at 10:00 UTC at
	// both north services, freed by the reschedule and by A4's
	// cancellation), the published waits, and A1b's wait since R1.
	slotStart := func(id string) time.Time {
		s := f.setup.must(200, "GET", "/"+id, nil)
		ts, _ := time.Parse(time.RFC3339, s["start"].(string))
		return ts
	}
	next := slotStart(f.slots["hs-derm-n"][0]).UTC().Format(time.RFC3339)
	if n2 := slotStart(f.slots["hs-cardio-n"][0]).UTC().Format(time.RFC3339); n2 != next {
		t.Fatalf("fixture: the services' next slots differ: %s, %s", next, n2)
	}
	days := func(a, b time.Time) int {
		a, b = a.In(loc), b.In(loc)
		return int(time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC).Sub(time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, time.UTC)).Hours() / 24)
	}
	r1, _ := time.ParseInLocation("2006-01-02", "2026-03-02", loc)
	a1b := slotStart(f.slots["hs-derm-n"][2])
	dermNAverage := strconv.FormatFloat(float64(days(r1, a1b)+12)/2, 'f', -1, 64)
	published := func(svc string) (string, string) { // waiting-days and average-days as the directory publishes them
		hs := f.setup.must(200, "GET", "/HealthcareService/"+svc, nil)
		for _, e := range hs["extension"].([]any) {
			if get(e, "url") != "https://signpost.example/fhir/StructureDefinition/waiting-time" {
				continue
			}
			var d, avg string
			for _, sub := range get(e, "extension").([]any) {
				switch get(sub, "url") {
				case "days":
					d = fmt.Sprint(get(sub, "valueInteger"))
				case "average-days":
					avg = strconv.FormatFloat(get(sub, "valueDecimal").(float64), 'f', -1, 64)
				}
			}
			return d, avg
		}
		t.Fatalf("%s publishes no waiting time", svc)
		return "", ""
	}
	cardioDays, cardioAvg := published("hs-cardio-n")
	dermDays, dermAvg := published("hs-derm-n")
	if want := strconv.Itoa(days(time.Now(), slotStart(f.slots["hs-derm-n"][0]))); dermDays != want {
		t.Errorf("hs-derm-n publishes a wait of %s days, want %s (to today+3)", dermDays, want)
	}
	exp := f.experience

	const (
		trendsCardio  = "Organization/gp-a,394579002,Cardiology,2026-04,1"
		trendsDermMar = "Organization/gp-a,394582007,Dermatology,2026-03,2"
		trendsDermApr = "Organization/gp-a,394582007,Dermatology,2026-04,1"
		trendsB       = "Organization/gp-b,394582007,Dermatology,2026-03,1"
		gapsDermN     = "HealthcareService/hs-derm-n,394582007,Dermatology,1"
		gapsDermS     = "HealthcareService/hs-derm-s,394582007,Dermatology,1"
		outCardio     = "HealthcareService/hs-cardio-n,394579002,Cardiology,2,1,0,0,0,1,0,0,0"
		outDermN      = "HealthcareService/hs-derm-n,394582007,Dermatology,6,1,0,1,1,0,1,1,0"
		outDermS      = "HealthcareService/hs-derm-s,394582007,Dermatology,2,1,1,0,0,0,0,1,0"
	)
	waitCardio := func(n, avg string) string {
		return "HealthcareService/hs-cardio-n,City Cardiology,394579002,Cardiology," + cardioDays + "," + cardioAvg + "," + next + "," + n + "," + avg
	}
	waitDermN := func(n, avg string) string {
		return "HealthcareService/hs-derm-n,City Dermatology,394582007,Dermatology," + dermDays + "," + dermAvg + "," + next + "," + n + "," + avg
	}
	const waitDerm = "HealthcareService/hs-derm,Dermatology,394582007,,,,,0," // newSecureClient's service: no slots, no display
	waitDermS := func(n, avg string) string {
		return "HealthcareService/hs-derm-s,South Dermatology,394582007,Dermatology,,,," + n + "," + avg
	}
	expCardio := []string{
		"HealthcareService/hs-cardio-n," + exp + ",comment,Anything else?,1,",
		"HealthcareService/hs-cardio-n," + exp + ",overall,Overall (1-5),1,4",
	}
	expDermN := "HealthcareService/hs-derm-n," + exp + ",overall,Overall (1-5),1,2"
	expDermS := "HealthcareService/hs-derm-s," + exp + ",overall,Overall (1-5),1,5"

	for _, tc := range []struct {
		name, caller, report, query string
		want                        []string
	}{
		// $referral-trends: R2's display-less coding joins R1 in one row;
		// R3's PractitionerRole counts for its practice; the code is a code.
		{"trends, all", "system", "referral-trends", "", []string{trendsCardio, trendsDermMar, trendsDermApr, trendsB}},
		{"trends, north commissioner: its services only (R5 has none)", "commissioner", "referral-trends", "", []string{trendsCardio, trendsDermMar}},
		{"trends, south commissioner", "commissioner-south", "referral-trends", "", []string{trendsB}},
		{"trends, practice by ODS code", "auditor", "referral-trends", "practice=" + devserver.DemoGPPractice, []string{trendsCardio, trendsDermMar, trendsDermApr}},
		{"trends, practice by reference", "system", "referral-trends", "practice=Organization/gp-b", []string{trendsB}},
		{"trends, practice by system|code", "system", "referral-trends", "practice=https://fhir.nhs.uk/Id/ods-organization-code|" + gpBODS, []string{trendsB}},
		{"trends, unknown practice", "system", "referral-trends", "practice=Z00000", nil},
		{"trends, service", "system", "referral-trends", "service=HealthcareService/hs-derm-n", []string{trendsDermMar}},
		{"trends, two services", "system", "referral-trends", "service=hs-derm-n&service=hs-derm-s", []string{trendsDermMar, trendsB}},
		{"trends, specialty code", "system", "referral-trends", "specialty=" + cardio, []string{trendsCardio}},
		{"trends, specialty system|code", "system", "referral-trends", "specialty=" + sct + "|" + derm, []string{trendsDermMar, trendsDermApr, trendsB}},
		{"trends, specialty of another system", "system", "referral-trends", "specialty=http://example.org|" + derm, nil},
		{"trends, period keeps the display of a display-less referral", "system", "referral-trends", "from=2026-03-16&to=2026-03-31",
			[]string{"Organization/gp-a,394582007,Dermatology,2026-03,1"}},
		{"trends, to is included", "system", "referral-trends", "from=2026-03-01&to=2026-03-15",
			[]string{"Organization/gp-a,394582007,Dermatology,2026-03,1", trendsB}},
		{"trends, commissioner and a service it does not commission", "commissioner", "referral-trends", "service=hs-derm-s", nil},
		{"trends, all filters", "system", "referral-trends", "practice=" + devserver.DemoGPPractice + "&service=hs-derm-n&specialty=" + derm + "&from=2026-03-01&to=2026-03-31",
			[]string{trendsDermMar}},

		// $capacity-gaps
		{"gaps, all", "system", "capacity-gaps", "", []string{gapsDermN, gapsDermS}},
		{"gaps, north commissioner", "commissioner", "capacity-gaps", "", []string{gapsDermN}},
		{"gaps, practice", "system", "capacity-gaps", "practice=" + gpBODS, []string{gapsDermS}},
		{"gaps, service", "auditor", "capacity-gaps", "service=hs-derm-n", []string{gapsDermN}},
		{"gaps, specialty", "system", "capacity-gaps", "specialty=" + cardio, nil},
		{"gaps, period before the deferrals", "system", "capacity-gaps", "from=2026-01-01&to=2026-01-31", nil},
		{"gaps, period from today", "system", "capacity-gaps", "from=" + time.Now().In(loc).Format("2006-01-02"), []string{gapsDermN, gapsDermS}},

		// $waiting-times: rows are services (service, specialty, reach);
		// practice and period filter the appointments counted.
		{"waits, all", "system", "waiting-times", "", []string{waitCardio("1", "15"), waitDermN("2", dermNAverage), waitDerm, waitDermS("2", "24")}},
		{"waits, north commissioner", "commissioner", "waiting-times", "", []string{waitCardio("1", "15"), waitDermN("2", dermNAverage)}},
		{"waits, period", "system", "waiting-times", "from=2026-03-01&to=2026-04-30",
			[]string{waitCardio("1", "15"), waitDermN("1", "12"), waitDerm, waitDermS("2", "24")}},
		{"waits, practice", "system", "waiting-times", "practice=Organization/gp-b",
			[]string{waitCardio("0", ""), waitDermN("0", ""), waitDerm, waitDermS("2", "24")}},
		{"waits, specialty and service", "auditor", "waiting-times", "specialty=" + derm + "&service=hs-derm-s", []string{waitDermS("2", "24")}},
		{"waits, period leaves out P4 (22 April)", "system", "waiting-times", "service=hs-derm-s&to=2026-04-21", []string{waitDermS("1", "10")}},

		// $booking-outcomes: hs-derm-n's 6 bookings are A1 (rescheduled),
		// A1b, A2 (patient), A3 (provider), W and P3 (attended); the hold H
		// was never booked; hs-cardio-n's A4 was cancelled in text only;
		// hs-derm-s had P2 (no-show) and P4 (attended).
		{"outcomes, all", "system", "booking-outcomes", "", []string{outCardio, outDermN, outDermS}},
		{"outcomes, north commissioner", "commissioner", "booking-outcomes", "", []string{outCardio, outDermN}},
		{"outcomes, south commissioner", "commissioner-south", "booking-outcomes", "", []string{outDermS}},
		{"outcomes, practice leaves out W (no referral)", "system", "booking-outcomes", "practice=" + devserver.DemoGPPractice,
			[]string{outCardio, "HealthcareService/hs-derm-n,394582007,Dermatology,5,1,0,1,1,0,1,1,0"}},
		{"outcomes, practice B", "auditor", "booking-outcomes", "practice=" + gpBODS, []string{outDermS}},
		{"outcomes, service", "system", "booking-outcomes", "service=HealthcareService/hs-cardio-n", []string{outCardio}},
		{"outcomes, specialty", "system", "booking-outcomes", "specialty=" + derm, []string{outDermN, outDermS}},
		{"outcomes, period of the recorded appointments", "system", "booking-outcomes", "from=2026-03-01&to=2026-04-30", []string{
			"HealthcareService/hs-cardio-n,394579002,Cardiology,1,1,0,0,0,0,0,0,0",
			"HealthcareService/hs-derm-n,394582007,Dermatology,1,1,0,0,0,0,0,0,0",
			"HealthcareService/hs-derm-s,394582007,Dermatology,2,1,1,0,0,0,0,0,0"}},
		{"outcomes, one day (P3 on 1 April, London time)", "system", "booking-outcomes", "from=2026-04-01&to=2026-04-01",
			[]string{"HealthcareService/hs-derm-n,394582007,Dermatology,1,1,0,0,0,0,0,0,0"}},
		{"outcomes, to is included (P1 on 20 April)", "system", "booking-outcomes", "from=2026-04-02&to=2026-04-20",
			[]string{"HealthcareService/hs-cardio-n,394579002,Cardiology,1,1,0,0,0,0,0,0,0"}},

		// $patient-experience
		{"experience, all", "system", "patient-experience", "", append(slices.Clone(expCardio), expDermN, expDermS)},
		{"experience, south commissioner", "commissioner-south", "patient-experience", "", []string{expDermS}},
		{"experience, north commissioner", "commissioner", "patient-experience", "", append(slices.Clone(expCardio), expDermN)},
		{"experience, practice B", "system", "patient-experience", "practice=" + gpBODS, []string{expDermS}},
		{"experience, service", "system", "patient-experience", "service=hs-derm-n", []string{expDermN}},
		{"experience, period", "auditor", "patient-experience", "from=2026-05-10", []string{expDermN}},
		{"experience, specialty", "system", "patient-experience", "specialty=" + cardio, expCardio},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkReport(t, f, callers[tc.caller], tc.report, tc.query, tc.want)
		})
	}
}

// TestReportBadInput: a filter that cannot be read is 400, naming it.
func TestReportBadInput(t *testing.T) {
	f := newReportFixture(t)
	sys := f.callers()["system"]
	for _, tc := range []struct {
		query, where string
	}{
		{"pratice=" + devserver.DemoGPPractice, "pratice"},
		{"from=2026-13-01", "from"},
		{"from=2026-04-01&to=2026-03-01", "to"},
		{"service=Patient/pat-a", "service"},
		{"practice=Patient/pat-a", "practice"},
		{"specialty=" + sct + "|", "specialty"},
	} {
		for _, report := range reportNames {
			t.Run(report+"?"+tc.query, func(t *testing.T) {
				status, body, _ := f.report(sys, "/$"+report+"?"+tc.query, nil)
				oo := decodeJSON(t, body)
				if status != 400 || get(oo, "resourceType") != "OperationOutcome" || get(oo, "issue", 0, "expression", 0) != tc.where {
					t.Errorf("%d %s, want 400 at %s", status, body, tc.where)
				}
				if strings.Contains(string(body), "HealthcareService/") {
					t.Errorf("the error shows report data: %s", body)
				}
			})
		}
	}
}

// TestReportDefinitions: each report's OperationDefinition declares the
// filters and the row parts with the types the report answers.
func TestReportDefinitions(t *testing.T) {
	c := newSecureClient(t)
	sys := c.as(c.mint(devserver.TokenOptions{Client: "reporting-service", Scope: "system/*.rs"}))
	for _, report := range reportNames {
		def := sys.must(200, "GET", "/OperationDefinition/"+report, nil)
		var in []string
		var row [][2]string
		for _, p := range def["parameter"].([]any) {
			switch get(p, "use") {
			case "in":
				in = append(in, get(p, "name").(string))
			case "out":
				for _, part := range get(p, "part").([]any) {
					row = append(row, [2]string{get(part, "name").(string), get(part, "type").(string)})
				}
			}
		}
		if want := []string{"practice", "service", "specialty", "from", "to", "format"}; !slices.Equal(in, want) {
			t.Errorf("%s declares inputs %v, want %v", report, in, want)
		}
		if diff := cmp.Diff(reportColumns[report], row); diff != "" {
			t.Errorf("%s declares row parts (-want +got):\n%s", report, diff)
		}
		if def["system"] != true || def["affectsState"] != false {
			t.Errorf("%s: system %v, affectsState %v", report, def["system"], def["affectsState"])
		}
	}
}

// TestReportAccess: who may run each report. Patients (and their UBRN
// tokens), referrers, providers, call centres, role-less user tokens and
// commissioner tokens that are not a commissioner's (a patient in context,
// no organisation, no resource scope) get 403 with an OperationOutcome,
// as a single request (Parameters or CSV) and as a batch or transaction
// entry, and nothing is shown or changed. Commissioners, auditors and
// backend services get the report; a commissioner exactly the rows of the
// services it commissions.
func TestReportAccess(t *testing.T) {
	f := newReportFixture(t)
	callers := f.callers()
	denied := []string{"patient", "ubrn", "referrer", "provider", "call-centre", "user-no-role",
		"commissioner-patient", "commissioner-no-org", "commissioner-no-scope"}
	// What each allowed caller sees: the backend service's report, narrowed
	// to the services the caller's commissioner commissions.
	allowed := []struct{ caller, sameAs string }{
		{"system", ""},
		{"auditor", ""},
		{"commissioner", "service=hs-derm-n&service=hs-cardio-n"},
		{"commissioner-south", "service=hs-derm-s"},
	}
	leaks := []string{"HealthcareService/hs-", "Organization/gp-", `"row"`, "specialty"}
	before := f.state()
	for _, report := range reportNames {
		for _, who := range denied {
			t.Run(report+"/"+who, func(t *testing.T) {
				c := callers[who]
				for _, h := range []http.Header{nil, {"Accept": {"text/csv"}}} {
					path := "/$" + report
					if h != nil {
						path += "?_format=text/csv"
					}
					status, body, ctype := f.report(c, path, h)
					oo := decodeJSON(t, body)
					if status != 403 || !strings.HasPrefix(ctype, "application/fhir+json") || get(oo, "resourceType") != "OperationOutcome" ||
						get(oo, "issue", 0, "code") != "forbidden" || errorCode(oo) != "ACCESS_DENIED" {
						t.Errorf("GET %s: %d %s %s, want 403 forbidden ACCESS_DENIED", path, status, ctype, body)
					}
					for _, l := range leaks {
						if strings.Contains(string(body), l) {
							t.Errorf("GET %s: the refusal shows %q: %s", path, l, body)
						}
					}
				}
				for _, typ := range []string{"batch", "transaction"} {
					bundle := map[string]any{"resourceType": "Bundle", "type": typ, "entry": []any{
						map[string]any{"request": map[string]any{"method": "GET", "url": "$" + report}}}}
					status, body := c.raw("POST", "", bundle)
					if status == 200 && typ == "transaction" {
						t.Errorf("%s carrying $%s: 200, want a refusal: %s", typ, report, body)
					}
					if status == 200 {
						if s, _ := get(decodeJSON(t, body), "entry", 0, "response", "status").(string); strings.HasPrefix(s, "2") {
							t.Errorf("%s entry $%s: %s, want a refusal: %s", typ, report, s, body)
						}
					}
					for _, l := range leaks {
						if strings.Contains(string(body), l) {
							t.Errorf("%s carrying $%s shows %q: %s", typ, report, l, body)
						}
					}
				}
				if after := f.state(); after != before {
					t.Errorf("a refused $%s changed the data:\n%s\nwant\n%s", report, after, before)
				}
			})
		}
		all := ""
		for _, a := range allowed {
			t.Run(report+"/"+a.caller, func(t *testing.T) {
				status, body, _ := f.report(callers[a.caller], "/$"+report+"?_format=text/csv", nil)
				if status != 200 {
					t.Fatalf("%d %s, want 200", status, body)
				}
				want := all
				if a.caller == "system" {
					all = string(body)
					want = all
				}
				if a.sameAs != "" {
					_, b, _ := f.report(callers["system"], "/$"+report+"?_format=text/csv&"+a.sameAs, nil)
					want = string(b)
					if want == all {
						t.Fatalf("fixture: $%s?%s shows what the whole report shows", report, a.sameAs)
					}
				}
				if diff := cmp.Diff(want, string(body)); diff != "" || strings.Count(string(body), "\n") < 2 && a.caller != "commissioner-south" {
					t.Errorf("$%s as %s (-want +got):\n%s", report, a.caller, diff)
				}
			})
		}
	}
	if after := f.state(); after != before {
		t.Errorf("the reports changed the data")
	}
}
