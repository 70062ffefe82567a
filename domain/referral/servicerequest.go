package referral

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// requestView is what the rules read of a ServiceRequest.
type requestView struct {
	Identifier    []r4.Identifier      `json:"identifier"`
	Status        string               `json:"status"`
	Priority      string               `json:"priority"`
	Subject       r4.Reference         `json:"subject"`
	Requester     r4.Reference         `json:"requester"`
	Performer     []r4.Reference       `json:"performer"`
	PerformerType r4.CodeableConcept   `json:"performerType"`
	Code          r4.CodeableConcept   `json:"code"`
	Category      []r4.CodeableConcept `json:"category"`
	AuthoredOn    string               `json:"authoredOn"`
	Extension     []r4.Extension       `json:"extension"`
}

func (r *requestView) ubrn() string {
	for _, id := range r.Identifier {
		if elem.Str(id.System) == UBRNSystem {
			return elem.Str(id.Value)
		}
	}
	return ""
}

func (r *requestView) twoWeekWait() bool {
	for _, e := range elem.Extensions(r.Extension, PriorityExtension) {
		if e.ValueCoding != nil && elem.Str(e.ValueCoding.Code) == "two-week-wait" {
			return true
		}
	}
	return false
}

// NewUBRN returns a random 12-digit unique booking reference number (its
// first digit is never 0). Uniqueness is checked by the caller, in the
// transaction that stores it.
func NewUBRN() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(900_000_000_000))
	if err != nil {
		return "", fmt.Errorf("UBRN: %w", err)
	}
	return fmt.Sprintf("%012d", n.Int64()+100_000_000_000), nil
}

func validUBRN(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// serviceRequestRule gives every new referral a unique UBRN and its
// workflow Task, keeps the UBRN and the saved shortlist server-owned, and
// checks the NHS priority extension against the R4 priority.
func (s *Service) serviceRequestRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var nr, or requestView
	if err := decode(c.New.Bytes(), &nr, "ServiceRequest"); err != nil {
		return err
	}
	if c.Old != nil {
		if err := decode(c.Old.JSON, &or, "ServiceRequest"); err != nil {
			return err
		}
	}
	if nr.twoWeekWait() && nr.Priority != "urgent" && nr.Priority != "asap" && nr.Priority != "stat" {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "ServiceRequest.priority",
			"a two-week-wait referral must have priority urgent (or higher), not %q", nr.Priority)
	}
	for i, cat := range nr.Category {
		for _, cd := range cat.Coding {
			if elem.Str(cd.System) == Base+"/CodeSystem/referral-source" && !referralSources[elem.Str(cd.Code)] {
				return fhir.Errorf(fhir.Unprocessable, "code-invalid", fmt.Sprintf("ServiceRequest.category[%d]", i),
					"referral source must be gp, tertiary or primary-to-primary, not %q", elem.Str(cd.Code))
			}
		}
	}
	if c.Old != nil && or.ubrn() != "" {
		// The UBRN is the server's: restore it, refuse a different one.
		if u := nr.ubrn(); u != "" && u != or.ubrn() {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "ServiceRequest.identifier",
				"the UBRN of ServiceRequest/%s is %s and cannot change", c.ID, or.ubrn()).WithDetails("SERVER_OWNED")
		}
		if nr.ubrn() == "" {
			if err := addIdentifier(c.New, r4.Identifier{System: elem.Opt(UBRNSystem), Value: elem.Opt(or.ubrn())}); err != nil {
				return err
			}
		}
		if !isOwn(c) {
			if err := c.New.KeepExtensions(c.Old.JSON, ShortlistExtension); err != nil {
				return err
			}
			return s.chooseService(ctx, tx, c.ID, &or, &nr)
		}
		return nil
	}
	ubrn := nr.ubrn()
	if ubrn != "" && !validUBRN(ubrn) {
		return fhir.Errorf(fhir.Unprocessable, "value", "ServiceRequest.identifier",
			"a UBRN has 12 digits, not %q", ubrn)
	}
	if ubrn != "" {
		if taken, err := s.ubrnTaken(ctx, tx, ubrn, c.ID); err != nil {
			return err
		} else if taken {
			return fhir.Errorf(fhir.Conflict, "duplicate", "ServiceRequest.identifier", "UBRN %s is already in use", ubrn)
		}
	} else {
		for range 20 {
			u, err := NewUBRN()
			if err != nil {
				return err
			}
			taken, err := s.ubrnTaken(ctx, tx, u, c.ID)
			if err != nil {
				return err
			}
			if !taken {
				ubrn = u
				break
			}
		}
		if ubrn == "" {
			return fmt.Errorf("ServiceRequest/%s: no free UBRN after 20 tries", c.ID)
		}
		if err := addIdentifier(c.New, r4.Identifier{System: elem.Opt(UBRNSystem), Value: elem.Opt(ubrn)}); err != nil {
			return err
		}
	}
	if !isOwn(c) {
		if err := c.New.SetExtensions(ShortlistExtension); err != nil {
			return err
		}
	}
	return s.createTask(ctx, tx, c.ID, ubrn, &nr)
}

var referralSources = map[string]bool{"gp": true, "tertiary": true, "primary-to-primary": true}

func (s *Service) ubrnTaken(ctx context.Context, tx *write.Tx, ubrn, self string) (bool, error) {
	found, err := find(ctx, tx, s.reg, "ServiceRequest", "identifier="+UBRNSystem+"|"+ubrn)
	if err != nil {
		return false, err
	}
	for _, r := range found {
		if r.ID != self {
			return true, nil
		}
	}
	return false, nil
}

func addIdentifier(obj *fhir.Object, id r4.Identifier) error {
	var ids []json.RawMessage
	if raw := obj.Get("identifier"); raw != nil {
		if err := json.Unmarshal(raw, &ids); err != nil {
			return fhir.Errorf(fhir.Invalid, "structure", "identifier", "identifier must be an array")
		}
	}
	ids = append(ids, mustJSON(id))
	obj.Set("identifier", ids)
	return nil
}

// createTask writes the referral's workflow Task, awaiting booking.
func (s *Service) createTask(ctx context.Context, tx *write.Tx, id, ubrn string, r *requestView) error {
	state := AwaitingBooking
	if svc, err := s.indirectService(ctx, tx, r); err != nil {
		return err
	} else if svc != "" {
		state = AwaitingTriage // the provider books after triage
	}
	businessStatus := stateConcept(state)
	task := r4.Task{
		Identifier:     []r4.Identifier{{System: elem.Opt(UBRNSystem), Value: elem.Opt(ubrn)}},
		Status:         r4.TaskStatusReady,
		BusinessStatus: &businessStatus,
		Intent:         "order",
		Code:           &r4.CodeableConcept{Coding: []r4.Coding{{System: elem.Opt(TaskCodeSystem), Code: elem.Opt(TaskCode), Display: elem.Opt("Referral workflow")}}},
		Focus:          &r4.Reference{Reference: elem.Opt("ServiceRequest/" + id)},
		AuthoredOn:     elem.Opt(tx.Now().Format(fhir.InstantFormat)),
		LastModified:   elem.Opt(tx.Now().Format(fhir.InstantFormat)),
	}
	if elem.Str(r.Subject.Reference) != "" {
		task.For = &r4.Reference{Reference: r.Subject.Reference}
	}
	if elem.Str(r.Requester.Reference) != "" {
		task.Requester = &r4.Reference{Reference: r.Requester.Reference}
	}
	if r.Priority != "" {
		var p r4.RequestPriority
		if err := p.UnmarshalJSON([]byte(strconv.Quote(r.Priority))); err != nil {
			return fhir.Errorf(fhir.Unprocessable, "code-invalid", "ServiceRequest.priority", "%q is not a request priority", r.Priority)
		}
		task.Priority = &p
	}
	if len(r.Performer) > 0 && elem.Str(r.Performer[0].Reference) != "" {
		task.Owner = &r4.Reference{Reference: r.Performer[0].Reference}
	}
	// Part of writing the referral: whoever may create it gets its Task.
	ctx = write.AsConsequence(ctx, write.Consequence{Type: "Task", Grant: write.WithCause, Of: "ServiceRequest/" + id})
	_, err := createOwn(ctx, tx, "Task", task)
	return err
}

// indirectService returns the referral's chosen service (its performer)
// when that service is indirectly bookable, else "".
func (s *Service) indirectService(ctx context.Context, tx store.Reader, r *requestView) (string, error) {
	for _, p := range r.Performer {
		typ, _, ok := fhir.SplitReference(elem.Str(p.Reference))
		if !ok || typ != "HealthcareService" {
			continue
		}
		res, err := readRef(ctx, tx, elem.Str(p.Reference))
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			continue
		} else if err != nil {
			return "", err
		}
		var hs serviceView
		if err := decode(res.JSON, &hs, "HealthcareService"); err != nil {
			return "", err
		}
		if hs.indirectlyBookable() {
			return res.Reference(), nil
		}
	}
	return "", nil
}

// chooseService moves a referral awaiting booking to triage when a client
// chooses an indirectly bookable service for it (its performer): that
// provider books, from its for-review worklist.
func (s *Service) chooseService(ctx context.Context, tx *write.Tx, id string, old, nw *requestView) error {
	svc, err := s.indirectService(ctx, tx, nw)
	if err != nil || svc == "" {
		return err
	}
	if prev, err := s.indirectService(ctx, tx, old); err != nil || prev == svc {
		return err
	}
	task, tv, err := s.referralTaskView(ctx, tx, "ServiceRequest/"+id)
	if err != nil {
		return err
	}
	if tv.state() != AwaitingBooking {
		return nil
	}
	_, err = s.moveTask(ctx, tx, task, AwaitingTriage, "indirectly bookable service chosen: the provider books after triage", func(obj *fhir.Object) {
		obj.Set("owner", elem.Ref(svc))
	})
	return err
}
