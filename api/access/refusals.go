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
	if !audit.Recording(ctx) || !inCompartmentType(c.Type) {
		return
	}
	var patients []string
	add := func(raw []byte) {
		for _, id := range g.compartmentPatients(c.Type, c.ID, raw) {
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

// compartmentPatients lists the patients whose compartment the resource
// typ/id with body raw is in.
func (g *Guard) compartmentPatients(typ, id string, raw []byte) []string {
	if typ == "Patient" {
		return []string{id}
	}
	params := compartmentParams()[typ]
	entries, err := g.cfg.Search.Extract(typ, raw)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type == search.Reference && e.RefType == "Patient" && e.RefID != "" &&
			slices.Contains(params, e.Param) && !slices.Contains(out, e.RefID) {
			out = append(out, e.RefID)
		}
	}
	return out
}
