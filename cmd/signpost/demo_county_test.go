package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/referral"
)

var update = flag.Bool("update", false, "rewrite demo_postcodes.csv from the postcode grid")

// TestDemoPostcodeTable: the embedded table is the postcode grid (one
// unique postcode per square, at its centre), and reads as a deployment's
// --postcodes table.
func TestDemoPostcodeTable(t *testing.T) {
	var want bytes.Buffer
	want.WriteString("postcode,latitude,longitude\n")
	seen := map[string]bool{}
	for row := range demoGridRows {
		for col := range demoGridCols {
			pc, at := demoPostcodeOf(row, col), demoSquareCentre(row, col)
			if seen[pc] {
				t.Errorf("postcode %s names two squares", pc)
			}
			seen[pc] = true
			fmt.Fprintf(&want, "%s,%s,%s\n", pc, strconv.FormatFloat(at.Lat, 'f', -1, 64), strconv.FormatFloat(at.Lon, 'f', -1, 64))
		}
	}
	if *update {
		if err := os.WriteFile("demo_postcodes.csv", want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(want.Bytes(), demoPostcodeCSV) {
		t.Errorf("demo_postcodes.csv is not the postcode grid: run go test ./cmd/signpost -run TestDemoPostcodeTable -update")
	}
	pcs, err := demoPostcodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(pcs) != demoGridRows*demoGridCols {
		t.Errorf("the table has %d postcodes, want %d", len(pcs), demoGridRows*demoGridCols)
	}
	// A place's postcode is the square it lies in: its centre is within
	// half a square's diagonal (about 1.3 km).
	for _, p := range []referral.LatLon{{Lat: 51.07, Lon: -1.79}, {Lat: 50.8012, Lon: -1.9034}, {Lat: 51.195, Lon: -1.2}} {
		at, ok := pcs[referral.NormalisePostcode(demoPostcodeAt(p.Lat, p.Lon))]
		if !ok {
			t.Errorf("%v: postcode %s is not in the table", p, demoPostcodeAt(p.Lat, p.Lon))
		} else if d := referral.DistanceKM(p, at); d > 1.4 {
			t.Errorf("%v: postcode %s is placed %.1f km away", p, demoPostcodeAt(p.Lat, p.Lon), d)
		}
	}
}

// demoClient talks to a server with the demo county loaded.
type demoClient struct {
	t    *testing.T
	base string
}

func (c *demoClient) do(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d, want %d: %.500s", method, path, resp.StatusCode, want, raw)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out
}

func (c *demoClient) search(path string) []map[string]any {
	c.t.Helper()
	return resources(c.do("GET", path, nil, 200))
}

func ids(rs []map[string]any) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r["id"].(string))
	}
	slices.Sort(out)
	return out
}

// TestDemoCounty: the demo county is realistic enough to show the
// journeys: at least five services in every specialty, each with a
// telephone number at a location with an address and postcode; the two
// commissioners commission different services; some services are
// indirectly bookable; and for a patient of either board, every
// specialty's shortlist offers four or five choices with distances worked
// out from the embedded postcode table.
func TestDemoCounty(t *testing.T) {
	a, ts := apptest.New(t, app.Config{})
	if err := loadDemo(context.Background(), a, io.Discard); err != nil {
		t.Fatal(err)
	}
	c := &demoClient{t: t, base: ts.URL + "/fhir"}
	pcs, err := demoPostcodes()
	if err != nil {
		t.Fatal(err)
	}

	// The ids the README, the walkthrough and the personas use.
	for _, path := range []string{"/HealthcareService/demo-hs-kingsbridge-394582007", "/HealthcareService/demo-hs-gpwsi-dermatology",
		"/HealthcareService/demo-hs-harbour-394582007", "/Patient/demo-patient-001", "/Organization/demo-gp-01",
		"/Organization/demo-trust-kingsbridge", "/Organization/demo-icb-north", "/Organization/demo-icb-south"} {
		c.do("GET", path, nil, 200)
	}
	// The demo staff whom the development server's tokens name (fhirUser).
	for _, u := range devserver.DemoStaff() {
		c.do("GET", "/Practitioner/"+u.ID, nil, 200)
	}

	// Locations: an address with a town and a postcode of the table, at
	// the place's position.
	positions := map[string]referral.LatLon{}
	for _, l := range c.search("/Location?_count=200") {
		id := l["id"].(string)
		pos := referral.LatLon{Lat: jpath(l, "position", "latitude").(float64), Lon: jpath(l, "position", "longitude").(float64)}
		positions["Location/"+id] = pos
		pc, _ := jpath(l, "address", "postalCode").(string)
		at, ok := pcs[referral.NormalisePostcode(pc)]
		switch {
		case jpath(l, "address", "city") == nil || jpath(l, "address", "line", 0) == nil:
			t.Errorf("Location/%s has no street address: %v", id, l["address"])
		case !ok:
			t.Errorf("Location/%s: postcode %q is not in the demo table", id, pc)
		case referral.DistanceKM(pos, at) > 1.4:
			t.Errorf("Location/%s: postcode %s is %.1f km from the location", id, pc, referral.DistanceKM(pos, at))
		}
		if jpath(l, "telecom", 0, "value") == nil {
			t.Errorf("Location/%s has no telephone number", id)
		}
	}

	// Services: at least five per specialty, each with a telephone number
	// at a known location.
	services := c.search("/HealthcareService?_count=200")
	bySpecialty := map[string][]string{}
	for _, s := range services {
		id := s["id"].(string)
		bySpecialty[jpath(s, "specialty", 0, "coding", 0, "code").(string)] = append(bySpecialty[jpath(s, "specialty", 0, "coding", 0, "code").(string)], id)
		if tel, _ := jpath(s, "telecom", 0, "value").(string); !strings.HasPrefix(tel, "01632 960") || jpath(s, "telecom", 0, "system") != "phone" {
			t.Errorf("HealthcareService/%s: telephone %q, want a number of the 01632 960 drama range", id, tel)
		}
		if _, ok := positions[jpath(s, "location", 0, "reference").(string)]; !ok {
			t.Errorf("HealthcareService/%s is at %v, not a demo location", id, jpath(s, "location", 0, "reference"))
		}
	}
	for _, sp := range demoSpecialties {
		if n := len(bySpecialty[sp.code]); n < 5 {
			t.Errorf("%s has %d services, want at least 5: %v", sp.name, n, bySpecialty[sp.code])
		}
	}

	// The commissioners commission different services.
	north := ids(c.search("/HealthcareService?commissioner=Organization/demo-icb-north&_count=200"))
	south := ids(c.search("/HealthcareService?commissioner=Organization/demo-icb-south&_count=200"))
	var onlyNorth, onlySouth []string
	for _, id := range north {
		if !slices.Contains(south, id) {
			onlyNorth = append(onlyNorth, id)
		}
	}
	for _, id := range south {
		if !slices.Contains(north, id) {
			onlySouth = append(onlySouth, id)
		}
	}
	if len(onlyNorth) < 2 || len(onlySouth) < 2 {
		t.Errorf("services only one board commissions: north %v, south %v; want at least two each", onlyNorth, onlySouth)
	}

	// Indirectly bookable services (triage first), one of them the demo
	// provider's, and none with a schedule to book.
	indirect := ids(c.search("/HealthcareService?bookability=" + directory.BookabilitySystem + "|" + directory.IndirectlyBookable + "&_count=200"))
	if len(indirect) < 3 || !slices.Contains(indirect, "demo-hs-kingsbridge-394591006") {
		t.Errorf("indirectly bookable services %v, want at least 3 with Kingsbridge neurology", indirect)
	}
	for _, id := range indirect {
		if n := len(c.search("/Schedule?actor=HealthcareService/" + id)); n != 0 {
			t.Errorf("indirectly bookable HealthcareService/%s has %d schedules", id, n)
		}
	}

	// For an adult woman of each board, every specialty's shortlist offers
	// four or five services, each with a distance from her postcode.
	for icb := range 2 {
		n := demoShortlistPatient(t, icb)
		patient := c.do("GET", fmt.Sprintf("/Patient/demo-patient-%03d", n), nil, 200)
		if jpath(patient, "address", 0, "extension") != nil {
			t.Errorf("demo-patient-%03d's address carries a geolocation: distances would not come from the postcode table", n)
		}
		home, ok := pcs[referral.NormalisePostcode(jpath(patient, "address", 0, "postalCode").(string))]
		if !ok {
			t.Fatalf("demo-patient-%03d's postcode %v is not in the table", n, jpath(patient, "address", 0, "postalCode"))
		}
		gp := jpath(patient, "generalPractitioner", 0, "reference").(string)
		for _, sp := range demoSpecialties {
			sr := c.do("POST", "/ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order",
				"priority": "routine", "subject": reference(fmt.Sprintf("Patient/demo-patient-%03d", n)), "requester": reference(gp),
				"performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": sp.code, "display": sp.name}}}}, 201)
			sl := c.do("GET", "/ServiceRequest/"+sr["id"].(string)+"/$shortlist", nil, 200)
			if src := param(sl, "location-source"); src != "postcode" {
				t.Errorf("%s for demo-patient-%03d: location-source %v, want postcode", sp.name, n, src)
			}
			var listed []string
			for _, x := range sl["parameter"].([]any) {
				if jpath(x, "name") != "service" {
					continue
				}
				var ref string
				var km float64
				hasKM := false
				for _, part := range jpath(x, "part").([]any) {
					switch jpath(part, "name") {
					case "service":
						ref = jpath(part, "valueReference", "reference").(string)
					case "distance-km":
						km, hasKM = jpath(part, "valueDecimal").(float64), true
					}
				}
				listed = append(listed, ref)
				hs := c.do("GET", "/"+ref, nil, 200)
				want := math.Round(referral.DistanceKM(home, positions[jpath(hs, "location", 0, "reference").(string)])*10) / 10
				if !hasKM || km != want {
					t.Errorf("%s for demo-patient-%03d: %s is %v km away (given %v), want %.1f from the postcode table", sp.name, n, ref, km, hasKM, want)
				}
			}
			if len(listed) < 4 || len(listed) > 5 {
				t.Errorf("%s for demo-patient-%03d (board %d): shortlist %v, want 4 or 5 services", sp.name, n, icb, listed)
			}
		}
	}
}

// demoShortlistPatient returns the number of the first demo patient who is
// a woman aged 18 to 75 registered with a practice of board icb (0 north,
// 1 south): every specialty's services are for her.
func demoShortlistPatient(t *testing.T, icb int) int {
	t.Helper()
	for n := 1; n <= 80; n++ {
		practice := (n - 1) / 4
		p := demoPatient(n, "", 0, 0, 0)
		birth, _ := time.Parse("2006-01-02", p["birthDate"].(string))
		age := time.Now().Year() - birth.Year()
		if practice%2 == icb && p["gender"] == "female" && age >= 18 && age <= 75 {
			return n
		}
	}
	t.Fatalf("no adult woman among board %d's demo patients", icb)
	return 0
}

// TestDemoPostcodesAfterRestart: a server started without --demo over a
// data directory holding the demo county still places the demo patients
// by the county's postcode table; one without the county does not load it.
func TestDemoPostcodesAfterRestart(t *testing.T) {
	data := t.TempDir()
	first, _ := apptest.New(t, app.Config{Data: data})
	if err := loadDemo(context.Background(), first, io.Discard); err != nil {
		t.Fatal(err)
	}
	first.Close()

	a, ts := apptest.New(t, app.Config{Data: data})
	if err := addDemoPostcodes(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	c := &demoClient{t: t, base: ts.URL + "/fhir"}
	sr := c.do("POST", "/ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order",
		"priority": "routine", "subject": reference("Patient/demo-patient-001"), "requester": reference("Organization/demo-gp-01"),
		"performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": dermatology.code}}}}, 201)
	if src := param(c.do("GET", "/ServiceRequest/"+sr["id"].(string)+"/$shortlist", nil, 200), "location-source"); src != "postcode" {
		t.Errorf("after a restart without --demo, location-source = %v, want postcode", src)
	}

	empty, ets := apptest.New(t, app.Config{})
	if err := addDemoPostcodes(context.Background(), empty); err != nil {
		t.Fatal(err)
	}
	e := &demoClient{t: t, base: ets.URL + "/fhir"}
	e.do("PUT", "/Patient/p", map[string]any{"resourceType": "Patient", "id": "p", "address": []any{map[string]any{"postalCode": "QV1 0AA"}}}, 201)
	sr = e.do("POST", "/ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order",
		"subject": reference("Patient/p"), "performerType": map[string]any{"coding": []any{map[string]any{"system": sct, "code": dermatology.code}}}}, 201)
	if src := param(e.do("GET", "/ServiceRequest/"+sr["id"].(string)+"/$shortlist", nil, 200), "location-source"); src != "none" {
		t.Errorf("a server without the demo county placed a QV postcode (location-source %v)", src)
	}
}
