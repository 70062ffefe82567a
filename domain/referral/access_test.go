package referral_test

import (
	"context"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/store"
)

// TestAccessCodeHashIsNotServed: the access code's hash lives in a store
// record, not in any FHIR resource: no read, search or history answer
// contains it (nor the code), the Task holds only the record's key, and a
// new code replaces the old at once.
func TestAccessCodeHashIsNotServed(t *testing.T) {
	c := newClient(t)
	c.a.Referral.Tokens = &fakeTokens{}
	loadDirectory(c)
	sr := c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	srRef := "ServiceRequest/" + sr["id"].(string)
	ubrn := ubrnOf(sr)

	issue := func() string {
		out := c.must(200, "POST", "/"+srRef+"/$access-code", params())
		return get(out, "parameter", 1, "valueString").(string)
	}
	first, second := issue(), issue()
	for _, tc := range []struct {
		code string
		want int
	}{{first, 404}, {second, 200}} {
		if status, _ := c.do("POST", "/ServiceRequest/$ubrn-access", params("ubrn", ubrn, "access-code", tc.code, "birthdate", "1980-05-17")); status != tc.want {
			t.Errorf("$ubrn-access with the %s code: %d, want %d", map[bool]string{true: "first", false: "second"}[tc.code == first], status, tc.want)
		}
	}

	// The Task names the record; the record holds the hash.
	var key string
	for _, e := range task(c, srRef)["extension"].([]any) {
		if get(e, "url") == referral.AccessExtension {
			key, _ = get(e, "valueString").(string)
		}
	}
	rs, ok := c.a.Store.(store.Records)
	if key == "" || !ok {
		t.Fatalf("access-code key %q on the Task; store has records: %v", key, ok)
	}
	rec, err := rs.GetRecord(context.Background(), referral.AccessCodeRecord, key)
	if err != nil {
		t.Fatalf("the access-code record %s: %v", key, err)
	}
	hash := string(rec)[strings.Index(string(rec), "sha256$"):]
	hash = hash[:strings.IndexByte(hash, '"')]

	for _, path := range []string{
		"/" + srRef,
		"/Task?focus=" + srRef + "&_include=Task:focus",
		"/Provenance?target=" + srRef,
		"/_history?_count=1000",
		"?_type=Task,ServiceRequest,Provenance&_count=1000",
	} {
		status, body := c.raw("GET", path, nil)
		if status != 200 {
			t.Errorf("GET %s: %d %s", path, status, body)
			continue
		}
		for _, secret := range []string{hash, "sha256$", first, second} {
			if strings.Contains(string(body), secret) {
				t.Errorf("GET %s serves %q", path, secret)
			}
		}
	}

	// A client's PUT of the Task cannot change the key.
	tk := task(c, srRef)
	tk["extension"] = []any{map[string]any{"url": referral.AccessExtension, "valueString": "forged"}}
	c.must(200, "PUT", "/Task/"+tk["id"].(string), tk)
	if status, _ := c.do("POST", "/ServiceRequest/$ubrn-access", params("ubrn", ubrn, "access-code", second, "birthdate", "1980-05-17")); status != 200 {
		t.Errorf("after a client PUT of the Task, the current code: %d, want 200", status)
	}
}
