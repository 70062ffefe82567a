package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"encoding/json"
	"fmt"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// CheckNHSNumber reports why s is not a valid NHS number, or nil: ten
// digits whose last is the modulus-11 check digit of the first nine
// (weights 10 down to 2; 11 - sum mod 11, where 11 means 0 and 10 means
// the number is invalid).
func CheckNHSNumber(s string) error {
	if len(s) != 10 {
		return fmt.Errorf("an NHS number has 10 digits, not %d", len(s))
	}
	sum := 0
	for i := 0; i < 10; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return fmt.Errorf("an NHS number has only digits, not %q", c)
		}
		if i < 9 {
			sum += int(c-'0') * (10 - i)
		}
	}
	check := 11 - sum%11
	switch check {
	case 11:
		check = 0
	case 10:
		return fmt.Errorf("%s can never be an NHS number: its check digit would be 10", s)
	}
	if int(s[9]-'0') != check {
		return fmt.Errorf("%s fails the modulus-11 check: the check digit should be %d", s, check)
	}
	return nil
}

// NHSNumberCheckDigit returns the check digit of nine digits, and false when
// no valid NHS number starts with them.
func NHSNumberCheckDigit(nine string) (byte, bool) {
	for d := byte('0'); d <= '9'; d++ {
		if CheckNHSNumber(nine+string(d)) == nil {
			return d, true
		}
	}
	return 0, false
}

// patientRule checks every NHS number identifier and refuses a second
// Patient with the same NHS number (409).
func (s *Service) patientRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var ids []r4.Identifier
	if raw := c.New.Get("identifier"); raw != nil {
		if err := json.Unmarshal(raw, &ids); err != nil {
			return fhir.Errorf(fhir.Invalid, "structure", "Patient.identifier", "Patient.identifier must be an array of Identifiers")
		}
	}
	for i, id := range ids {
		if elem.Str(id.System) != NHSNumberSystem {
			continue
		}
		at := fmt.Sprintf("Patient.identifier[%d].value", i)
		if err := CheckNHSNumber(elem.Str(id.Value)); err != nil {
			return fhir.Errorf(fhir.Unprocessable, "value", at, "%v", err).WithDetails("INVALID_NHS_NUMBER")
		}
		others, err := find(ctx, tx, s.reg, "Patient", "identifier="+NHSNumberSystem+"|"+elem.Str(id.Value))
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.ID == c.ID {
				continue
			}
			who := "another Patient" // one the caller cannot read stays unnamed: trace it
			if _, err := s.repo.ReadAs(ctx, tx, "Patient", o.ID); err == nil {
				who = "Patient/" + o.ID
			}
			return fhir.Errorf(fhir.Conflict, "duplicate", at,
				"NHS number %s already belongs to %s", elem.Str(id.Value), who).WithDetails("DUPLICATE_NHS_NUMBER")
		}
	}
	return nil
}
