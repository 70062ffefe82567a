package devserver

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/auth"
)

// TokenOptions describe a token for MintToken.
type TokenOptions struct {
	// Scope is the space-separated scope string, e.g. "system/*.cruds";
	// default the client's scopes (a known client's, see DemoClient).
	Scope string
	// Patient puts the token in a patient's context (Patient resource id).
	Patient string `validate:"omitempty,max=64"`
	// Org (ODS code) and Role default to the client's.
	Org  string    `validate:"omitempty,alphanum,max=16"`
	Role auth.Role `validate:"omitempty,oneof=referrer provider call-centre auditor patient commissioner operator"`
	// Client is the client_id; default "patient-app" with a Patient, else
	// "gp-system". An unknown client id is allowed and has no defaults.
	Client string `validate:"omitempty,max=64"`
	// TTL is the lifetime; default the server's token lifetime.
	TTL time.Duration `validate:"gte=0,lte=24h"`
}

// MintToken returns an access token signed by the development server whose
// state is in dataDir, for scripts, tests and the README walkthrough. It
// reads the issuer, audience and signing key the server recorded at its last
// start, and builds the token exactly as the token endpoint does (the same
// claims, header and key id): with a patient, like the patient app's
// authorisation-code token; without, like a client_credentials token. The
// scopes are not limited to the client's: whoever can read the data
// directory holds the signing key anyway.
func MintToken(dataDir string, opts TokenOptions) (string, error) {
	if err := validate.Struct(opts); err != nil {
		return "", fmt.Errorf("auth: token options: %w", err)
	}
	dir := auth.DevDir(dataDir)
	var rec issuerRecord
	if err := readJSON(filepath.Join(dir, issuerFile), &rec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("auth: %s has no development server state: start signpost serve with this --data first", dataDir)
		}
		return "", fmt.Errorf("auth: %w", err)
	}
	key, err := auth.LoadOrCreateSigningKey(filepath.Join(dir, signingKeyFile))
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if key.ID() != rec.KeyID {
		return "", fmt.Errorf("auth: %s: signing key %s is not the one the server recorded (%s)", dir, key.ID(), rec.KeyID)
	}
	var clients []*DemoClient
	if err := readJSON(filepath.Join(dir, clientsFile), &clients); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}

	if opts.Client == "" {
		opts.Client = ClientGPSystem
		if opts.Patient != "" {
			opts.Client = ClientPatientApp
		}
	}
	client := &DemoClient{ID: opts.Client}
	for _, c := range clients {
		if c.ID == opts.Client {
			client = c
		}
	}
	scopes := strings.Fields(opts.Scope)
	if len(scopes) == 0 {
		scopes = client.Scopes
	}
	if len(scopes) == 0 {
		return "", fmt.Errorf("auth: token options: no scope given, and client %q has none to default to", opts.Client)
	}
	var g grant
	if opts.Patient != "" {
		g = patientGrant(rec.Audience, client, opts.Patient, scopes)
	} else {
		g = clientGrant(rec.Audience, client, scopes)
	}
	if opts.Org != "" {
		g.Org = opts.Org
	}
	if opts.Role != "" {
		g.Role = opts.Role
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = rec.TokenTTL
	}
	return auth.SignAccessToken(rec.Issuer, key, g.TokenGrant, time.Now().Add(ttl))
}

// clientGrant is the grant of a client_credentials token.
func clientGrant(audience string, c *DemoClient, scopes []string) grant {
	return grant{auth.TokenGrant{Subject: c.ID, ClientID: c.ID, Audience: []string{audience}, Scopes: scopes, Org: c.Organization, Role: c.Role}}
}

// patientGrant is the grant of a token the patient app obtains after the
// user picked patientID (auth.PatientGrant), with the client's
// organisation and role.
func patientGrant(audience string, c *DemoClient, patientID string, scopes []string) grant {
	g := auth.PatientGrant(audience, c.ID, patientID, scopes)
	g.Org, g.Role = c.Organization, c.Role
	return grant{g}
}
