package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tokenLine matches a printed sign-in's token command.
var tokenLine = regexp.MustCompile(`(?m)^\s+([A-Z_]+)=\$\(signpost (token [^)]*)\)$`)

// printedTokens runs the token commands serve --demo printed, with bin,
// and returns the tokens by variable name.
func printedTokens(t *testing.T, bin, out string) map[string]string {
	t.Helper()
	toks := map[string]string{}
	for _, m := range tokenLine.FindAllStringSubmatch(out, -1) {
		var args []string
		for _, a := range strings.Fields(m[2]) {
			args = append(args, strings.Trim(a, "'"))
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = withoutSignpostEnv(os.Environ())
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s=$(signpost %s): %v", m[1], m[2], err)
		}
		toks[m[1]] = strings.TrimSpace(string(b))
	}
	return toks
}

// walker sends the walkthrough's requests.
type walker struct {
	t    *testing.T
	base string
}

// call sends body (nil, or JSON-encoded) with token and wants one of the
// statuses, returning the decoded answer.
func (w *walker) call(token, method, path string, body any, want ...int) map[string]any {
	w.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.base+"/fhir"+path, r)
	req.Header.Set("Content-Type", "application/fhir+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if strings.HasSuffix(path, "$book") {
		req.Header.Set("Idempotency-Key", fmt.Sprint(time.Now().UnixNano()))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !slices.Contains(want, resp.StatusCode) {
		w.t.Fatalf("%s %s: %d, want %v: %s", method, path, resp.StatusCode, want, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		w.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return out
}

// resources lists a Bundle's resources.
func resources(b map[string]any) []map[string]any {
	var out []map[string]any
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

// param returns a Parameters' named value or part list.
func param(p map[string]any, name string) any {
	for _, x := range p["parameter"].([]any) {
		m := x.(map[string]any)
		if m["name"] == name {
			for k, v := range m {
				if strings.HasPrefix(k, "value") {
					return v
				}
			}
			return m["part"]
		}
	}
	return nil
}

func jpath(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func parameters(kv ...any) map[string]any {
	var ps []any
	for i := 0; i+1 < len(kv); i += 2 {
		p := map[string]any{"name": kv[i]}
		switch v := kv[i+1].(type) {
		case string:
			p["valueString"] = v
		case bool:
			p["valueBoolean"] = v
		case int:
			p["valueInteger"] = v
		case map[string]any:
			if _, ok := v["resourceType"]; ok {
				p["resource"] = v
			} else if _, ok := v["system"]; ok {
				p["valueIdentifier"] = v
			} else {
				p["valueReference"] = v
			}
		}
		ps = append(ps, p)
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

func reference(r string) map[string]any { return map[string]any{"reference": r} }

// TestWalkthrough runs docs/walkthrough.md through the real binary: serve
// --demo twice over one data directory (the second start loads nothing),
// the printed token commands, and every step of the journey with the same
// requests as the walkthrough's curl commands.
func TestWalkthrough(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	first := startSignpost(t, bin, data, "--demo")
	if out := first.log.String(); !strings.Contains(out, "demo county loaded") {
		t.Fatalf("first start did not load the county:\n%s", tail(out, 2000))
	}
	first.signal(t, syscall.SIGTERM)
	if code := first.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("first serve exited %d", code)
	}
	p := startSignpost(t, bin, data, "--demo")
	out := p.log.String()
	if !strings.Contains(out, "demo county already loaded") || !strings.Contains(out, " 0 free slots added") {
		t.Fatalf("second start is not idempotent:\n%s", tail(out, 2000))
	}
	toks := printedTokens(t, bin, out)
	for _, v := range []string{"GP_TOKEN", "PROVIDER_TOKEN", "CALL_CENTRE_TOKEN", "COMMISSIONER_TOKEN", "PATIENT_TOKEN"} {
		if toks[v] == "" {
			t.Fatalf("serve --demo printed no working %s command:\n%s", v, out)
		}
	}
	gp, provider := toks["GP_TOKEN"], toks["PROVIDER_TOKEN"]
	w := &walker{t: t, base: p.base}

	// 1. Find a service.
	found := w.call(gp, "GET", "/HealthcareService?specialty=http://snomed.info/sct|394582007&near=51.0|-1.75|15|km&_sort=waiting-time", nil, 200)
	var ids []string
	for _, r := range resources(found) {
		ids = append(ids, r["id"].(string))
	}
	slices.Sort(ids)
	if want := []string{"demo-hs-gpwsi-dermatology", "demo-hs-kingsbridge-394582007"}; !slices.Equal(ids, want) {
		t.Errorf("dermatology within 15 km = %v, want %v", ids, want)
	}

	// 2. Refer: a UBRN and a Task awaiting booking.
	sr := w.call(gp, "POST", "/ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"category":      []any{map[string]any{"coding": []any{map[string]any{"system": "https://signpost.example/fhir/CodeSystem/referral-source", "code": "gp"}}}},
		"performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": "394582007", "display": "Dermatology"}}},
		"subject":       reference("Patient/demo-patient-001"), "requester": reference("Organization/demo-gp-01"),
		"reasonCode": []any{map[string]any{"text": "Changing pigmented lesion, left forearm"}}}, 201)
	srRef := "ServiceRequest/" + sr["id"].(string)
	ubrn, _ := jpath(sr, "identifier", 0, "value").(string)
	if !regexp.MustCompile(`^[1-9][0-9]{11}$`).MatchString(ubrn) {
		t.Fatalf("UBRN = %q", ubrn)
	}
	taskState := func() (state, owner, worklist any) {
		tasks := resources(w.call(gp, "GET", "/Task?focus="+srRef, nil, 200))
		if len(tasks) != 1 {
			t.Fatalf("%d Tasks for %s", len(tasks), srRef)
		}
		for _, e := range tasks[0]["extension"].([]any) {
			if strings.HasSuffix(jpath(e, "url").(string), "/worklist") {
				worklist = jpath(e, "valueCoding", "code")
			}
		}
		return jpath(tasks[0], "businessStatus", "coding", 0, "code"), jpath(tasks[0], "owner", "reference"), worklist
	}
	if st, _, wl := taskState(); st != "awaiting-booking" || wl != "awaiting-booking" {
		t.Errorf("new referral: %v on %v, want awaiting-booking on awaiting-booking", st, wl)
	}

	// 3. Shortlist, saved.
	sl := w.call(gp, "POST", "/"+srRef+"/$shortlist", parameters("save", true), 200)
	var listed []string
	for _, x := range sl["parameter"].([]any) {
		if jpath(x, "name") == "service" {
			listed = append(listed, jpath(x, "part", 0, "valueReference", "reference").(string))
		}
	}
	if len(listed) < 3 || !slices.Contains(listed, "HealthcareService/demo-hs-kingsbridge-394582007") || param(sl, "saved") != true {
		t.Errorf("shortlist = %v (saved %v), want at least 3 services with Kingsbridge, saved", listed, param(sl, "saved"))
	}

	// 4. Access code; 5. the patient signs in without a token.
	code := param(w.call(gp, "POST", "/"+srRef+"/$access-code", parameters(), 200), "access-code").(string)
	access := w.call("", "POST", "/ServiceRequest/$ubrn-access", parameters("ubrn", ubrn, "access-code", code, "birthdate", "1947-02-02"), 200)
	ubrnToken, _ := param(access, "access_token").(string)
	if ubrnToken == "" || jpath(param(access, "referral"), "reference") != srRef {
		t.Fatalf("$ubrn-access answered %v", access)
	}

	// 6. Find appointments as the patient; 7. book the first.
	props := resources(w.call(ubrnToken, "POST", "/Appointment/$find", parameters(
		"healthcare-service", reference("HealthcareService/demo-hs-kingsbridge-394582007"),
		"patient-reference", reference("Patient/demo-patient-001"),
		"referral-identifier", map[string]any{"system": "https://fhir.nhs.uk/Id/UBRN", "value": ubrn},
		"_count", 3), 200))
	if len(props) == 0 {
		t.Fatal("$find proposed nothing at Kingsbridge dermatology")
	}
	prop := props[0]
	delete(prop, "id")
	booked := resources(w.call(ubrnToken, "POST", "/Appointment/$book", parameters("appointment-resource", prop), 200, 201))
	if len(booked) != 1 || booked[0]["status"] != "booked" || jpath(booked[0], "identifier", 0, "value") != ubrn || jpath(booked[0], "basedOn", 0, "reference") != srRef {
		t.Fatalf("$book answered %v, want the booked appointment with the UBRN, basedOn the referral", booked)
	}
	if st, owner, wl := taskState(); st != "booked" || owner != "HealthcareService/demo-hs-kingsbridge-394582007" || wl != "for-review" {
		t.Errorf("after booking: %v, owner %v, on %v; want booked, Kingsbridge dermatology, for-review", st, owner, wl)
	}

	// 8. The provider's worklist, and $accept.
	review := resources(w.call(provider, "GET", "/Task?worklist=for-review&owner=HealthcareService/demo-hs-kingsbridge-394582007", nil, 200))
	if len(review) != 1 || jpath(review[0], "focus", "reference") != srRef {
		t.Errorf("provider's for-review worklist = %v, want the referral's Task", review)
	}
	acc := w.call(provider, "POST", "/"+srRef+"/$accept", parameters(), 200)
	if got := jpath(acc, "businessStatus", "coding", 0, "code"); got != "accepted" {
		t.Errorf("$accept: state %v, want accepted", got)
	}
	var moves []string
	for _, pv := range resources(w.call(gp, "GET", "/Provenance?target="+srRef+"&_sort=recorded", nil, 200)) {
		who, _ := jpath(pv, "agent", 0, "who", "display").(string)
		org, _ := jpath(pv, "agent", 0, "onBehalfOf", "identifier", "value").(string)
		moves = append(moves, strings.TrimSpace(fmt.Sprintf("%v %s %s", jpath(pv, "activity", "coding", 0, "code"), who, org)))
	}
	if want := []string{"awaiting-booking gp-system A99001", "booked Patient/demo-patient-001", "accepted provider R9901"}; !slices.Equal(moves, want) {
		t.Errorf("Provenance = %q, want %q", moves, want)
	}

	walkSlotIssue(w, toks)
	walkIndirectlyBookable(w, toks)

	// 11. Reports are for the commissioner, not the GP: the walkthrough's
	// two services, as docs/walkthrough.md shows them (the demo's own
	// referrals are elsewhere).
	w.call(toks["COMMISSIONER_TOKEN"], "GET", "/$booking-outcomes", nil, 200)
	w.call(gp, "GET", "/$booking-outcomes", nil, 403)
	req, _ := http.NewRequest("GET", p.base+"/fhir/$booking-outcomes?_format=text/csv&service=demo-hs-kingsbridge-394582007&service=demo-hs-kingsbridge-394591006", nil)
	req.Header.Set("Authorization", "Bearer "+toks["COMMISSIONER_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "service,specialty-code,specialty,bookings,attended,did-not-attend,cancelled-by-patient,cancelled-by-provider,cancelled-other,rescheduled,slot-issues,slot-issues-cleared-by-offer\n" +
		"HealthcareService/demo-hs-kingsbridge-394582007,394582007,Dermatology,2,0,0,0,0,0,0,1,0\n" +
		"HealthcareService/demo-hs-kingsbridge-394591006,394591006,Neurology,1,0,0,0,0,0,0,0,0\n"
	if got := strings.ReplaceAll(string(csv), "\r\n", "\n"); resp.StatusCode != 200 || got != want {
		t.Errorf("$booking-outcomes of the walkthrough's services: %d\n%s\nwant (docs/walkthrough.md step 11)\n%s", resp.StatusCode, csv, want)
	}
}

// walkReferral creates the walkthrough's referral of demo-patient-001 to
// specialty (a SNOMED CT code) at service, and returns it and its UBRN.
func walkReferral(w *walker, gp, specialty, service, why string) (ref, ubrn string) {
	sr := w.call(gp, "POST", "/ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"category":      []any{map[string]any{"coding": []any{map[string]any{"system": "https://signpost.example/fhir/CodeSystem/referral-source", "code": "gp"}}}},
		"performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": specialty}}},
		"performer":     []any{reference(service)},
		"subject":       reference("Patient/demo-patient-001"), "requester": reference("Organization/demo-gp-01"),
		"reasonCode": []any{map[string]any{"text": why}}}, 201)
	ubrn, _ = jpath(sr, "identifier", 0, "value").(string)
	return "ServiceRequest/" + sr["id"].(string), ubrn
}

// walkSlotIssue is the walkthrough's step 9: nothing on a Saturday, the
// call centre raises a slot issue (twice: nothing changes), the provider
// books from its slot-issues worklist.
func walkSlotIssue(w *walker, toks map[string]string) {
	t := w.t
	gp, provider, callCentre := toks["GP_TOKEN"], toks["PROVIDER_TOKEN"], toks["CALL_CENTRE_TOKEN"]
	const derm = "HealthcareService/demo-hs-kingsbridge-394582007"
	srRef, ubrn := walkReferral(w, gp, "394582007", derm, "Recurrent eczema, both hands")
	found := w.call(callCentre, "POST", "/Appointment/$find", parameters(
		"referral-identifier", map[string]any{"system": "https://fhir.nhs.uk/Id/UBRN", "value": ubrn},
		"healthcare-service", reference(derm)), 200)
	saturdays := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "referral-identifier", "valueIdentifier": map[string]any{"system": "https://fhir.nhs.uk/Id/UBRN", "value": ubrn}},
		map[string]any{"name": "healthcare-service", "valueReference": reference(derm)},
		map[string]any{"name": "timing", "valueTiming": map[string]any{"repeat": map[string]any{"dayOfWeek": []any{"sat"}}}}}}
	if got := resources(w.call(callCentre, "POST", "/Appointment/$find", saturdays, 200)); len(got) != 0 || len(resources(found)) == 0 {
		t.Errorf("$find on Saturdays proposed %d (any day: %d), want none (some)", len(got), len(resources(found)))
	}
	var versions []any
	for range 2 {
		tk := w.call(callCentre, "POST", "/"+srRef+"/$defer", parameters("reason", "no slots"), 200)
		if jpath(tk, "businessStatus", "coding", 0, "code") != "slot-issue" || jpath(tk, "owner", "reference") != derm {
			t.Fatalf("slot issue raised: %v", tk)
		}
		versions = append(versions, jpath(tk, "meta", "versionId"))
	}
	if versions[0] != versions[1] {
		t.Errorf("raising the slot issue again changed the Task: versions %v", versions)
	}
	issues := resources(w.call(provider, "GET", "/Task?worklist=slot-issues&owner="+derm, nil, 200))
	if len(issues) != 1 || jpath(issues[0], "focus", "reference") != srRef {
		t.Fatalf("slot-issues worklist = %v", issues)
	}
	slot := resources(w.call(provider, "GET", "/Slot?schedule.actor="+derm+"&status=free&_sort=start&_count=1", nil, 200))[0]
	appt := w.call(provider, "POST", "/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
		"basedOn": []any{reference(srRef)}, "slot": []any{reference("Slot/" + slot["id"].(string))},
		"participant": []any{map[string]any{"actor": reference(derm), "status": "accepted"}},
		"comment":     "Booked by phone with the patient"}, 201)
	if !strings.Contains(fmt.Sprint(appt["participant"]), "Patient/demo-patient-001") || jpath(appt, "identifier", 0, "value") != ubrn {
		t.Errorf("the provider's booking = %v, want the referral's patient and UBRN", appt)
	}
	tk := resources(w.call(gp, "GET", "/Task?focus="+srRef, nil, 200))
	if len(tk) != 1 || jpath(tk[0], "businessStatus", "coding", 0, "code") != "booked" {
		t.Errorf("after the provider's booking: %v", tk)
	}
}

// walkIndirectlyBookable is the walkthrough's step 10: a referral to a
// service that triages goes to its for-review worklist, $find says the
// provider books, the provider accepts and records the appointment.
func walkIndirectlyBookable(w *walker, toks map[string]string) {
	t := w.t
	gp, provider := toks["GP_TOKEN"], toks["PROVIDER_TOKEN"]
	const neuro = "HealthcareService/demo-hs-kingsbridge-394591006"
	srRef, ubrn := walkReferral(w, gp, "394591006", neuro, "New daily headache, six weeks")
	review := resources(w.call(provider, "GET", "/Task?worklist=for-review&owner="+neuro, nil, 200))
	if len(review) != 1 || jpath(review[0], "focus", "reference") != srRef || jpath(review[0], "businessStatus", "coding", 0, "code") != "awaiting-triage" {
		t.Fatalf("neurology's for-review worklist = %v, want the referral awaiting triage", review)
	}
	found := w.call(gp, "POST", "/Appointment/$find", parameters(
		"referral-identifier", map[string]any{"system": "https://fhir.nhs.uk/Id/UBRN", "value": ubrn}), 200)
	if got := jpath(found, "entry", 0, "resource", "issue", 0, "details", "coding", 0, "code"); got != "PROVIDER_BOOKS" || len(found["entry"].([]any)) != 1 {
		t.Errorf("$find for a referral in triage = %v, want only the PROVIDER_BOOKS outcome", found)
	}
	w.call(provider, "POST", "/"+srRef+"/$accept", parameters(), 200)
	start := time.Now().UTC().AddDate(0, 0, 9).Truncate(24 * time.Hour).Add(14 * time.Hour)
	appt := w.call(provider, "POST", "/Appointment", map[string]any{"resourceType": "Appointment", "status": "booked",
		"basedOn": []any{reference(srRef)}, "start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": reference(neuro), "status": "accepted"}}}, 201)
	if jpath(appt, "identifier", 0, "value") != ubrn {
		t.Errorf("the recorded appointment = %v, want the referral's UBRN", appt)
	}
}
