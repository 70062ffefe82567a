package api

// Access decisions for writes: authorizeWrite is the repo rule run inside
// the transaction of every write, whichever way it arrives (REST, Bundle
// entry, operation); it checks scopes, the patient compartment, granular
// scope queries and the organisation rules, then records the write in the
// audit trail.

import (
	"context"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/repo"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// authorizeWrite is the repo rule, registered for every writable type,
// that checks each write against the caller's scopes, patient compartment
// and organisation, whichever way it arrives (REST, Bundle entry,
// operation), and records it in the audit trail in the same transaction.
func (s *Server) authorizeWrite(ctx context.Context, tx *repo.Tx, c *repo.Change) error {
	p := s.principal(ctx)
	if p == nil {
		return nil
	}
	in := auth.Update
	switch {
	case c.New == nil:
		in = auth.Delete
	case c.Old == nil:
		in = auth.Create
	}
	noteWrite(ctx, c) // a write refused here or by a later rule is audited with its target
	if err := s.checkWrite(ctx, tx, p, c, in); err != nil {
		s.noteRefusedWrite(ctx, c)
		return s.denied(ctx, err)
	}
	return s.auditWrite(ctx, tx, p, c, in)
}

func (s *Server) checkWrite(ctx context.Context, tx *repo.Tx, p *auth.Principal, c *repo.Change, in auth.Interaction) error {
	if c.Type == auditType {
		return forbidden("AuditEvents are written only by the server")
	}
	var patient string
	info := infoOf(ctx)
	sideEffect := info != nil && info.target != "" && info.target != c.Type
	if operationOf(ctx) != nil || sideEffect {
		// The operation (or the write the client asked for) was
		// authorised; what it writes besides, for a caller in a patient
		// context, must stay within that patient's compartment.
		if !inCompartmentType(c.Type) || !p.HasPatientContext() || p.Decide(c.Type, in).Unrestricted {
			return nil
		}
		patient = patientOf(p)
	} else {
		r, err := s.restrict(ctx, p, c.Type, in)
		if err != nil {
			return err
		}
		switch {
		case r.queried && r.granted != nil:
			// Granular scopes (SMART v2 "patient/Appointment.cu?status=proposed"):
			// the resource must match a grant before and after the write.
			if err := s.checkGranularWrite(c, r.granted); err != nil {
				return err
			}
		case r.patient != "" && r.filter != nil:
			patient = r.patient
		}
		if err := s.checkOrgWrite(ctx, tx, p, c); err != nil {
			return err
		}
		if org := s.orgFilter(p, c.Type); org != nil && c.Old != nil {
			page, err := tx.Search(ctx, &search.Query{Type: c.Type, Filter: []search.Expr{org, search.IDIn{IDs: []string{c.ID}}}, Count: 1})
			if err != nil {
				return err
			}
			if len(page.Resources) == 0 {
				return forbidden("%s/%s is not a referral of organisation %s", c.Type, c.ID, p.Organization)
			}
		}
	}
	if patient == "" {
		return nil
	}
	if c.Old != nil && !s.inCompartment(c.Type, c.ID, c.Old.JSON, patient) {
		return forbidden("%s/%s is not in the compartment of the patient in context", c.Type, c.ID)
	}
	if c.New != nil && !s.inCompartment(c.Type, c.ID, c.New.Bytes(), patient) {
		return forbidden("the %s does not belong to the patient in context (Patient/%s)", c.Type, patient)
	}
	return nil
}

// checkGranularWrite checks a write under granular scopes: the current
// version (update, delete) and the proposed one (create, update) must each
// be reachable through the scopes' grants (granted: an Or over the grants
// of the patient compartment and each scope's query), evaluated on the
// resource in memory. A query that needs other resources (a chain, _has)
// cannot be decided on one resource and grants no write.
func (s *Server) checkGranularWrite(c *repo.Change, granted search.Expr) error {
	reg, ok := s.search.(*search.Registry)
	if !ok {
		return forbidden("this server cannot check granular (query) scopes on writes; writing %s needs a scope without a query", c.Type)
	}
	q := &search.Query{Type: c.Type, Filter: []search.Expr{granted}}
	match := func(raw []byte) (bool, error) {
		res := &fhir.Resource{Type: c.Type, ID: c.ID, Version: 1, JSON: raw}
		o, err := search.NewOracle(reg, []*fhir.Resource{res})
		if err != nil {
			return false, err
		}
		return o.Match(q, res), nil
	}
	if c.Old != nil {
		ok, err := match(c.Old.JSON)
		if err != nil {
			return err
		}
		if !ok {
			return forbidden("%s/%s does not match the access token's granular scopes for %s", c.Type, c.ID, c.Type)
		}
	}
	if c.New != nil {
		ok, err := match(c.New.Bytes())
		if err != nil {
			return err
		}
		if !ok {
			return forbidden("the %s written does not match the access token's granular scopes for %s (e.g. patient/%s.cu?status=…: the resource must match the query, and belong to the patient in context)", c.Type, c.Type, c.Type)
		}
	}
	return nil
}
