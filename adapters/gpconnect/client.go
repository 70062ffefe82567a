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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/auth"
)

// FHIRJSON is GP Connect's media type (Accept and Content-Type).
const FHIRJSON = "application/fhir+json"

// The JWT's fixed values.
const (
	maxResponseBytes  = 32 << 20
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

// config loads the mutual-TLS material: the client certificate, and the
// CA that verifies the practice.
func (t *TLS) config() (*tls.Config, error) { return adapters.TLSConfig(t.Cert, t.Key, t.CA) }

// request is one GP Connect interaction.
type request struct {
	interaction string // Ssp-InteractionID (stu3.Interaction…); the JWT's requested_scope follows from it
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
	jwt, err := c.jwt(r.who, stu3.ScopeOf(r.interaction))
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
	return stu3.EncodeUnsigned(&stu3.Claims{
		Iss:                    c.issuer,
		Sub:                    practitionerID(who),
		Aud:                    stu3.Audience,
		Exp:                    now.Add(stu3.MaxTokenLife * time.Second).Unix(),
		Iat:                    now.Unix(),
		ReasonForRequest:       stu3.ReasonDirectCare,
		RequestedScope:         scope,
		RequestingDevice:       c.device(),
		RequestingOrganization: requestingOrganization(who),
		RequestingPractitioner: requestingPractitioner(who),
	})
}

// device is requesting_device: Signpost, identified by its system URL.
func (c *client) device() *stu3.Device {
	return &stu3.Device{ResourceType: "Device",
		Identifier: []stu3.Identifier{{System: c.issuer, Value: "signpost"}},
		Model:      "Signpost", Version: "1"}
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
func requestingOrganization(who *auth.Principal) *stu3.Organization {
	ods := unknownIdentifier
	if who != nil && who.Organization != "" {
		ods = who.Organization
	}
	return &stu3.Organization{ResourceType: "Organization",
		Identifier: []stu3.Identifier{{System: stu3.ODSOrganizationSystem, Value: ods}},
		Name:       ods}
}

// requestingPractitioner is the principal as a Practitioner: its id its
// subject; its SDS user id unknown (Signpost's users are not SDS users),
// its SDS role profile its Signpost role; its name its client.
func requestingPractitioner(who *auth.Principal) *stu3.Practitioner {
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
	return &stu3.Practitioner{ResourceType: "Practitioner", ID: id,
		Identifier: []stu3.Identifier{
			{System: stu3.SDSUserSystem, Value: unknownIdentifier},
			{System: stu3.SDSRoleProfileSystem, Value: role},
			{System: "https://signpost.example/fhir/Id/user", Value: id},
		},
		Name: []stu3.HumanName{{Family: name}}}
}
