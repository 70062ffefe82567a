package referral_test

import (
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	"github.com/signpost-fhir/signpost/domain/referral"
)

// TestNoSlotJourney: no slot → deferred to the provider → on the slot-issues
// worklist → the provider books → off the worklist.
func TestNoSlotJourney(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	sr := c.create(dermReferral(nil))
	if status, _ := c.do("POST", "/"+sr+"/$defer", params("service", ref("HealthcareService/hs-derm-city"))); status != 400 {
		t.Errorf("$defer without a reason: %d, want 400", status)
	}
	c.must(200, "POST", "/"+sr+"/$defer", params("service", ref("HealthcareService/hs-derm-city"), "reason", "no slots in the next six weeks"))
	list := "/Task?worklist=slot-issues&owner=HealthcareService/hs-derm-city"
	if got := c.search(list); len(got) != 1 || get(got[0], "statusReason", "text") != "no slots in the next six weeks" {
		t.Fatalf("slot-issues worklist = %v, want the deferred referral with its reason", got)
	}
	slots := addSlots(c, "hs-derm-city", 3)
	book(c, sr, "hs-derm-city", slots[0])
	if got := c.search(list); len(got) != 0 {
		t.Errorf("after booking, the slot-issues worklist still has %d Tasks", len(got))
	}
	if got := state(task(c, sr)); got != "booked" {
		t.Errorf("state after the provider booked = %q, want booked", got)
	}
	gaps := c.must(200, "GET", "/$capacity-gaps?format=text/csv", nil)
	_ = gaps
	status, csv := c.raw("GET", "/$capacity-gaps?format=text/csv", nil)
	if status != 200 || !strings.Contains(string(csv), "HealthcareService/hs-derm-city,394582007,Dermatology,1") {
		t.Errorf("$capacity-gaps CSV = %d %s, want City Dermatology with 1 deferral", status, csv)
	}
}

func TestRedirectAndReject(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	slots := addSlots(c, "hs-derm-city", 3, 4)

	// Redirect to the community GPwSI service.
	sr := c.create(dermReferral(nil))
	book(c, sr, "hs-derm-city", slots[0])
	c.must(200, "POST", "/"+sr+"/$redirect", params("service", ref("HealthcareService/hs-derm-gpwsi"), "reason", "suitable for GPwSI"))
	tk := task(c, sr)
	if state(tk) != "redirected" || get(tk, "owner", "reference") != "HealthcareService/hs-derm-gpwsi" {
		t.Errorf("after $redirect: state %q owner %v, want redirected to hs-derm-gpwsi", state(tk), get(tk, "owner", "reference"))
	}
	if got := get(c.must(200, "GET", "/"+sr, nil), "performer", 0, "reference"); got != "HealthcareService/hs-derm-gpwsi" {
		t.Errorf("ServiceRequest.performer = %v, want the new service", got)
	}
	if status, _ := c.do("POST", "/"+sr+"/$redirect", params("service", ref("HealthcareService/none"))); status != 422 {
		t.Errorf("$redirect to an unknown service: %d, want 422", status)
	}

	// Reject back to the referrer with a reason.
	sr2 := c.create(dermReferral(nil))
	if status, oo := c.do("POST", "/"+sr2+"/$accept", params()); status != 422 || errorCode(oo) != "ILLEGAL_TRANSITION" {
		t.Errorf("$accept before booking or triage: %d %s, want 422 ILLEGAL_TRANSITION", status, errorCode(oo))
	}
	book(c, sr2, "hs-derm-city", slots[1])
	if status, _ := c.do("POST", "/"+sr2+"/$reject", params()); status != 400 {
		t.Errorf("$reject without a reason: %d, want 400", status)
	}
	c.must(200, "POST", "/"+sr2+"/$reject", params("reason", "please refer to the GPwSI service first"))
	rejected := c.search("/Task?worklist=rejected&owner=Organization/gp-a")
	if len(rejected) != 1 || get(rejected[0], "statusReason", "text") != "please refer to the GPwSI service first" {
		t.Errorf("referrer's rejected worklist = %v", rejected)
	}
	provs := c.search("/Provenance?target=" + sr2)
	found := false
	for _, p := range provs {
		if get(p, "activity", "coding", 0, "code") == "rejected" && get(p, "reason", 0, "text") == "please refer to the GPwSI service first" {
			found = true
		}
	}
	if !found {
		t.Errorf("no Provenance records the rejection and its reason: %v", provs)
	}

	// Clients cannot move the state illegally by writing the Task either.
	tk = task(c, sr2)
	tk["businessStatus"] = map[string]any{"coding": []any{map[string]any{"system": referral.StateSystem, "code": "completed"}}}
	if status, oo := c.do("PUT", "/Task/"+tk["id"].(string), tk); status != 422 || errorCode(oo) != "ILLEGAL_TRANSITION" {
		t.Errorf("PUT Task rejected→completed: %d %s, want 422 ILLEGAL_TRANSITION", status, errorCode(oo))
	}
	if status, _ := c.do("POST", "/Task", map[string]any{"resourceType": "Task", "status": "ready", "intent": "order",
		"code":  map[string]any{"coding": []any{map[string]any{"system": referral.TaskCodeSystem, "code": referral.TaskCode}}},
		"focus": ref(sr2)}); status != 422 {
		t.Errorf("client-created referral Task: %d, want 422", status)
	}
	c.must(200, "POST", "/"+sr2+"/$cancel", params("reason", "patient moved away"))
	if got := c.must(200, "GET", "/"+sr2, nil)["status"]; got != "revoked" {
		t.Errorf("cancelled referral's status = %v, want revoked", got)
	}
}

func TestUBRNUniqueUnderConcurrency(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	const n = 24
	ubrns := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, out := c.do("POST", "/ServiceRequest", dermReferral(nil))
			if status == 201 {
				ubrns[i] = ubrnOf(out)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, u := range ubrns {
		if len(u) != 12 || seen[u] {
			t.Errorf("referral %d: UBRN %q missing or repeated", i, u)
		}
		seen[u] = true
	}
	if got := c.search("/Task?code=" + referral.TaskCodeSystem + "|" + referral.TaskCode + "&_count=100"); len(got) != n {
		t.Errorf("%d workflow Tasks, want %d", len(got), n)
	}
	// A client cannot change the UBRN.
	sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	sr["identifier"] = []any{map[string]any{"system": referral.UBRNSystem, "value": "123456789012"}}
	if status, _ := c.do("PUT", "/ServiceRequest/"+sr["id"].(string), sr); status != 422 {
		t.Errorf("changing the UBRN: %d, want 422", status)
	}
}

func TestAttachmentLimits(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	sr := c.create(dermReferral(nil))
	// Inline data is limited to 1 MB by the validator (FHIR's string
	// limit), so larger documents are Binary references with a size.
	bin := c.create(map[string]any{"resourceType": "Binary", "contentType": "application/pdf", "securityContext": ref(sr), "data": "JVBERi0="})
	doc := func(ct string, size int, inline bool) map[string]any {
		at := map[string]any{}
		if ct != "" {
			at["contentType"] = ct
		}
		if inline {
			at["data"] = base64.StdEncoding.EncodeToString(make([]byte, size))
		} else {
			at["url"], at["size"] = bin, size
		}
		return map[string]any{"resourceType": "DocumentReference", "status": "current",
			"context": map[string]any{"related": []any{ref(sr)}}, "content": []any{map[string]any{"attachment": at}}}
	}
	for _, tc := range []struct {
		name   string
		ct     string
		size   int
		inline bool
		want   int
	}{
		{"small inline pdf", "application/pdf", 1000, true, 201},
		{"exactly 5 MB", "application/pdf", 5 << 20, false, 201},
		{"over 5 MB", "application/pdf", 5<<20 + 1, false, 413},
		{"zip", "application/zip", 10, true, 415},
		{"executable", "application/x-msdownload", 10, true, 415},
		{"no content type", "", 10, false, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, out := c.do("POST", "/DocumentReference", doc(tc.ct, tc.size, tc.inline)); status != tc.want {
				t.Errorf("POST DocumentReference: %d, want %d (%v)", status, tc.want, out)
			}
		})
	}
	if status, _ := c.do("POST", "/Binary", map[string]any{"resourceType": "Binary", "contentType": "text/html",
		"securityContext": ref(sr), "data": "PGI+"}); status != 415 {
		t.Errorf("POST Binary text/html for a referral: %d, want 415", status)
	}
}

func TestUBRNAccessLimits(t *testing.T) {
	c := newClient(t)
	c.a.Referral.Tokens = &fakeTokens{}
	loadDirectory(c)
	sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	id := sr["id"].(string)
	first := get(c.must(200, "POST", "/ServiceRequest/"+id+"/$access-code", params()), "parameter", 1, "valueString").(string)
	code := get(c.must(200, "POST", "/ServiceRequest/"+id+"/$access-code", params()), "parameter", 1, "valueString").(string)
	ubrn := ubrnOf(sr)
	// The stored Task holds only a hash.
	if raw := strings.Join([]string{first, code}, "|"); strings.Contains(string(mustRaw(c, "/Task?focus=ServiceRequest/"+id)), strings.Split(raw, "|")[1]) {
		t.Errorf("the access code is stored in clear")
	}
	var bodies []string
	for _, tc := range []struct {
		name, ubrn, code, birth string
	}{
		{"replaced code", ubrn, first, "1980-05-17"},
		{"unknown UBRN", "999999999999", code, "1980-05-17"},
		{"wrong birth date", ubrn, code, "1980-01-01"},
		{"wrong code", ubrn, "AAAA-AAAA-AAAA", "1980-05-17"},
	} {
		status, raw := c.raw("POST", "/ServiceRequest/$ubrn-access", params("ubrn", tc.ubrn, "access-code", tc.code, "birthdate", tc.birth))
		if status != 404 {
			t.Errorf("%s: %d, want 404", tc.name, status)
		}
		bodies = append(bodies, string(raw))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("404 bodies differ: %s vs %s", b, bodies[0])
		}
	}
	// Three failures so far for this UBRN (the unknown UBRN counts apart);
	// the right details still work, and do not reset the count.
	c.must(200, "POST", "/ServiceRequest/$ubrn-access", params("ubrn", ubrn, "access-code", code, "birthdate", "1980-05-17"))
	for range 2 {
		if status, _ := c.do("POST", "/ServiceRequest/$ubrn-access", params("ubrn", ubrn, "access-code", "BBBB-BBBB-BBBB", "birthdate", "1980-05-17")); status != 404 {
			t.Errorf("fourth or fifth failure: %d, want 404", status)
		}
	}
	// Five failures within 15 minutes: now even the right details are refused.
	if status, oo := c.do("POST", "/ServiceRequest/$ubrn-access", params("ubrn", ubrn, "access-code", code, "birthdate", "1980-05-17")); status != 429 || errorCode(oo) != "TOO_MANY_ATTEMPTS" {
		t.Errorf("after 5 failures: %d %s, want 429 TOO_MANY_ATTEMPTS", status, errorCode(oo))
	}
}

func mustRaw(c *client, path string) []byte {
	_, b := c.raw("GET", path, nil)
	return b
}
