package access

// Access decisions for writes: authorizeWrite is the repo rule run inside
// the transaction of every write, whichever way it arrives (REST, Bundle
// entry, operation, a domain rule's consequence); it checks scopes, the
// patient compartment, granular scope queries and the organisation rules,
// then records the write in the audit trail. A write a domain rule makes
// as the consequence of another is checked by the grant it declares
// (write.Consequence), never let through unchecked.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// authorizeWrite is the repo rule, registered for every writable type,
// that checks each write against the caller's scopes, patient compartment
// and organisation, whichever way it arrives (REST, Bundle entry,
// operation), and records it in the audit trail in the same transaction.
// In a precheck (write.Tx.Probing: the rules run on the committed state
// before the transaction) it checks alike but records nothing, neither
// the write nor a refusal: the transaction that follows does.
func (g *Guard) authorizeWrite(ctx context.Context, tx *write.Tx, c *write.Change) error {
	p := g.principal(ctx)
	if p == nil {
		return nil
	}
	in := interactionOfChange(c)
	noteWrite(ctx, c) // a write refused here or by a later rule is audited with its target
	if err := g.checkWrite(ctx, tx, p, c, in); err != nil {
		if tx.Probing() {
			return err // a precheck settles no refusal of access: the transaction does, and records it
		}
		g.noteRefusedWrite(ctx, c)
		return g.denied(ctx, g.unnamed(ctx, tx, c, err))
	}
	if tx.Probing() {
		return nil // a precheck writes nothing: the write's own transaction records it
	}
	op := ""
	if o := operationOf(ctx); o != nil {
		op = o.Name
	}
	return g.cfg.Audit.RecordWrite(ctx, tx, p, c, in, op)
}

// unnamed keeps a refusal from naming what it refused when the caller may
// not read it: a write a rule makes besides the one asked for may touch a
// resource the caller has never seen.
func (g *Guard) unnamed(ctx context.Context, tx *write.Tx, c *write.Change, err error) error {
	fe := fhir.AsError(err)
	name := c.Type + "/" + c.ID
	named := false
	for _, is := range fe.Issues {
		named = named || strings.Contains(is.Diagnostics, name)
	}
	if !named || c.Old == nil {
		return err
	}
	if seen, verr := g.visible(ctx, tx, c.Type, c.ID); verr != nil || seen {
		return err
	}
	out := *fe
	out.Issues = slices.Clone(fe.Issues)
	for i := range out.Issues {
		out.Issues[i].Diagnostics = strings.ReplaceAll(out.Issues[i].Diagnostics, name, "a "+c.Type+" the access token cannot read")
	}
	return &out
}

// AuthorizeChange checks, before a change is worked out (a PATCH), that
// the caller may change cur at all, as authorizeWrite will check it.
func (g *Guard) AuthorizeChange(ctx context.Context, tx *write.Tx, cur *fhir.Resource) error {
	p := g.principal(ctx)
	if p == nil {
		return nil
	}
	c := &write.Change{Type: cur.Type, ID: cur.ID, Old: cur}
	noteWrite(ctx, c) // refused here, it is audited with its target
	var err error = forbidden("AuditEvents are written only by the server")
	if cur.Type != audit.Type {
		err = g.checkDirect(ctx, tx, p, c, auth.Update)
	}
	if err != nil {
		g.noteRefusedWrite(ctx, c)
		return g.denied(ctx, g.unnamed(ctx, tx, c, err))
	}
	return nil
}

func interactionOfChange(c *write.Change) auth.Interaction {
	switch {
	case c.New == nil:
		return auth.Delete
	case c.Old == nil:
		return auth.Create
	}
	return auth.Update
}

func (g *Guard) checkWrite(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change, in auth.Interaction) error {
	if c.Type == audit.Type {
		return forbidden("AuditEvents are written only by the server")
	}
	if cq, ok := write.ConsequenceOf(ctx, c); ok {
		return g.checkConsequence(ctx, tx, p, c, in, cq)
	}
	return g.checkDirect(ctx, tx, p, c, in)
}

// checkConsequence checks a write a domain rule declared as the
// consequence of another (write.Consequence) by the grant it declares.
func (g *Guard) checkConsequence(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change, in auth.Interaction, cq write.Consequence) error {
	switch cq.Grant {
	case write.WithCause:
		// Part of the write that causes it, which was checked itself; for a
		// caller in a patient context it must still stay within the
		// patient's compartment, as before.
		if !search.InCompartmentType(c.Type) || !p.HasPatientContext() || p.Decide(c.Type, in).Unrestricted {
			return nil
		}
		return g.checkCompartment(c, patientOf(p))
	case write.ToWritersOf:
		if len(cq.On) == 0 {
			break
		}
		for _, ref := range cq.On {
			typ, id, ok := fhir.SplitReference(ref)
			if !ok {
				return forbidden("the change to a %s that follows %s is granted to writers of %q, which is not a reference", c.Type, cq.Of, ref)
			}
			cur, err := tx.Read(ctx, typ, id)
			if err != nil {
				return forbidden("the change to a %s that follows %s is granted to those who may update the %s it follows", c.Type, cq.Of, typ)
			}
			obj, err := fhir.ParseObject(cur.JSON)
			if err != nil {
				return err
			}
			if err := g.checkDirect(ctx, tx, p, &write.Change{Type: typ, ID: id, Old: cur, New: obj}, auth.Update); err != nil {
				if seen, _ := g.visible(ctx, tx, typ, id); !seen {
					ref = "a " + typ + " it cannot read"
				}
				return forbidden("the change to a %s that follows %s is granted to those who may update %s; the access token may not", c.Type, cq.Of, ref)
			}
		}
		return nil
	case write.ToReadersOf:
		for _, ref := range cq.On {
			typ, id, ok := fhir.SplitReference(ref)
			if !ok {
				continue
			}
			seen, err := g.visible(ctx, tx, typ, id)
			if err != nil {
				return err
			}
			if seen {
				return nil
			}
		}
	}
	return forbidden("the change to a %s that follows %s is not the access token's to make", c.Type, cq.Of)
}

// checkDirect checks a write the caller makes itself: its scopes (with the
// patient compartment and granular queries) and the organisation rules,
// before and after.
func (g *Guard) checkDirect(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change, in auth.Interaction) error {
	r, err := g.restrict(ctx, p, c.Type, in)
	if err != nil {
		return err
	}
	var patient string
	switch {
	case r.queried && r.granted != nil:
		// Granular scopes (SMART v2 "patient/Appointment.cu?status=proposed"):
		// the resource must match a grant before and after the write.
		if err := g.checkGranularWrite(c, r.granted); err != nil {
			return err
		}
	case r.patient != "" && r.filter != nil:
		patient = r.patient
	}
	if err := g.checkOwner(ctx, tx, p, c); err != nil {
		return err
	}
	if err := g.checkOrgWrite(ctx, tx, p, c); err != nil {
		return err
	}
	if err := g.checkOrgReach(ctx, tx, p, c); err != nil {
		return err
	}
	if patient == "" {
		return nil
	}
	return g.checkCompartment(c, patient)
}

// checkOwner lets only its owner change or delete a Subscription
// (ownerFilter); to anyone else it does not exist.
func (g *Guard) checkOwner(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change) error {
	if c.Type != "Subscription" || c.Old == nil {
		return nil
	}
	page, err := tx.Search(ctx, &search.Query{Type: c.Type, Filter: []search.Expr{ownerFilter(p), search.IDIn{IDs: []string{c.ID}}}, Count: 1})
	if err != nil {
		return err
	}
	if len(page.Resources) == 0 {
		return hidden(c.Type, c.ID)
	}
	return nil
}

// checkCompartment requires both versions of a write to be in patient's
// compartment.
func (g *Guard) checkCompartment(c *write.Change, patient string) error {
	if c.Old != nil && !g.inCompartment(c.Type, c.ID, c.Old.JSON, patient) {
		return forbidden("%s/%s is not in the compartment of the patient in context", c.Type, c.ID)
	}
	if c.New != nil && !g.inCompartment(c.Type, c.ID, c.New.Bytes(), patient) {
		return forbidden("the %s does not belong to the patient in context (Patient/%s)", c.Type, patient)
	}
	return nil
}

// checkOrgReach applies the organisation rule (orgFilter) to a write by a
// referrer or provider: what it changes or deletes must be within its
// reach; an appointment it writes must stay within it; and the patients
// an appointment it writes names must be ones it has a relationship with
// (or registers in the same transaction). A patient it does not reach is
// refused alike whether it exists or not.
func (g *Guard) checkOrgReach(ctx context.Context, tx *write.Tx, p *auth.Principal, c *write.Change) error {
	org := g.orgFilter(p, c.Type)
	if org == nil {
		return nil
	}
	if c.Old != nil {
		page, err := tx.Search(ctx, &search.Query{Type: c.Type, Filter: []search.Expr{org, search.IDIn{IDs: []string{c.ID}}}, Count: 1})
		if err != nil {
			return err
		}
		if len(page.Resources) == 0 {
			return forbidden("%s/%s is not within the reach of organisation %s", c.Type, c.ID, p.Organization)
		}
	}
	if c.Type != "Appointment" || c.New == nil {
		return nil
	}
	res := &fhir.Resource{Type: c.Type, ID: c.ID, Version: 1, JSON: c.New.Bytes()}
	ok, err := g.matchOne(ctx, tx, res, org)
	if err != nil {
		return err
	}
	if !ok {
		if p.Role == auth.RoleProvider {
			return forbidden("the Appointment written is not at a service, location or schedule of organisation %s", p.Organization)
		}
		return forbidden("the Appointment written is neither based on a referral of organisation %s nor for a patient registered with it", p.Organization)
	}
	before := map[string]bool{}
	if c.Old != nil {
		for _, ref := range g.patientsOf(c.Old.JSON) {
			before[ref] = true
		}
	}
	patients, err := g.restrict(ctx, p, "Patient", auth.Read)
	if err != nil {
		return forbidden("the access token cannot read the Patient an Appointment is for")
	}
	for _, id := range g.patientsOf(c.New.Bytes()) {
		if before[id] || tx.Created("Patient", id) {
			continue
		}
		ok, err := g.reaches(ctx, tx, patients, "Patient", id)
		if err != nil {
			return err
		}
		if !ok {
			return forbidden("Appointment.participant: Patient/%s is not a patient organisation %s has a relationship with "+
				"(registered with or managed by it, or named on one of its referrals or appointments); trace the patient and refer them first", id, p.Organization)
		}
	}
	return nil
}

// patientsOf returns the ids of the Patients an Appointment's participants
// name.
func (g *Guard) patientsOf(raw []byte) []string {
	var a struct {
		Participant []struct {
			Actor struct {
				Reference string `json:"reference"`
			} `json:"actor"`
		} `json:"participant"`
	}
	_ = json.Unmarshal(raw, &a)
	var out []string
	for _, pt := range a.Participant {
		if typ, id, ok := fhir.SplitReference(pt.Actor.Reference); ok && typ == "Patient" {
			out = append(out, id)
		}
	}
	return out
}

// checkGranularWrite checks a write under granular scopes: the current
// version (update, delete) and the proposed one (create, update) must each
// be reachable through the scopes' grants (granted: an Or over the grants
// of the patient compartment and each scope's query), evaluated on the
// resource in memory. A query that needs other resources (a chain, _has)
// cannot be decided on one resource and grants no write.
func (g *Guard) checkGranularWrite(c *write.Change, granted search.Expr) error {
	reg, ok := g.cfg.Search.(*search.Registry)
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
