package referral_test

import (
	"testing"

	"github.com/signpost-fhir/signpost/domain/referral"
)

// TestAdviceAndGuidance: the GP asks, the specialist answers in the thread,
// then converts the question into a referral with a UBRN.
func TestAdviceAndGuidance(t *testing.T) {
	c := newClient(t)
	loadDirectory(c)
	cr := c.create(map[string]any{"resourceType": "CommunicationRequest", "status": "active",
		"category": []any{map[string]any{"text": "advice and guidance"}},
		"subject":  ref("Patient/pat-1"), "requester": ref("Organization/gp-a"),
		"recipient": []any{ref("HealthcareService/hs-derm-city")},
		"payload":   []any{map[string]any{"contentString": "Is this lesion suitable for the two-week wait?"}}})
	q := c.create(map[string]any{"resourceType": "Communication", "status": "completed", "basedOn": []any{ref(cr)},
		"payload": []any{map[string]any{"contentString": "Please send a photograph."}}})
	other := c.create(map[string]any{"resourceType": "CommunicationRequest", "status": "active", "subject": ref("Patient/pat-1")})
	if status, _ := c.do("POST", "/Communication", map[string]any{"resourceType": "Communication", "status": "completed",
		"basedOn": []any{ref(other)}, "inResponseTo": []any{ref(q)}}); status != 422 {
		t.Errorf("a reply in another thread: %d, want 422", status)
	}
	sr := c.must(201, "POST", "/"+cr+"/$convert", params("priority", "urgent"))
	if ubrnOf(sr) == "" || get(sr, "performer", 0, "reference") != "HealthcareService/hs-derm-city" ||
		get(sr, "performerType", "coding", 0, "code") != "394582007" || get(sr, "supportingInfo", 0, "reference") != cr {
		t.Errorf("converted referral = %v", sr)
	}
	if got := state(task(c, "ServiceRequest/"+sr["id"].(string))); got != string(referral.AwaitingBooking) {
		t.Errorf("converted referral state = %q", got)
	}
	if status, oo := c.do("POST", "/"+cr+"/$convert", params()); status != 422 || errorCode(oo) != "ILLEGAL_TRANSITION" {
		t.Errorf("converting twice: %d %s, want 422", status, errorCode(oo))
	}
	trends := c.must(200, "GET", "/$referral-trends", nil)
	if got := get(trends, "parameter", 0, "part", 4, "valueInteger"); got != float64(1) {
		t.Errorf("$referral-trends first row count = %v, want 1 (%v)", got, trends)
	}
	if got := get(trends, "parameter", 0, "part", 1, "valueCode"); got != "394582007" {
		t.Errorf("$referral-trends first row specialty-code = %v, want the code 394582007 (%v)", got, trends)
	}
}
