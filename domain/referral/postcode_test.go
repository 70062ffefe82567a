package referral_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/referral"
)

func TestReadPostcodes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]referral.LatLon
		wantErr  string
	}{
		{"header and spacing", "postcode,lat,long\nZZ9 9ZZ, 52.5, -0.12\n\nzz1 1aa,51.5,-0.12\n",
			map[string]referral.LatLon{"ZZ99ZZ": {52.5, -0.12}, "ZZ11AA": {51.5, -0.12}}, ""},
		{"no header", "ZZ9 9ZZ,52.5,-0.12\n", map[string]referral.LatLon{"ZZ99ZZ": {52.5, -0.12}}, ""},
		{"bad number after the first line", "ZZ9 9ZZ,52.5,-0.12\nZZ1 1AA,north,-0.12\n", nil, "line 2"},
		{"too few fields", "ZZ9 9ZZ,52.5\n", nil, "line 1: want postcode,latitude,longitude"},
		{"off the globe", "ZZ9 9ZZ,95,0\n", nil, "not a position"},
		{"no postcode", " ,52.5,-0.12\n", nil, "no postcode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := referral.ReadPostcodes(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("postcodes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestShortlistByPostcode: a patient with a postcode but no geolocation is
// placed by the deployment's postcode table (app.Config.Postcodes, serve
// --postcodes), so distance counts in the ranking.
func TestShortlistByPostcode(t *testing.T) {
	c := newClientWith(t, app.Config{Postcodes: "testdata/postcodes.csv"})
	c.a.Referral.Tokens = &fakeTokens{}
	loadDirectory(c)
	addSlots(c, "hs-derm-city", 10)
	addSlots(c, "hs-derm-gpwsi", 10)
	addSlots(c, "hs-derm-far", 10)
	c.must(201, "PUT", "/Patient/pat-far", map[string]any{"resourceType": "Patient", "id": "pat-far",
		"gender": "female", "birthDate": "1980-05-17", "generalPractitioner": []any{ref("Organization/gp-a")},
		"address": []any{map[string]any{"line": []any{"2 Far Lane"}, "postalCode": "zz9 9zz"}}})
	for _, tc := range []struct {
		patient, source string
		want            []string
	}{
		// Same waits: the nearest service ranks first.
		{"Patient/pat-far", "postcode", []string{"hs-derm-far", "hs-derm-gpwsi", "hs-derm-city"}},
		{"Patient/pat-1", "patient-address", []string{"hs-derm-city", "hs-derm-gpwsi", "hs-derm-far"}},
	} {
		sr := c.must(201, "POST", "/ServiceRequest", dermReferral(map[string]any{"subject": ref(tc.patient)}))
		out := c.must(200, "GET", "/ServiceRequest/"+sr["id"].(string)+"/$shortlist", nil)
		if got := get(out, "parameter", 0, "valueCode"); got != tc.source {
			t.Errorf("%s: location-source = %v, want %s", tc.patient, got, tc.source)
		}
		if got := shortlisted(out, "service"); !slices.Equal(got, tc.want) {
			t.Errorf("%s: shortlist = %v, want %v", tc.patient, got, tc.want)
		}
	}

	// A table that cannot be read stops the server from starting.
	if _, err := app.New(app.Config{Data: t.TempDir(), Open: true, Postcodes: "testdata/missing.csv"}); err == nil {
		t.Errorf("app.New with a missing postcode table: no error")
	}
}
