package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/signpost-fhir/signpost/fhir"
)

// ClientUBRNAccess is the client_id of the tokens $ubrn-access hands out.
const ClientUBRNAccess = "ubrn-access"

// referralScopePrefix starts the one scope of a $ubrn-access token that
// names its referral.
const referralScopePrefix = "patient/ServiceRequest.rs?_id="

// referralScopes are what a patient who proved a UBRN and access code may
// do: see the directory, their own Patient and this one referral, and
// book, change or cancel their appointments. (The referral's workflow Task
// is not in the Patient compartment, so no patient scope reaches it.)
func referralScopes(referralID string) []string {
	s := []string{
		"patient/Patient.rs",
		referralScopePrefix + referralID,
		"patient/Appointment.cruds",
		"patient/QuestionnaireResponse.cru",
	}
	for _, t := range []string{"HealthcareService", "Location", "Organization", "Practitioner", "PractitionerRole", "Schedule", "Slot", "Questionnaire"} {
		s = append(s, "patient/"+t+".rs")
	}
	return s
}

// ReferralGrant is the grant of a $ubrn-access token: patientID's context,
// the referral's scopes, client ClientUBRNAccess with the patient role. Both
// ids must be plain FHIR ids, so that neither can smuggle another query
// parameter into the ServiceRequest scope.
func ReferralGrant(audience, patientID, referralID string) (TokenGrant, error) {
	if !fhir.ValidID(patientID) || !fhir.ValidID(referralID) {
		return TokenGrant{}, fmt.Errorf("auth: referral token: bad patient %q or referral %q", patientID, referralID)
	}
	g := PatientGrant(audience, ClientUBRNAccess, patientID, referralScopes(referralID))
	g.Role = RolePatient
	return g, nil
}

// checkReferralPrincipal rejects a verified token that claims more than a
// $ubrn-access token ever does: exactly the scopes of one referral, in one
// patient's context, for client ClientUBRNAccess with the patient role, and
// nothing else Signpost reads (no organisation, no NHS number).
func checkReferralPrincipal(p *Principal, audience string) error {
	bad := func(format string, args ...any) error {
		return unauthorized(DetailTokenInvalid, "security",
			"access token of the UBRN access issuer "+fmt.Sprintf(format, args...), nil)
	}
	if p.ClientID != ClientUBRNAccess {
		return bad("names client %q, not %q", p.ClientID, ClientUBRNAccess)
	}
	if p.Role != RolePatient || p.Organization != "" || p.NHSNumber != "" {
		return bad("carries a role, organisation or NHS number that $ubrn-access never issues")
	}
	if !fhir.ValidID(p.Patient) || p.Subject != "Patient/"+p.Patient ||
		p.FHIRUser != "" && p.FHIRUser != strings.TrimSuffix(audience, "/")+"/Patient/"+p.Patient {
		return bad("does not name one patient (patient, sub and fhirUser disagree)")
	}
	var referral string
	for _, s := range p.RawScopes {
		if id, ok := strings.CutPrefix(s, referralScopePrefix); ok {
			if referral != "" {
				return bad("names more than one referral")
			}
			referral = id
		}
	}
	if !fhir.ValidID(referral) {
		return bad("names no referral")
	}
	got, want := slices.Clone(p.RawScopes), referralScopes(referral)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return bad("carries scopes that $ubrn-access does not issue")
	}
	return nil
}

// Referral returns the id of the one referral a $ubrn-access token is
// limited to, or "" for any other token.
func (p *Principal) Referral() string {
	if p == nil || p.ClientID != ClientUBRNAccess {
		return ""
	}
	for _, s := range p.RawScopes {
		if id, ok := strings.CutPrefix(s, referralScopePrefix); ok && fhir.ValidID(id) {
			return id
		}
	}
	return ""
}
