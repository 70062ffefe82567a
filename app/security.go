package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// ubrnIssuerPath is where Signpost's own issuer of $ubrn-access tokens is
// served when professionals sign in through an external issuer.
const ubrnIssuerPath = "/auth/ubrn"

// security assembles the API's security configuration. With cfg.Issuer:
// a go-oidc verifier for that issuer, and Signpost's own issuer of
// $ubrn-access tokens (auth.UBRNIssuer, its discovery document and keys
// under /auth/ubrn), each token verified by the issuer its iss names.
// Without: the embedded development authorisation server under /auth on
// the same listener, announced loudly in the log and, with its demo
// credentials, on cfg.Console, which also issues the $ubrn-access tokens.
// Open, there is neither.
func security(cfg Config, st store.Store) (sec api.Security, dev *devserver.Server, ubrn *auth.UBRNIssuer, err error) {
	sec = api.Security{Open: cfg.Open, CORSOrigins: cfg.CORSOrigins, HSTS: cfg.TLS,
		RateLimit: cfg.RateLimit, AuthPath: "/auth"}
	if cfg.Open {
		return sec, nil, nil, nil
	}
	audience := cfg.Audience
	if audience == "" {
		audience = cfg.BaseURL
	}
	root := strings.TrimSuffix(cfg.BaseURL, "/fhir")
	if cfg.Issuer != "" {
		ext, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{Issuer: cfg.Issuer, Audience: audience})
		if err != nil {
			return sec, nil, nil, err
		}
		// Its key is the store's, so every process serving the store
		// accepts the tokens any of them issued.
		key, err := store.SharedSecret(context.Background(), st, "auth.ubrn-signing-key",
			func() ([]byte, error) { return auth.UBRNKeyPEM(cfg.Data) })
		if err != nil {
			return sec, nil, nil, err
		}
		ubrn, err := auth.NewUBRNIssuer(auth.UBRNIssuerConfig{Issuer: root + ubrnIssuerPath, Audience: audience, DataDir: cfg.Data, Key: key})
		if err != nil {
			return sec, nil, nil, err
		}
		vs, err := auth.NewVerifiers(ext, ubrn)
		if err != nil {
			return sec, nil, nil, err
		}
		sec.Verifier = vs
		sec.SmartConfiguration = auth.SmartConfiguration(ext.SmartEndpoints())
		sec.AuthServer, sec.AuthPath = ubrn.Handler(), ubrnIssuerPath
		cfg.Logger.Info("external issuer for professionals; Signpost's own issuer for $ubrn-access tokens only",
			"issuer", cfg.Issuer, "ubrn_issuer", ubrn.Issuer())
		return sec, nil, ubrn, nil
	}
	issuer := root + "/auth"
	dev, err = devserver.New(devserver.Config{Issuer: issuer, Audience: audience, DataDir: cfg.Data,
		Patients: patientDirectory{st}, PortalRedirectURIs: []string{portalRedirect(cfg)}})
	if err != nil {
		return sec, nil, nil, err
	}
	v, err := dev.Verifier(auth.VerifierConfig{})
	if err != nil {
		return sec, nil, nil, err
	}
	sec.Verifier = v
	sec.SmartConfiguration = auth.SmartConfiguration(dev.SmartEndpoints())
	sec.AuthServer = dev.Handler()
	cfg.Logger.Warn(devserver.Warning, "issuer", issuer, "clients", auth.DevDir(cfg.Data))
	if cfg.Console != nil {
		fmt.Fprint(cfg.Console, dev.Banner())
	}
	return sec, dev, nil, nil
}

// patientDirectory lists the store's patients for the development server's
// patient picker.
type patientDirectory struct{ st store.Store }

// maxPickerPatients bounds the picker's list.
const maxPickerPatients = 100

func (d patientDirectory) Patients(ctx context.Context) ([]devserver.PatientChoice, error) {
	page, err := d.st.Search(ctx, &search.Query{Type: "Patient", Count: maxPickerPatients})
	if err != nil {
		return nil, err
	}
	out := make([]devserver.PatientChoice, 0, len(page.Resources))
	for _, res := range page.Resources {
		var p struct {
			Name []struct {
				Text   string   `json:"text"`
				Family string   `json:"family"`
				Given  []string `json:"given"`
			} `json:"name"`
			Identifier []struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"identifier"`
			BirthDate string `json:"birthDate"`
		}
		_ = json.Unmarshal(res.JSON, &p)
		c := devserver.PatientChoice{ID: res.ID, Name: "Patient/" + res.ID, BirthDate: p.BirthDate}
		if len(p.Name) > 0 {
			n := p.Name[0]
			if n.Text != "" {
				c.Name = n.Text
			} else if full := strings.TrimSpace(strings.Join(append(n.Given, n.Family), " ")); full != "" {
				c.Name = full
			}
		}
		for _, id := range p.Identifier {
			if id.System == "https://fhir.nhs.uk/Id/nhs-number" {
				c.NHSNumber = id.Value
			}
		}
		out = append(out, c)
	}
	return out, nil
}
