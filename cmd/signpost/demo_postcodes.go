package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"

	"github.com/signpost-fhir/signpost/domain/referral"
)

// The demo county's synthetic postcode table: one postcode for every
// square of 0.02° (about 2.2 by 1.4 km) of the county, at the square's
// centre, in the postcode area QV, which no real UK postcode uses (Q never
// begins one). The table is the CSV serve --postcodes reads
// (postcode,latitude,longitude); it is embedded, so the demo places its
// patients without any flag. TestDemoPostcodeTable checks it against
// demoPostcodeAt and rewrites it with -update.

//go:embed demo_postcodes.csv
var demoPostcodeCSV []byte

// The postcode grid.
const (
	demoGridLat0, demoGridLon0 = 50.74, -1.98 // south-west corner
	demoGridStep               = 0.02         // degrees
	demoGridRows, demoGridCols = 23, 42       // to 51.20 N, 1.14 W
)

// demoUnitLetters are the letters a postcode's unit may use.
const demoUnitLetters = "ABDEFGHJLNPQRSTUWXYZ"

// demoPostcodes returns the embedded postcode table.
func demoPostcodes() (map[string]referral.LatLon, error) {
	pcs, err := referral.ReadPostcodes(bytes.NewReader(demoPostcodeCSV))
	if err != nil {
		return nil, fmt.Errorf("the embedded demo postcode table: %w", err)
	}
	return pcs, nil
}

// demoGridSquare returns the row and column of the square holding (lat,
// lon); a place outside the grid gets the nearest square.
func demoGridSquare(lat, lon float64) (row, col int) {
	row = int(math.Floor((lat - demoGridLat0) / demoGridStep))
	col = int(math.Floor((lon - demoGridLon0) / demoGridStep))
	return min(max(row, 0), demoGridRows-1), min(max(col, 0), demoGridCols-1)
}

// demoPostcodeOf names the square at row, col: district QV1… from west to
// east (four columns each), sector 0… from south to north (three rows
// each), and a unit unique within the sector.
func demoPostcodeOf(row, col int) string {
	k := (row%3)*4 + col%4
	return fmt.Sprintf("QV%d %d%c%c", 1+col/4, row/3, demoUnitLetters[k], demoUnitLetters[(row*5+col*3)%len(demoUnitLetters)])
}

// demoSquareCentre returns the position the table gives the square at
// row, col.
func demoSquareCentre(row, col int) referral.LatLon {
	round := func(x float64) float64 { return math.Round(x*1e4) / 1e4 }
	return referral.LatLon{Lat: round(demoGridLat0 + demoGridStep*(float64(row)+0.5)), Lon: round(demoGridLon0 + demoGridStep*(float64(col)+0.5))}
}

// demoPostcodeAt returns the postcode of the place (lat, lon).
func demoPostcodeAt(lat, lon float64) string { return demoPostcodeOf(demoGridSquare(lat, lon)) }
