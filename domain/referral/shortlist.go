package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// Score weights $shortlist's ranking. A service's score is
//
//	WaitWeight × waiting days + travel km / KMPerDay
//
// (lower is better): by default a day of waiting weighs as much as 5 km of
// travel. A service with no free slot counts NoSlotDays of waiting. Without
// a patient location the travel term is left out.
type Score struct {
	WaitWeight float64
	KMPerDay   float64
	NoSlotDays float64
}

// DefaultScore is waiting days + travel km / 5, with 60 days for a service
// that has no free slot.
var DefaultScore = Score{WaitWeight: 1, KMPerDay: 5, NoSlotDays: 60}

// LatLon is a position in decimal degrees (WGS84).
type LatLon struct{ Lat, Lon float64 }

// DistanceKM is the great-circle distance between two positions.
func DistanceKM(a, b LatLon) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}

// MaxShortlist is the most services a saved shortlist may hold.
const MaxShortlist = 20

// Candidate is one service as $shortlist judged it.
type Candidate struct {
	Service     string // "HealthcareService/id"
	Name        string
	Score       float64
	Wait        directory.Wait
	HasWait     bool
	DistanceKM  float64
	HasDistance bool
	Bookability string
	Reasons     []string // why it was included
	Excluded    []string // why it was left out; empty for a suitable service
}

// patientContext is what the shortlist needs to know about the patient.
type patientContext struct {
	age          int // -1 when unknown
	gender       string
	commissioner string // "Organization/id", "" when unknown
	where        *LatLon
	whereFrom    string // patient-address, postcode, input, none
}

type serviceView struct {
	Name           string               `json:"name"`
	Active         *bool                `json:"active"`
	Specialty      []r4.CodeableConcept `json:"specialty"`
	Type           []r4.CodeableConcept `json:"type"`
	Characteristic []r4.CodeableConcept `json:"characteristic"`
	Location       []r4.Reference       `json:"location"`
	Extension      []r4.Extension       `json:"extension"`
}

// shortlistOp is ServiceRequest/{id}/$shortlist.
func (s *Service) shortlistOp() *operation.Operation {
	return &operation.Operation{
		Name: "shortlist", Types: []string{"ServiceRequest"}, Instance: true,
		Definition: conformance.OperationDefinition("ServiceRequest-shortlist"),
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			count := 5
			if v, ok := req.Params.String("count"); ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > MaxShortlist {
					return nil, fhir.Errorf(fhir.Invalid, "value", "count", "count must be 1 to %d, not %q", MaxShortlist, v)
				}
				count = n
			}
			explain := boolParam(req.Params, "explain")
			save := boolParam(req.Params, "save")
			var chosen []string
			for _, p := range req.Params.All("choose") {
				v, _ := p.String()
				chosen = append(chosen, v)
			}
			var loc *LatLon
			if v, ok := req.Params.String("location"); ok {
				ll, err := parseLatLon(v)
				if err != nil {
					return nil, fhir.Errorf(fhir.Invalid, "value", "location", "%v", err)
				}
				loc = &ll
			}
			if (save || len(chosen) > 0) && req.Body == nil {
				return nil, fhir.Errorf(fhir.NotSupported, "not-supported", "", "saving a shortlist changes the referral: use POST")
			}
			if len(chosen) > MaxShortlist {
				return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "choose", "a shortlist holds at most %d services, not %d", MaxShortlist, len(chosen))
			}
			var cands []Candidate
			var pc patientContext
			run := func(ctx context.Context, tx store.Reader) error {
				sr, err := tx.Read(ctx, "ServiceRequest", req.ID)
				if err != nil {
					return err
				}
				cands, pc, err = s.Shortlist(ctx, tx, sr, loc)
				return err
			}
			saved := false
			if save || len(chosen) > 0 {
				err := s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
					if err := run(ctx, tx); err != nil {
						return err
					}
					list, err := pick(cands, chosen, count)
					if err != nil {
						return err
					}
					sr, err := tx.Read(ctx, "ServiceRequest", req.ID)
					if err != nil {
						return err
					}
					obj, err := fhir.ParseObject(sr.JSON)
					if err != nil {
						return err
					}
					var exts []any
					for _, c := range list {
						exts = append(exts, r4.Extension{Url: ShortlistExtension, ValueReference: &r4.Reference{Reference: elem.Opt(c.Service), Display: elem.Opt(c.Name)}})
					}
					if err := obj.SetExtensions(ShortlistExtension, exts...); err != nil {
						return err
					}
					_, _, err = tx.PutWith(ctx, "ServiceRequest", sr.ID, obj, 0, own)
					saved = true
					return err
				})
				if err != nil {
					return nil, err
				}
			} else if err := run(ctx, s.repo.Store()); err != nil {
				return nil, err
			}
			return &operation.Result{Body: shortlistParameters(cands, pc, count, explain, saved).Encode()}, nil
		},
	}
}

// pick returns the chosen services (each must be suitable), or the top
// count when none was chosen.
func pick(cands []Candidate, chosen []string, count int) ([]Candidate, error) {
	if len(chosen) == 0 {
		var out []Candidate
		for _, c := range cands {
			if len(c.Excluded) == 0 && len(out) < count {
				out = append(out, c)
			}
		}
		return out, nil
	}
	var out []Candidate
	for i, ref := range chosen {
		found := false
		for _, c := range cands {
			if c.Service == ref || strings.HasSuffix(ref, "/"+c.Service) {
				if len(c.Excluded) > 0 {
					return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", fmt.Sprintf("choose[%d]", i),
						"%s is not suitable for this referral: %s", c.Service, strings.Join(c.Excluded, "; ")).WithDetails("SERVICE_NOT_SUITABLE")
				}
				out = append(out, c)
				found = true
			}
		}
		if !found {
			return nil, fhir.Errorf(fhir.Unprocessable, "not-found", fmt.Sprintf("choose[%d]", i), "%s is not a known service", ref)
		}
	}
	return out, nil
}

func boolParam(p *operation.Parameters, name string) bool {
	v, _ := p.String(name)
	return v == "true"
}

func parseLatLon(v string) (LatLon, error) {
	a, b, ok := strings.Cut(v, "|")
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if !ok || err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return LatLon{}, fmt.Errorf("location must be latitude|longitude in degrees, not %q", v)
	}
	return LatLon{lat, lon}, nil
}

// Shortlist judges every service in the directory for the referral sr and
// returns them ranked: suitable services first by score (then name),
// then the excluded ones. loc, when not nil, overrides the patient's
// position.
func (s *Service) Shortlist(ctx context.Context, tx store.Reader, sr *fhir.Resource, loc *LatLon) ([]Candidate, patientContext, error) {
	var r requestView
	if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
		return nil, patientContext{}, err
	}
	now := s.cfg.Now().In(s.cfg.Location)
	pc, err := s.patientContext(ctx, tx, elem.Str(r.Subject.Reference), now)
	if err != nil {
		return nil, pc, err
	}
	if loc != nil {
		pc.where, pc.whereFrom = loc, "input"
	}
	services, err := find(ctx, tx, s.reg, "HealthcareService", "")
	if err != nil {
		return nil, pc, err
	}
	if err := store.AddDerived(ctx, tx, services); err != nil { // their current waiting times
		return nil, pc, err
	}
	positions := map[string]*LatLon{}
	var out []Candidate
	for _, res := range services {
		var hs serviceView
		if err := decode(res.JSON, &hs, "HealthcareService"); err != nil {
			return nil, pc, err
		}
		c := Candidate{Service: res.Reference(), Name: hs.Name}
		judge(&c, &r, &hs, &pc)
		for _, ch := range hs.Characteristic {
			if b := elem.CodeIn(ch, directory.BookabilitySystem); b != "" {
				c.Bookability = b
			}
		}
		c.Wait, c.HasWait = directory.ReadWait(res.JSON, now)
		if pc.where != nil {
			for _, l := range hs.Location {
				p, ok := positions[elem.Str(l.Reference)]
				if !ok {
					p = locationPosition(ctx, tx, elem.Str(l.Reference))
					positions[elem.Str(l.Reference)] = p
				}
				if p != nil {
					d := DistanceKM(*pc.where, *p)
					if !c.HasDistance || d < c.DistanceKM {
						c.DistanceKM, c.HasDistance = math.Round(d*10)/10, true
					}
				}
			}
		}
		wait := s.cfg.Score.NoSlotDays
		if c.HasWait {
			wait = float64(c.Wait.Days)
			c.Reasons = append(c.Reasons, fmt.Sprintf("next free slot in %d days", c.Wait.Days))
		} else {
			c.Reasons = append(c.Reasons, fmt.Sprintf("no free slot: counted as %g days", wait))
		}
		c.Score = s.cfg.Score.WaitWeight * wait
		if c.HasDistance {
			c.Score += c.DistanceKM / s.cfg.Score.KMPerDay
			c.Reasons = append(c.Reasons, fmt.Sprintf("%.1f km away", c.DistanceKM))
		}
		c.Score = math.Round(c.Score*100) / 100
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (len(a.Excluded) == 0) != (len(b.Excluded) == 0) {
			return len(a.Excluded) == 0
		}
		if a.Score != b.Score {
			return a.Score < b.Score
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Service < b.Service
	})
	return out, pc, nil
}

// judge records why a service suits the referral and patient, or not.
func judge(c *Candidate, r *requestView, hs *serviceView, pc *patientContext) {
	match := ""
	for _, want := range r.PerformerType.Coding {
		for _, sp := range hs.Specialty {
			if elem.HasCoding(sp, elem.Str(want.System), elem.Str(want.Code)) {
				match = "specialty " + label(want)
			}
		}
	}
	for _, want := range r.Code.Coding {
		for _, t := range hs.Type {
			if match == "" && elem.HasCoding(t, elem.Str(want.System), elem.Str(want.Code)) {
				match = "service type " + label(want)
			}
		}
	}
	if match == "" {
		c.Excluded = append(c.Excluded, "specialty and service type do not match the referral")
	} else {
		c.Reasons = append(c.Reasons, "matches "+match)
	}
	if hs.Active != nil && !*hs.Active {
		c.Excluded = append(c.Excluded, "service is not active")
	}
	for _, e := range elem.Extensions(hs.Extension, AcceptingReferrals) {
		if e.ValueBoolean != nil && !*e.ValueBoolean {
			c.Excluded = append(c.Excluded, "service is not accepting referrals")
		}
	}
	switch {
	case pc.commissioner == "":
		c.Reasons = append(c.Reasons, "patient's commissioner unknown: commissioning not checked")
	default:
		ok := false
		for _, e := range elem.Extensions(hs.Extension, CommissionedBy) {
			if e.ValueReference != nil && sameRef(elem.Str(e.ValueReference.Reference), pc.commissioner) {
				ok = true
			}
		}
		if ok {
			c.Reasons = append(c.Reasons, "commissioned by "+pc.commissioner)
		} else {
			c.Excluded = append(c.Excluded, "not commissioned by the patient's commissioner "+pc.commissioner)
		}
	}
	for _, e := range elem.Extensions(hs.Extension, Eligibility) {
		for _, sub := range e.Extension {
			switch {
			case sub.Url == "min-age" && sub.ValueInteger != nil && pc.age >= 0 && pc.age < *sub.ValueInteger:
				c.Excluded = append(c.Excluded, fmt.Sprintf("patient aged %d is under the minimum age %d", pc.age, *sub.ValueInteger))
			case sub.Url == "max-age" && sub.ValueInteger != nil && pc.age >= 0 && pc.age > *sub.ValueInteger:
				c.Excluded = append(c.Excluded, fmt.Sprintf("patient aged %d is over the maximum age %d", pc.age, *sub.ValueInteger))
			}
		}
		var genders []string
		for _, sub := range elem.Extensions(e.Extension, "gender") {
			if sub.ValueCode != nil {
				genders = append(genders, *sub.ValueCode)
			}
		}
		if len(genders) > 0 && pc.gender != "" && !contains(genders, pc.gender) {
			c.Excluded = append(c.Excluded, fmt.Sprintf("service sees %s patients only", strings.Join(genders, ", ")))
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func label(c r4.Coding) string {
	if elem.Str(c.Display) != "" {
		return elem.Str(c.Display)
	}
	return elem.Str(c.Code)
}

func sameRef(a, b string) bool {
	ta, ia, ok1 := fhir.SplitReference(a)
	tb, ib, ok2 := fhir.SplitReference(b)
	return ok1 && ok2 && ta == tb && ia == ib
}

// patientContext reads the patient's age, gender, commissioner (the
// Organization their registered GP practice is partOf) and position (the
// geolocation extension of an address, else its postcode in the table).
func (s *Service) patientContext(ctx context.Context, tx store.Reader, ref string, now time.Time) (patientContext, error) {
	pc := patientContext{age: -1, whereFrom: "none"}
	if ref == "" {
		return pc, nil
	}
	res, err := readRef(ctx, tx, ref)
	if err != nil {
		return pc, fhir.Errorf(fhir.Unprocessable, "not-found", "ServiceRequest.subject", "%s does not exist", ref)
	}
	var p struct {
		BirthDate           string         `json:"birthDate"`
		Gender              string         `json:"gender"`
		GeneralPractitioner []r4.Reference `json:"generalPractitioner"`
		Address             []struct {
			PostalCode string         `json:"postalCode"`
			Extension  []r4.Extension `json:"extension"`
		} `json:"address"`
	}
	if err := decode(res.JSON, &p, "Patient"); err != nil {
		return pc, err
	}
	pc.gender = p.Gender
	if b, err := time.Parse("2006-01-02", p.BirthDate); err == nil {
		pc.age = now.Year() - b.Year()
		if now.YearDay() < b.YearDay() {
			pc.age--
		}
	}
	for _, gp := range p.GeneralPractitioner {
		if t, _, ok := fhir.SplitReference(elem.Str(gp.Reference)); ok && t == "Organization" {
			if org, err := readRef(ctx, tx, elem.Str(gp.Reference)); err == nil {
				var o struct {
					PartOf r4.Reference `json:"partOf"`
				}
				_ = json.Unmarshal(org.JSON, &o)
				pc.commissioner = elem.Str(o.PartOf.Reference)
			}
		}
	}
	for _, a := range p.Address {
		for _, g := range elem.Extensions(a.Extension, Geolocation) {
			var ll LatLon
			var n int
			for _, sub := range g.Extension {
				if sub.ValueDecimal == nil {
					continue
				}
				d, err := sub.ValueDecimal.Float64()
				if err != nil {
					continue
				}
				switch sub.Url {
				case "latitude":
					ll.Lat, n = d, n+1
				case "longitude":
					ll.Lon, n = d, n+1
				}
			}
			if n == 2 && pc.where == nil {
				pc.where, pc.whereFrom = &ll, "patient-address"
			}
		}
	}
	if pc.where == nil {
		for _, a := range p.Address {
			if ll, ok := s.cfg.Postcodes[NormalisePostcode(a.PostalCode)]; ok {
				pc.where, pc.whereFrom = &ll, "postcode"
				break
			}
		}
	}
	return pc, nil
}

func locationPosition(ctx context.Context, tx store.Reader, ref string) *LatLon {
	res, err := readRef(ctx, tx, ref)
	if err != nil {
		return nil
	}
	var l struct {
		Position *struct {
			Latitude  float64 `json:"latitude"`
			Longitude float64 `json:"longitude"`
		} `json:"position"`
	}
	if json.Unmarshal(res.JSON, &l) != nil || l.Position == nil {
		return nil
	}
	return &LatLon{l.Position.Latitude, l.Position.Longitude}
}

func shortlistParameters(cands []Candidate, pc patientContext, count int, explain, saved bool) *operation.Parameters {
	out := &operation.Parameters{}
	out.Parameter = append(out.Parameter, operation.Parameter{Name: "location-source", ValueType: "Code", Value: mustJSON(pc.whereFrom)})
	n := 0
	for _, c := range cands {
		if len(c.Excluded) > 0 {
			if explain {
				p := operation.Parameter{Name: "excluded", Part: []operation.Parameter{
					{Name: "service", ValueType: "Reference", Value: mustJSON(r4.Reference{Reference: elem.Opt(c.Service), Display: elem.Opt(c.Name)})}}}
				for _, why := range c.Excluded {
					p.Part = append(p.Part, operation.Parameter{Name: "reason", ValueType: "String", Value: mustJSON(why)})
				}
				out.Parameter = append(out.Parameter, p)
			}
			continue
		}
		if n == count {
			continue
		}
		n++
		p := operation.Parameter{Name: "service", Part: []operation.Parameter{
			{Name: "service", ValueType: "Reference", Value: mustJSON(r4.Reference{Reference: elem.Opt(c.Service), Display: elem.Opt(c.Name)})},
			{Name: "rank", ValueType: "Integer", Value: mustJSON(n)},
			{Name: "score", ValueType: "Decimal", Value: mustJSON(c.Score)}}}
		if c.HasWait {
			p.Part = append(p.Part,
				operation.Parameter{Name: "waiting-days", ValueType: "Integer", Value: mustJSON(c.Wait.Days)},
				operation.Parameter{Name: "next-slot", ValueType: "DateTime", Value: mustJSON(c.Wait.NextSlot.UTC().Format(time.RFC3339))})
		}
		if c.HasDistance {
			p.Part = append(p.Part, operation.Parameter{Name: "distance-km", ValueType: "Decimal", Value: mustJSON(c.DistanceKM)})
		}
		if c.Bookability != "" {
			p.Part = append(p.Part, operation.Parameter{Name: "bookability", ValueType: "Code", Value: mustJSON(c.Bookability)})
		}
		for _, why := range c.Reasons {
			p.Part = append(p.Part, operation.Parameter{Name: "reason", ValueType: "String", Value: mustJSON(why)})
		}
		out.Parameter = append(out.Parameter, p)
	}
	if saved {
		out.Parameter = append(out.Parameter, operation.Parameter{Name: "saved", ValueType: "Boolean", Value: mustJSON(true)})
	}
	return out
}
