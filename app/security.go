package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/signpost-fhir/signpost/api"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// security assembles the API's security configuration: with cfg.Issuer,
// a go-oidc verifier for that issuer; without, the embedded development
// authorisation server under /auth on the same listener, announced loudly
// in the log and, with its demo credentials, on cfg.Console.
func security(cfg Config, st store.Store) (api.Security, *auth.DevServer, error) {
	sec := api.Security{Open: cfg.Open, CORSOrigins: cfg.CORSOrigins, HSTS: cfg.TLS,
		RateLimit: cfg.RateLimit, AuthPath: "/auth"}
	if cfg.Open {
		return sec, nil, nil
	}
	audience := cfg.Audience
	if audience == "" {
		audience = cfg.BaseURL
	}
	if cfg.Issuer != "" {
		v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{Issuer: cfg.Issuer, Audience: audience})
		if err != nil {
			return sec, nil, err
		}
		sec.Verifier = v
		sec.SmartConfiguration = auth.SmartConfiguration(v.SmartEndpoints())
		return sec, nil, nil
	}
	issuer := strings.TrimSuffix(cfg.BaseURL, "/fhir") + "/auth"
	dev, err := auth.NewDevServer(auth.DevServerConfig{Issuer: issuer, Audience: audience, DataDir: cfg.Data,
		Patients: patientDirectory{st}})
	if err != nil {
		return sec, nil, err
	}
	v, err := dev.Verifier(auth.VerifierConfig{})
	if err != nil {
		return sec, nil, err
	}
	sec.Verifier = v
	sec.SmartConfiguration = auth.SmartConfiguration(dev.SmartEndpoints())
	sec.AuthServer = dev.Handler()
	cfg.Logger.Warn(auth.DevWarning, "issuer", issuer, "clients", auth.DevDir(cfg.Data))
	if cfg.Console != nil {
		fmt.Fprint(cfg.Console, dev.Banner())
	}
	return sec, dev, nil
}

// patientDirectory lists the store's patients for the development server's
// patient picker.
type patientDirectory struct{ st store.Store }

// maxPickerPatients bounds the picker's list.
const maxPickerPatients = 100

func (d patientDirectory) Patients(ctx context.Context) ([]auth.PatientChoice, error) {
	page, err := d.st.Search(ctx, &search.Query{Type: "Patient", Count: maxPickerPatients})
	if err != nil {
		return nil, err
	}
	out := make([]auth.PatientChoice, 0, len(page.Resources))
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
		c := auth.PatientChoice{ID: res.ID, Name: "Patient/" + res.ID, BirthDate: p.BirthDate}
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
