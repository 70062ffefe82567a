package pas

// ADT: the PAS's patient messages, applied to Patients as the HL7
// v2-to-FHIR implementation guide maps PID (identifiers, names, birth
// date, sex by table 0001, addresses, telecoms, death):
//
//   - A04 (register) and A28 (add person), A08 (update) and A31 (update
//     person): the Patient is matched on the NHS number (a PID-3
//     repetition with assigning authority NHS or type NH), then on the
//     PAS number (another PID-3 repetition, or PID-2, under
//     settings.pas_number_system); found, its demographics become the
//     PAS's (other elements, such as the GP, stay); not found, it is
//     created, managed by the trust (managingOrganization, so that the
//     trust's organisation rules reach it), and an A08 or A31 says so in
//     MSA-3;
//   - A40 (merge): the patient MRG-1 names becomes inactive with a link
//     replaced-by to the one PID names (which gets a link replaces), and
//     its future appointments at the PAS's services move to the survivor
//     (each cancelled and booked again in the same slots for the
//     survivor, as a reschedule; the amendment rules let no booked
//     appointment change patient in place).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// adtRegister applies ADT^A04 and A28.
func (a *Adapter) adtRegister(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	_, created, err := a.upsertPatient(ctx, tx, m)
	if err != nil || created {
		return "", err
	}
	return "the patient was known: updated", nil
}

// adtUpdate applies ADT^A08 and A31.
func (a *Adapter) adtUpdate(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	res, created, err := a.upsertPatient(ctx, tx, m)
	if err != nil || !created {
		return "", err
	}
	return fmt.Sprintf("the patient was not known to Signpost: created as Patient/%s", res.ID), nil
}

// patientIDs are the identifiers a PID (or MRG) gives, and where.
type patientIDs struct {
	nhs, pas       string
	nhsAt, pasAt   string
	field, segment string
}

// idsOf reads the NHS and PAS numbers of the CX list at field (PID-3,
// MRG-1), falling back on alt (PID-2) for the PAS number.
func idsOf(m *hl7v2.Message, field, alt string) (patientIDs, error) {
	ids := patientIDs{field: field}
	for _, rep := range append(repetitions(m, field), repetitions(m, alt)...) {
		v := m.Get(rep + ".1")
		if v == "" {
			continue
		}
		authority, typ := m.Get(rep+".4"), m.Get(rep+".5")
		switch {
		case strings.EqualFold(authority, "NHS") || typ == "NH":
			if ids.nhs == "" {
				if err := referral.CheckNHSNumber(v); err != nil {
					return ids, reject(rep, hl7v2.CodeDataType, "%v", err)
				}
				ids.nhs, ids.nhsAt = v, rep
			}
		case ids.pas == "" && (typ == "" || typ == "PI" || typ == "MR" || typ == "PT"):
			ids.pas, ids.pasAt = v, rep
		}
	}
	if ids.nhs == "" && ids.pas == "" {
		return ids, reject(field, hl7v2.CodeRequiredMissing, "%s carries neither an NHS number (authority NHS, type NH) nor a PAS number (type PI or MR)", field)
	}
	return ids, nil
}

// findPatient returns the Patient with the NHS number, else the PAS
// number, of ids; nil when none has either.
func (a *Adapter) findPatient(ctx context.Context, tx *write.Tx, ids patientIDs) (*fhir.Resource, error) {
	try := func(system, value string) (*fhir.Resource, error) {
		if value == "" {
			return nil, nil
		}
		page, err := tx.Search(ctx, &search.Query{Type: "Patient", Count: 2, Filter: []search.Expr{
			search.TokenIn{Param: "identifier", System: system, HasSystem: true, Codes: []string{value}}}})
		if err != nil || len(page.Resources) == 0 {
			return nil, err
		}
		return page.Resources[0], nil
	}
	res, err := try(referral.NHSNumberSystem, ids.nhs)
	if res != nil || err != nil {
		return res, err
	}
	return try(a.set.PASNumberSystem, ids.pas)
}

// patientOf finds the patient of an SIU message (PID-3): AE when Signpost
// does not know them.
func (a *Adapter) patientOf(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (*fhir.Resource, error) {
	ids, err := idsOf(m, "PID-3", "PID-2")
	if err != nil {
		return nil, err
	}
	res, err := a.findPatient(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, failure("PID-3", hl7v2.CodeUnknownKey, "no patient has NHS number %q or PAS number %q: register them (ADT^A04 or A28) first", ids.nhs, ids.pas)
	}
	return res, nil
}

// upsertPatient applies the PID of m to the Patient it identifies, or
// creates one, and reports whether it created it.
func (a *Adapter) upsertPatient(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (*fhir.Resource, bool, error) {
	if err := needSegments(m, "PID"); err != nil {
		return nil, false, err
	}
	ids, err := idsOf(m, "PID-3", "PID-2")
	if err != nil {
		return nil, false, err
	}
	p, err := a.patientFrom(m, ids)
	if err != nil {
		return nil, false, err
	}
	cur, err := a.findPatient(ctx, tx, ids)
	if err != nil {
		return nil, false, err
	}
	if cur == nil {
		if ref, err := a.trust(ctx, tx); err != nil {
			return nil, false, err
		} else if ref != "" {
			p.ManagingOrganization = &r4.Reference{Reference: elem.Opt(ref)}
		}
		obj, err := toObject(p)
		if err != nil {
			return nil, false, err
		}
		res, err := tx.Create(ctx, "Patient", obj)
		return res, true, at("PID-3", err)
	}
	obj, err := fhir.ParseObject(cur.JSON)
	if err != nil {
		return nil, false, err
	}
	mergeDemographics(obj, p)
	res, _, err := tx.Put(ctx, "Patient", cur.ID, obj, cur.Version)
	return res, false, at("PID-3", err)
}

// trust returns a reference to the Organization the instance acts for
// (by its ODS code), or "" when Signpost has none.
func (a *Adapter) trust(ctx context.Context, tx *write.Tx) (string, error) {
	page, err := tx.Search(ctx, &search.Query{Type: "Organization", Count: 1, Filter: []search.Expr{
		search.TokenIn{Param: "identifier", System: referral.ODSSystem, HasSystem: true, Codes: []string{a.env.Principal.Organization}}}})
	if err != nil || len(page.Resources) == 0 {
		return "", err
	}
	return "Organization/" + page.Resources[0].ID, nil
}

// mergeDemographics writes the PAS's demographics p into obj: the
// elements the PAS gave replace Signpost's, its identifiers are added
// (an NHS number replacing a different one), everything else stays.
func mergeDemographics(obj *fhir.Object, p *r4.Patient) {
	var ids []r4.Identifier
	_ = json.Unmarshal(obj.Get("identifier"), &ids)
	for _, nid := range p.Identifier {
		replaced := false
		for i, id := range ids {
			if elem.Str(id.System) == elem.Str(nid.System) {
				ids[i].Value, replaced = nid.Value, true
				break
			}
		}
		if !replaced {
			ids = append(ids, nid)
		}
	}
	obj.Set("identifier", ids)
	set := func(key string, v any, has bool) {
		if has {
			obj.Set(key, v)
		}
	}
	set("name", p.Name, len(p.Name) > 0)
	set("telecom", p.Telecom, len(p.Telecom) > 0)
	set("gender", p.Gender, p.Gender != nil)
	set("birthDate", p.BirthDate, p.BirthDate != nil)
	set("address", p.Address, len(p.Address) > 0)
	if p.DeceasedDateTime != nil || p.DeceasedBoolean != nil {
		obj.Delete("deceasedBoolean")
		obj.Delete("deceasedDateTime")
		set("deceasedDateTime", p.DeceasedDateTime, p.DeceasedDateTime != nil)
		set("deceasedBoolean", p.DeceasedBoolean, p.DeceasedBoolean != nil)
	}
}

// patientFrom maps PID to a Patient (PID[Patient] of the IG).
func (a *Adapter) patientFrom(m *hl7v2.Message, ids patientIDs) (*r4.Patient, error) {
	p := &r4.Patient{}
	if ids.nhs != "" {
		p.Identifier = append(p.Identifier, r4.Identifier{System: elem.Opt(referral.NHSNumberSystem), Value: elem.Opt(ids.nhs)})
	}
	if ids.pas != "" {
		p.Identifier = append(p.Identifier, r4.Identifier{System: elem.Opt(a.set.PASNumberSystem), Value: elem.Opt(ids.pas)})
	}
	for _, rep := range repetitions(m, "PID-5") {
		n := r4.HumanName{Family: elem.Opt(m.Get(rep + ".1")), Given: nonEmpty(m.Get(rep+".2"), m.Get(rep+".3"))}
		if v := m.Get(rep + ".5"); v != "" {
			n.Prefix = []string{v}
		}
		n.Suffix = nonEmpty(m.Get(rep+".4"), m.Get(rep+".6"))
		if u, ok := nameUses[m.Get(rep+".7")]; ok {
			n.Use = &u
		}
		if n.Family != nil || len(n.Given) > 0 {
			p.Name = append(p.Name, n)
		}
	}
	if v := m.Get("PID-7"); v != "" {
		d, err := birthDate(v)
		if err != nil {
			return nil, reject("PID-7", hl7v2.CodeDataType, "birth date %q: %v", v, err)
		}
		p.BirthDate = &d
	}
	if v := m.Get("PID-8"); v != "" {
		g, ok := genders[strings.ToUpper(v)]
		if !ok {
			return nil, reject("PID-8", hl7v2.CodeTableValue, "administrative sex %q is not in table 0001", v)
		}
		p.Gender = &g
	}
	for _, rep := range repetitions(m, "PID-11") {
		ad := r4.Address{Line: nonEmpty(m.Get(rep+".1"), m.Get(rep+".2")), City: elem.Opt(m.Get(rep + ".3")),
			State: elem.Opt(m.Get(rep + ".4")), PostalCode: elem.Opt(m.Get(rep + ".5")), Country: elem.Opt(m.Get(rep + ".6"))}
		if u, ok := addressUses[m.Get(rep+".7")]; ok {
			ad.Use = &u
		}
		if len(ad.Line) > 0 || ad.City != nil || ad.PostalCode != nil {
			p.Address = append(p.Address, ad)
		}
	}
	for _, f := range []struct {
		field string
		use   r4.ContactPointUse
	}{{"PID-13", r4.ContactPointUseHome}, {"PID-14", r4.ContactPointUseWork}, {"PID-40", r4.ContactPointUseHome}} {
		for _, rep := range repetitions(m, f.field) {
			if cp, ok := contactPoint(m, rep, f.use); ok {
				p.Telecom = append(p.Telecom, cp)
			}
		}
	}
	if v := m.Get("PID-29"); v != "" {
		t, err := hl7v2.ParseTime(v, a.env.Location)
		if err != nil {
			return nil, reject("PID-29", hl7v2.CodeDataType, "%v", err)
		}
		p.DeceasedDateTime = elem.Opt(t.Format(time.RFC3339))
	} else if v := m.Get("PID-30"); v == "Y" || v == "N" {
		dead := v == "Y"
		p.DeceasedBoolean = &dead
	}
	return p, nil
}

// contactPoint maps an XTN repetition: the number from XTN-1 or XTN-6/7,
// the e-mail address from XTN-4; XTN-2 (use) and XTN-3 (equipment) say
// what it is.
func contactPoint(m *hl7v2.Message, rep string, def r4.ContactPointUse) (r4.ContactPoint, bool) {
	equip, use := m.Get(rep+".3"), m.Get(rep+".2")
	cp := r4.ContactPoint{}
	value := m.Get(rep + ".1")
	if local := m.Get(rep + ".7"); local != "" {
		value = strings.TrimSpace(m.Get(rep+".6") + " " + local)
	}
	sys := r4.ContactPointSystemPhone
	switch equip {
	case "Internet", "X.400":
		sys, value = r4.ContactPointSystemEmail, m.Get(rep+".4")
	case "FX":
		sys = r4.ContactPointSystemFax
	case "BP":
		sys = r4.ContactPointSystemPager
	}
	if value == "" {
		return cp, false
	}
	u := def
	switch {
	case equip == "CP":
		u = r4.ContactPointUseMobile
	case use == "WPN":
		u = r4.ContactPointUseWork
	case use == "PRN" || use == "ORN" || use == "VHN":
		u = r4.ContactPointUseHome
	}
	cp.System, cp.Value, cp.Use = &sys, &value, &u
	return cp, true
}

// birthDate reads a DTM as a FHIR date at its precision.
func birthDate(v string) (string, error) {
	if len(v) > 8 {
		v = v[:8]
	}
	layouts := map[int][2]string{4: {"2006", "2006"}, 6: {"200601", "2006-01"}, 8: {"20060102", "2006-01-02"}}
	l, ok := layouts[len(v)]
	if !ok {
		return "", fmt.Errorf("want YYYY[MM[DD]]")
	}
	t, err := time.Parse(l[0], v)
	if err != nil {
		return "", fmt.Errorf("want YYYY[MM[DD]]")
	}
	return t.Format(l[1]), nil
}

// genders is table 0001 → administrative-gender.
var genders = map[string]r4.AdministrativeGender{
	"F": r4.AdministrativeGenderFemale, "M": r4.AdministrativeGenderMale, "O": r4.AdministrativeGenderOther,
	"U": r4.AdministrativeGenderUnknown, "A": r4.AdministrativeGenderOther, "N": r4.AdministrativeGenderOther,
}

// nameUses is table 0200 (name type, XPN-7) → name-use.
var nameUses = map[string]r4.NameUse{
	"L": r4.NameUseOfficial, "D": r4.NameUseUsual, "A": r4.NameUseUsual, "N": r4.NameUseNickname,
	"M": r4.NameUseMaiden, "B": r4.NameUseOld, "BAD": r4.NameUseOld, "C": r4.NameUseOfficial,
	"S": r4.NameUseAnonymous, "T": r4.NameUseTemp, "U": r4.NameUseTemp,
}

// addressUses is table 0190 (address type, XAD-7) → address-use.
var addressUses = map[string]r4.AddressUse{
	"H": r4.AddressUseHome, "B": r4.AddressUseWork, "O": r4.AddressUseWork, "C": r4.AddressUseTemp,
	"BA": r4.AddressUseOld, "BI": r4.AddressUseBilling,
}

// adtMerge applies ADT^A40.
func (a *Adapter) adtMerge(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error) {
	if err := needSegments(m, "PID", "MRG"); err != nil {
		return "", err
	}
	sids, err := idsOf(m, "PID-3", "PID-2")
	if err != nil {
		return "", err
	}
	mids, err := idsOf(m, "MRG-1", "MRG-4")
	if err != nil {
		return "", err
	}
	survivor, err := a.findPatient(ctx, tx, sids)
	if err != nil {
		return "", err
	}
	if survivor == nil {
		return "", failure("PID-3", hl7v2.CodeUnknownKey, "the surviving patient (NHS number %q, PAS number %q) is not known to Signpost", sids.nhs, sids.pas)
	}
	merged, err := a.findPatient(ctx, tx, mids)
	if err != nil {
		return "", err
	}
	if merged == nil {
		return "", failure("MRG-1", hl7v2.CodeUnknownKey, "the patient to merge (NHS number %q, PAS number %q) is not known to Signpost", mids.nhs, mids.pas)
	}
	if merged.ID == survivor.ID {
		return "", reject("MRG-1", hl7v2.CodeDuplicateKey, "MRG-1 and PID-3 name the same patient, Patient/%s", merged.ID)
	}
	old, err := fhir.ParseObject(merged.JSON)
	if err != nil {
		return "", err
	}
	old.Set("active", false)
	addLink(old, "Patient/"+survivor.ID, r4.LinkTypeReplacedBy)
	if _, _, err := tx.Put(ctx, "Patient", merged.ID, old, merged.Version); err != nil {
		return "", at("MRG-1", err)
	}
	sobj, err := fhir.ParseObject(survivor.JSON)
	if err != nil {
		return "", err
	}
	addLink(sobj, "Patient/"+merged.ID, r4.LinkTypeReplaces)
	if _, _, err := tx.Put(ctx, "Patient", survivor.ID, sobj, survivor.Version); err != nil {
		return "", at("PID-3", err)
	}
	moved, err := a.moveAppointments(ctx, tx, merged.ID, survivor.ID)
	if err != nil {
		return "", at("MRG-1", err)
	}
	return fmt.Sprintf("Patient/%s merged into Patient/%s; %d future appointments moved", merged.ID, survivor.ID, moved), nil
}

// addLink adds a link of type typ to other unless obj has it.
func addLink(obj *fhir.Object, other string, typ r4.LinkType) {
	var links []r4.PatientLink
	_ = json.Unmarshal(obj.Get("link"), &links)
	for _, l := range links {
		if elem.Str(l.Other.Reference) == other && l.Type == typ {
			return
		}
	}
	obj.Set("link", append(links, r4.PatientLink{Other: elem.Ref(other), Type: typ}))
}

// moveAppointments books the future live appointments of Patient/from at
// the PAS's services again for Patient/to, in the same slots, each
// replacing the one it moves (cancelled). It returns how many it moved.
func (a *Adapter) moveAppointments(ctx context.Context, tx *write.Tx, from, to string) (int, error) {
	now := tx.Now()
	page, err := tx.Search(ctx, &search.Query{Type: "Appointment", Count: 1000, Filter: []search.Expr{
		search.RefIn{Param: "patient", Refs: []search.Ref{{Type: "Patient", ID: from}}},
		search.DateMatch{Param: "date", Prefix: search.Sa, Low: now.UnixMicro(), High: now.UnixMicro() + 1},
	}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, res := range page.Resources {
		if !live(res) {
			continue
		}
		if owned, err := a.ownsStored(ctx, tx, res); err != nil {
			return n, err
		} else if !owned {
			continue // another provider's: theirs to move
		}
		old, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return n, err
		}
		old.Set("status", "cancelled")
		old.Set("cancelationReason", r4.CodeableConcept{Text: elem.Opt("Patient/" + from + " merged into Patient/" + to + " in the PAS")})
		if _, _, err := tx.Put(ctx, "Appointment", res.ID, old, res.Version); err != nil {
			return n, err
		}
		nw, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return n, err
		}
		for _, k := range []string{"id", "meta", "created"} {
			nw.Delete(k)
		}
		var parts []map[string]any
		_ = json.Unmarshal(nw.Get("participant"), &parts)
		for _, p := range parts {
			if act, ok := p["actor"].(map[string]any); ok && act["reference"] == "Patient/"+from {
				act["reference"] = "Patient/" + to
			}
		}
		nw.Set("participant", parts)
		if err := setReplaces(nw, res.ID); err != nil {
			return n, err
		}
		if _, err := tx.Create(ctx, "Appointment", nw); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
