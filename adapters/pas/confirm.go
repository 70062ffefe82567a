package pas

import (
	"context"

	"github.com/signpost-fhir/signpost/domain/write"
)

// watchRequest handles the request profile's outbound changes; see confirm.go's owner.
func (a *Adapter) watchRequest(ctx context.Context, tx *write.Tx, c *write.Change) error { return nil }
