package access

// The audit of refused writes: a write the authorisation rules (or a
// domain rule after them) refuse is never stored, so the record of its
// request names what it targeted (the resource, and the patients whose
// compartment it would have touched), for an auditor who searches the
// trail by resource (AuditEvent?entity=Type/id) or by patient.

import (
	"context"
	"slices"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// noteWrite records the target of a write in the request's audit record.
// A write that is stored is audited in its transaction and the request's
// record is dropped; a refused one leaves this entity in the record of the
// failed request.
func noteWrite(ctx context.Context, c *write.Change) {
	audit.Note(ctx, c.Type, c.ID, "")
}

// noteRefusedWrite adds to the request's audit record the patients whose
// compartment the refused write's current or proposed resource is in.
func (g *Guard) noteRefusedWrite(ctx context.Context, c *write.Change) {
	if !audit.Recording(ctx) || !search.InCompartmentType(c.Type) {
		return
	}
	var patients []string
	add := func(raw []byte) {
		for _, id := range search.CompartmentPatients(g.cfg.Search, c.Type, c.ID, raw) {
			if !slices.Contains(patients, id) {
				patients = append(patients, id)
			}
		}
	}
	if c.Old != nil {
		add(c.Old.JSON)
	}
	if c.New != nil {
		add(c.New.Bytes())
	}
	for _, id := range patients {
		audit.Note(ctx, "Patient", id, "")
	}
}
