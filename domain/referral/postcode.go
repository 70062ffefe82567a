package referral

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// NormalisePostcode is the form postcodes are looked up in: upper case,
// without spaces ("zz1 1aa" → "ZZ11AA").
func NormalisePostcode(pc string) string {
	return strings.ToUpper(strings.Join(strings.Fields(pc), ""))
}

// ReadPostcodes reads a postcode table, the CSV a deployment loads to
// place patients whose address has a postcode but no geolocation:
// postcode,latitude,longitude per line, in decimal degrees (WGS84). A
// first line whose coordinates are not numbers is a header and skipped.
// Blank lines are skipped; anything else wrong is an error naming its line.
func ReadPostcodes(r io.Reader) (map[string]LatLon, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	out := map[string]LatLon{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("postcodes: %w", err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != 3 {
			return nil, fmt.Errorf("postcodes: line %d: want postcode,latitude,longitude, got %d fields", line, len(rec))
		}
		lat, err1 := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		lon, err2 := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
		if err1 != nil || err2 != nil {
			if line == 1 {
				continue // header
			}
			return nil, fmt.Errorf("postcodes: line %d: %q,%q are not decimal degrees", line, rec[1], rec[2])
		}
		if lat < -90 || lat > 90 || lon < -180 || lon > 180 {
			return nil, fmt.Errorf("postcodes: line %d: %g,%g is not a position", line, lat, lon)
		}
		pc := NormalisePostcode(rec[0])
		if pc == "" {
			return nil, fmt.Errorf("postcodes: line %d: no postcode", line)
		}
		out[pc] = LatLon{lat, lon}
	}
}

// AddPostcodes adds the entries of pcs (keyed in NormalisePostcode form)
// that the service's postcode table lacks: the deployment's own table
// (Config.Postcodes) wins. Call it during start-up only, before serving
// (the demo county adds its synthetic table so).
func (s *Service) AddPostcodes(pcs map[string]LatLon) {
	merged := make(map[string]LatLon, len(s.cfg.Postcodes)+len(pcs))
	for k, v := range pcs {
		merged[k] = v
	}
	for k, v := range s.cfg.Postcodes {
		merged[k] = v
	}
	s.cfg.Postcodes = merged
}
