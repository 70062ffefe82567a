package app

// Bulk data: FHIR Bulk Data $export (domain/export), its jobs run in the
// background and kept under <data>/export, and SMART Scheduling Links'
// public $bulk-publish (domain/publish).

import (
	"context"
	"path/filepath"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/export"
	"github.com/signpost-fhir/signpost/domain/publish"
)

// startBulk builds the export and publishing services, registers their
// operations and starts the export jobs (resuming those a restart
// interrupted); the returned function stops them.
func (a *App) startBulk(ctx context.Context) (stop func(), err error) {
	a.Export, err = export.New(export.Config{Dir: filepath.Join(a.Config.Data, "export"), BaseURL: a.Config.BaseURL,
		Types: conformance.Types().Writable, Open: a.Config.Open, Logger: a.Config.Logger}, a.Writes, a.Search)
	if err != nil {
		return nil, err
	}
	for _, op := range a.Export.Operations() {
		a.API.AddOperation(op)
	}
	a.Publish = publish.New(publish.Config{BaseURL: a.Config.BaseURL}, a.Writes)
	for _, op := range a.Publish.Operations() {
		a.API.AddOperation(op)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Export.Run(ctx)
	}()
	return func() { cancel(); <-done }, nil
}
