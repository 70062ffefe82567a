package auth

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ClientUBRNAccess is the client_id of the tokens $ubrn-access hands out.
const ClientUBRNAccess = "ubrn-access"

// referralScopes are what a patient who proved a UBRN and access code may
// do: see the directory, their own Patient and this one referral, and
// book, change or cancel their appointments. (The referral's workflow Task
// is not in the Patient compartment, so no patient scope reaches it.)
func referralScopes(referralID string) []string {
	s := []string{
		"patient/Patient.rs",
		"patient/ServiceRequest.rs?_id=" + referralID,
		"patient/Appointment.cruds",
		"patient/QuestionnaireResponse.cru",
	}
	for _, t := range []string{"HealthcareService", "Location", "Organization", "Practitioner", "PractitionerRole", "Schedule", "Slot", "Questionnaire"} {
		s = append(s, "patient/"+t+".rs")
	}
	return s
}

// MintReferralToken issues the short-lived access token of
// ServiceRequest/$ubrn-access: in patientID's context, limited to one
// referral (granular scopes) and the booking of appointments, signed like
// every other token of the server. It implements referral.TokenMinter.
func (s *DevServer) MintReferralToken(_ context.Context, patientID, referralID string, ttl time.Duration) (string, error) {
	if patientID == "" || referralID == "" || strings.ContainsAny(patientID+referralID, "&?= ") {
		return "", fmt.Errorf("auth: referral token: bad patient %q or referral %q", patientID, referralID)
	}
	if ttl <= 0 || ttl > s.cfg.TokenTTL {
		ttl = s.cfg.TokenTTL
	}
	g := patientGrant(s.cfg.Audience, &DemoClient{ID: ClientUBRNAccess, Role: RolePatient}, patientID, referralScopes(referralID))
	return signAccessToken(s.cfg.Issuer, s.storage.key, g, time.Now().Add(ttl), tokenID())
}
