package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/signpost-fhir/signpost/adapters"
	_ "github.com/signpost-fhir/signpost/adapters/gpconnect" // gpconnect: a GP practice over GP Connect
	_ "github.com/signpost-fhir/signpost/adapters/pas"       // hl7v2-pas: a hospital PAS over HL7 v2 and MLLP
)

// The adapter kinds built into Signpost are imported above: each registers
// its kind with package adapters from its init.

// startAdapters configures the instances cfg.Adapters enables, adds their
// operations to the API and starts them. The domain must be assembled:
// the instances register their write rule on the write path and act
// through it as soon as they start.
func (a *App) startAdapters() error {
	f := a.Config.Adapters
	if f == nil {
		f = &adapters.File{}
	}
	set, err := adapters.Build(f, adapters.Env{Writes: a.Writes, Logger: a.Config.Logger,
		Location: a.Location, BaseURL: a.Config.BaseURL, Booking: a.Booking, Referral: a.Referral})
	if err != nil {
		return fmt.Errorf("adapters: %w", err)
	}
	for _, op := range set.Operations() {
		a.API.AddOperation(op)
	}
	if err := set.Start(context.Background()); err != nil {
		return fmt.Errorf("adapters: %w", err)
	}
	a.Adapters = set
	return nil
}

// adapterReadiness is /readyz's line per adapter instance: its name, kind,
// state and detail (never its last error, which may name hosts: the
// operator view, behind a token, has it). An instance down or degraded
// does not withdraw readiness.
func (a *App) adapterReadiness(ctx context.Context) []string {
	if a.Adapters == nil {
		return nil
	}
	var out []string
	for _, st := range a.Adapters.Status(ctx) {
		line := fmt.Sprintf("adapter %s (%s): %s", st.Name, st.Kind, st.State)
		if st.Detail != "" {
			line += ": " + strings.ReplaceAll(st.Detail, "\n", " ")
		}
		out = append(out, line)
	}
	return out
}
