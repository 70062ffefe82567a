package gpconnect

// The GP Connect client: every request to the practice carries the
// headers GP Connect requires (Ssp-TraceID, fresh per request;
// Ssp-From and Ssp-To, the ASIDs; Ssp-InteractionID, the interaction's
// id; Accept and Content-Type application/fhir+json) and an unsigned JWT
// (Authorization: Bearer) whose requesting_device,
// requesting_organization and requesting_practitioner are built from
// the Signpost principal who asked.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/auth"
)

// The GP Connect 1.2 interaction ids (Ssp-InteractionID) Signpost uses.
const (
	InteractionSearchSlots         = "urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1"
	InteractionFindPatient         = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"
	InteractionBookAppointment     = "urn:nhs:names:services:gpconnect:fhir:rest:create:appointment-1"
	InteractionAmendAppointment    = "urn:nhs:names:services:gpconnect:fhir:rest:update:appointment-1"
	InteractionCancelAppointment   = "urn:nhs:names:services:gpconnect:fhir:rest:cancel:appointment-1"
	InteractionReadAppointment     = "urn:nhs:names:services:gpconnect:fhir:rest:read:appointment-1"
	InteractionPatientAppointments = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient_appointments-1"
	InteractionRegisterPatient     = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.registerpatient-1"
)

// The requested_scope claim of each kind of interaction.
const (
	ScopeOrganizationRead = "organization/*.read"
	ScopePatientRead      = "patient/*.read"
	ScopePatientWrite     = "patient/*.write"
)

// FHIRJSON is GP Connect's media type (Accept and Content-Type).
const FHIRJSON = "application/fhir+json"

// The identifier systems the JWT's resources carry.
const (
	ODSSystem         = "https://fhir.nhs.uk/Id/ods-organization-code"
	SDSUserSystem     = "https://fhir.nhs.uk/Id/sds-user-id"
	SDSRoleSystem     = "https://fhir.nhs.uk/Id/sds-role-profile-id"
	jwtLifetime       = 5 * time.Minute
	maxResponseBytes  = 32 << 20
	reasonDirectCare  = "directcare"
	unknownIdentifier = "UNK"
)

// client makes GP Connect requests to one practice.
type client struct {
	http     *http.Client
	endpoint string // the practice's FHIR base, without a trailing slash
	from, to string // the ASIDs
	issuer   string // Signpost's system URL (iss, requesting_device)
	now      func() time.Time
}

// newClient builds the client of set; tlsc is nil without mutual TLS.
func newClient(set Settings, tlsc *tls.Config, now func() time.Time) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsc
	tr.MaxIdleConnsPerHost = 8
	return &client{http: &http.Client{Transport: tr}, endpoint: strings.TrimRight(set.Endpoint, "/"),
		from: set.ConsumerASID, to: set.PracticeASID, issuer: set.ConsumerURL, now: now}
}

// tlsConfig loads the mutual-TLS material.
func (t *TLS) config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, err
	}
	c.Certificates = []tls.Certificate{cert}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", t.CA)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// request is one GP Connect interaction.
type request struct {
	interaction string
	scope       string // requested_scope
	method      string
	path        string     // below the endpoint: "Slot", "Appointment/12"
	query       url.Values // nil for none; kept in order by the encoder's sort
	rawQuery    string     // used instead of query when set (repeated _include order matters)
	body        any        // JSON-encoded when not nil
	ifMatch     string     // the If-Match header, when not ""
	who         *auth.Principal
}

// response is the practice's answer.
type response struct {
	status int
	body   []byte
	header http.Header
}

// ErrTimeout is the error of an exchange the practice did not answer in
// time (or could not be reached for): errors.Is(err, ErrTimeout).
var ErrTimeout = errors.New("the practice did not answer in time")

// errUnreachable wraps a transport failure that is not a timeout.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string {
	return "the practice could not be reached: " + e.err.Error()
}
func (e *unreachableError) Unwrap() error { return e.err }

// do makes r within ctx and returns the practice's answer, whatever its
// status; the error is a transport failure (ErrTimeout when ctx's
// deadline passed or the connection timed out).
func (c *client) do(ctx context.Context, r request) (*response, error) {
	u := c.endpoint + "/" + r.path
	if r.rawQuery != "" {
		u += "?" + r.rawQuery
	} else if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, err
	}
	jwt, err := c.jwt(r.who, r.scope)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Ssp-TraceID", uuid.NewString())
	req.Header.Set("Ssp-From", c.from)
	req.Header.Set("Ssp-To", c.to)
	req.Header.Set("Ssp-InteractionID", r.interaction)
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Accept", FHIRJSON)
	if body != nil {
		req.Header.Set("Content-Type", FHIRJSON)
	}
	if r.ifMatch != "" {
		req.Header.Set("If-Match", r.ifMatch)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	return &response{status: resp.StatusCode, body: b, header: resp.Header}, nil
}

// transportError classifies a failed exchange.
func transportError(ctx context.Context, err error) error {
	var ne interface{ Timeout() bool }
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w (%v)", ErrTimeout, err)
	}
	return &unreachableError{err: err}
}

// jwt is the unsigned JWT (alg none) of a request made for who with
// requested_scope scope.
func (c *client) jwt(who *auth.Principal, scope string) (string, error) {
	now := c.now().UTC()
	claims := Claims{
		Issuer:                 c.issuer,
		Subject:                practitionerID(who),
		Audience:               c.endpoint,
		Expires:                now.Add(jwtLifetime).Unix(),
		IssuedAt:               now.Unix(),
		ReasonForRequest:       reasonDirectCare,
		RequestedScope:         scope,
		RequestingDevice:       c.device(),
		RequestingOrganization: requestingOrganization(who),
		RequestingPractitioner: requestingPractitioner(who),
	}
	head, err := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(head) + "." + enc.EncodeToString(body) + ".", nil
}

// Claims are the claims of the JWT every request carries (GP Connect
// 1.2's consumer JWT).
type Claims struct {
	Issuer                 string         `json:"iss"`
	Subject                string         `json:"sub"`
	Audience               string         `json:"aud"`
	Expires                int64          `json:"exp"`
	IssuedAt               int64          `json:"iat"`
	ReasonForRequest       string         `json:"reason_for_request"`
	RequestedScope         string         `json:"requested_scope"`
	RequestingDevice       map[string]any `json:"requesting_device"`
	RequestingOrganization map[string]any `json:"requesting_organization"`
	RequestingPractitioner map[string]any `json:"requesting_practitioner"`
}

// device is requesting_device: Signpost, identified by its system URL.
func (c *client) device() map[string]any {
	return map[string]any{
		"resourceType": "Device",
		"identifier":   []any{map[string]any{"system": c.issuer, "value": "signpost"}},
		"model":        "Signpost",
		"version":      "1",
	}
}

// practitionerID is the requesting practitioner's id: the principal's
// subject, else its client, else the unknown marker.
func practitionerID(who *auth.Principal) string {
	switch {
	case who == nil:
		return unknownIdentifier
	case who.Subject != "":
		return who.Subject
	case who.ClientID != "":
		return who.ClientID
	}
	return unknownIdentifier
}

// requestingOrganization is the organisation the principal acts for,
// by ODS code.
func requestingOrganization(who *auth.Principal) map[string]any {
	ods := unknownIdentifier
	if who != nil && who.Organization != "" {
		ods = who.Organization
	}
	return map[string]any{
		"resourceType": "Organization",
		"identifier":   []any{map[string]any{"system": ODSSystem, "value": ods}},
		"name":         ods,
	}
}

// requestingPractitioner is the principal as a Practitioner: its id and
// SDS user id its subject (UNK when unknown: Signpost's users are not
// SDS users), its role profile its Signpost role, its name its client.
func requestingPractitioner(who *auth.Principal) map[string]any {
	id := practitionerID(who)
	role, name := unknownIdentifier, id
	if who != nil {
		if who.Role != "" {
			role = string(who.Role)
		}
		if who.ClientID != "" {
			name = who.ClientID
		}
	}
	return map[string]any{
		"resourceType": "Practitioner",
		"id":           id,
		"identifier": []any{
			map[string]any{"system": SDSUserSystem, "value": unknownIdentifier},
			map[string]any{"system": SDSRoleSystem, "value": role},
			map[string]any{"system": "https://signpost.example/fhir/Id/user", "value": id},
		},
		"name": []any{map[string]any{"family": name}},
	}
}

// ParseJWT decodes the claims of an unsigned GP Connect JWT (tests and
// the stand-in check them): it must have three parts, the last empty.
func ParseJWT(token string) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] != "" {
		return nil, errors.New("not an unsigned JWT (header.payload. with an empty signature)")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c Claims
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}
