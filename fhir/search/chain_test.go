package search

import (
	"net/url"
	"reflect"
	"testing"
)

// TestNamedChain: a parameter defined with ChainExtension (Signpost's
// HealthcareService near) parses into the chain it names, and has no index
// entries of its own.
func TestNamedChain(t *testing.T) {
	r := testRegistry(t)
	p := r.Lookup("HealthcareService", "near")
	if p == nil || p.Chain != "location.near" || p.Unsupported != "" {
		t.Fatalf("HealthcareService near = %+v, want a supported chain location.near", p)
	}
	for _, o := range r.ordered["HealthcareService"] {
		if o.Code == "near" {
			t.Errorf("HealthcareService near is indexed; a named chain has no entries of its own")
		}
	}
	for _, tc := range []struct {
		query string
		want  Expr
	}{
		{"near=51.5|-0.12|5|km", Chain{Param: "location", Target: "Location", Filter: Near{Param: "near", Lat: 51.5, Lon: -0.12, KM: 5}}},
		{"location.near=51.5|-0.12|5|km", Chain{Param: "location", Target: "Location", Filter: Near{Param: "near", Lat: 51.5, Lon: -0.12, KM: 5}}},
	} {
		v, _ := url.ParseQuery(tc.query)
		q, err := r.Parse("HealthcareService", v, ParseOptions{Strict: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if len(q.Filter) != 1 || !reflect.DeepEqual(q.Filter[0], tc.want) {
			t.Errorf("%s parsed to %#v, want %#v", tc.query, q.Filter, tc.want)
		}
	}
	if _, err := r.Parse("HealthcareService", url.Values{"near": {"north"}}, ParseOptions{Strict: true}); err == nil {
		t.Errorf("near=north parsed without an error")
	}
}
