package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// TokenOptions describe a token for MintToken.
type TokenOptions struct {
	// Scope is the space-separated scope string, e.g. "system/*.cruds".
	Scope string `validate:"required"`
	// Patient puts the token in a patient's context (Patient resource id).
	Patient string `validate:"omitempty,max=64"`
	// Org (ODS code) and Role default to the client's.
	Org  string `validate:"omitempty,alphanum,max=16"`
	Role Role   `validate:"omitempty,oneof=referrer provider call-centre auditor patient commissioner"`
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
	dir := DevDir(dataDir)
	var rec issuerRecord
	if err := readJSON(filepath.Join(dir, issuerFile), &rec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("auth: %s has no development server state: start signpost serve with this --data first", dataDir)
		}
		return "", fmt.Errorf("auth: %w", err)
	}
	key, err := loadOrCreateRSAKey(filepath.Join(dir, signingKeyFile))
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if key.id != rec.KeyID {
		return "", fmt.Errorf("auth: %s: signing key %s is not the one the server recorded (%s)", dir, key.id, rec.KeyID)
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
	var g grant
	if opts.Patient != "" {
		g = patientGrant(rec.Audience, client, opts.Patient, scopes)
	} else {
		g = clientGrant(rec.Audience, client, scopes)
	}
	if opts.Org != "" {
		g.org = opts.Org
	}
	if opts.Role != "" {
		g.role = opts.Role
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = rec.TokenTTL
	}
	return signAccessToken(rec.Issuer, key, g, time.Now().Add(ttl), tokenID())
}

// signAccessToken builds and signs an access token the way zitadel's
// op.CreateJWT does for the token endpoint.
func signAccessToken(issuer string, key op.SigningKey, g grant, exp time.Time, jti string) (string, error) {
	claims := oidc.NewAccessTokenClaims(issuer, g.subject, g.audience, exp, jti, g.clientID, 0)
	claims.Claims = g.privateClaims()
	signer, err := op.SignerFromKey(key)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	tok, err := crypto.Sign(claims, signer)
	if err != nil {
		return "", fmt.Errorf("auth: signing token: %w", err)
	}
	return tok, nil
}

// clientGrant is the grant of a client_credentials token.
func clientGrant(audience string, c *DemoClient, scopes []string) grant {
	return grant{subject: c.ID, clientID: c.ID, audience: []string{audience}, scopes: scopes, org: c.Organization, role: c.Role}
}

// patientGrant is the grant of a token the patient app obtains after the
// user picked patientID. Its audience names the client too, as the ID token
// issued alongside must.
func patientGrant(audience string, c *DemoClient, patientID string, scopes []string) grant {
	return grant{
		subject:  "Patient/" + patientID,
		clientID: c.ID,
		audience: []string{audience, c.ID},
		scopes:   scopes,
		patient:  patientID,
		fhirUser: strings.TrimSuffix(audience, "/") + "/Patient/" + patientID,
		org:      c.Organization,
		role:     c.Role,
	}
}
