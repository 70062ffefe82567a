package app

import (
	"context"
	"fmt"

	"github.com/signpost-fhir/signpost/adapters"
	_ "github.com/signpost-fhir/signpost/adapters/pas" // hl7v2-pas: a hospital PAS over HL7 v2 and MLLP
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
