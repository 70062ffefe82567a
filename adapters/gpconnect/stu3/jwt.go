package stu3

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Device is the requesting_device claim: the consumer system.
type Device struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id,omitempty"`
	Identifier   []Identifier `json:"identifier,omitempty"`
	Model        string       `json:"model,omitempty"`
	Version      string       `json:"version,omitempty"`
}

// Claims are the claims of the JWT every GP Connect request carries
// (GP Connect 1.2.x, Cross Organisation Audit & Provenance): who asks,
// from which system and organisation, why, and for what scope.
type Claims struct {
	Iss                    string        `json:"iss"`
	Sub                    string        `json:"sub"`
	Aud                    string        `json:"aud"`
	Exp                    int64         `json:"exp"`
	Iat                    int64         `json:"iat"`
	ReasonForRequest       string        `json:"reason_for_request"`
	RequestedScope         string        `json:"requested_scope"`
	RequestingDevice       *Device       `json:"requesting_device"`
	RequestingOrganization *Organization `json:"requesting_organization"`
	RequestingPractitioner *Practitioner `json:"requesting_practitioner"`
}

// unsignedHeader is the JOSE header of an unsecured JWT (RFC 7519 §6),
// which GP Connect 1.2.x consumers send.
const unsignedHeader = `{"alg":"none","typ":"JWT"}`

// EncodeUnsigned is the unsecured JWT of c: base64url header and claims
// and an empty signature ("header.claims.").
func EncodeUnsigned(c *Claims) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(unsignedHeader)) + "." + enc.EncodeToString(b) + ".", nil
}

// DecodeUnsigned reads an unsecured JWT: it must have alg "none", no
// signature, and claims that decode as Claims. It checks the form, not
// the values (see the stand-in for GP Connect's rules).
func DecodeUnsigned(token string) (*Claims, map[string]json.RawMessage, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("a JWT has three dot-separated parts")
	}
	if parts[2] != "" {
		return nil, nil, errors.New("a GP Connect JWT is unsigned: its signature part must be empty")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, nil, fmt.Errorf("JWT header: %w", err)
	}
	var h struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, nil, fmt.Errorf("JWT header: %w", err)
	}
	if h.Alg != "none" {
		return nil, nil, fmt.Errorf("JWT header: alg %q, want none", h.Alg)
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, nil, fmt.Errorf("JWT claims: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(cb, &raw); err != nil {
		return nil, nil, fmt.Errorf("JWT claims: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(cb, &c); err != nil {
		return nil, raw, fmt.Errorf("JWT claims: %w", err)
	}
	return &c, raw, nil
}
