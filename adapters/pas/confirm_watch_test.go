package pas

// TEMPORARY, until outbound.go's Watch (branch h-out) is merged: it hands
// a pas-confirmed instance's changes to watchRequest, as that Watch does.
// Delete this file at the merge.

import (
	"context"

	"github.com/signpost-fhir/signpost/domain/write"
)

func (a *Adapter) Watched() []string { return []string{"Appointment"} }

func (a *Adapter) Watch(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if a.set.Mode == ModePASConfirmed {
		return a.watchRequest(ctx, tx, c)
	}
	return nil
}
